"""Emulated AWS for the local stack: resources built from template.yaml, and the template tools."""
