"""Reading template.yaml as CloudFormation would deploy it, for tests that look at its properties."""

from __future__ import annotations

from typing import Any


def with_condition(value: Any, condition: str, holds: bool) -> Any:
    """`value` with every `Fn::If` on `condition` decided, and what `AWS::NoValue` removes removed."""
    no_value = {"Ref": "AWS::NoValue"}
    if isinstance(value, list):
        items = [with_condition(v, condition, holds) for v in value]
        return [v for v in items if v != no_value]
    if isinstance(value, dict):
        if set(value) == {"Fn::If"} and value["Fn::If"][0] == condition:
            return with_condition(value["Fn::If"][1 if holds else 2], condition, holds)
        return {k: with_condition(v, condition, holds) for k, v in value.items()}
    return value
