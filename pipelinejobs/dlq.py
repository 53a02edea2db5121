"""Dead-letter redrive for scripts and tests: `from pipelinejobs.dlq import redrive` (the code lives in
the Lambda layer, `jobcore.adapters.dead_letters`, which the API's dashboard routes use too)."""

from jobcore.adapters.dead_letters import redrive

__all__ = ["redrive"]
