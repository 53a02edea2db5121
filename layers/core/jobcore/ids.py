"""Identifiers: the deterministic job uuid and fresh event ids."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Final

# The project's fixed namespace (UUIDv5 of the DNS name, frozen here forever: changing it would give
# every existing job a new identity).
JOB_NAMESPACE: Final = uuid.UUID("8b2e6f5c-3b0a-5d7e-9c41-6a1f0d2e7b93")


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 kept as is: the same value always gives the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def job_uuid(pipeline_uuid: str, data: Mapping[str, Any], child_of: Iterable[str] | None = None) -> str:
    """UUIDv5 of the canonical JSON of {pipeline_uuid, child_of (sorted, de-duplicated), data}.

    Same inputs, same job: this is what makes job creation idempotent.
    """
    document = {
        "pipeline_uuid": pipeline_uuid,
        "child_of": sorted(set(child_of or ())),
        "data": dict(data),
    }
    return str(uuid.uuid5(JOB_NAMESPACE, canonical_json(document)))


def new_event_id() -> str:
    return str(uuid.uuid4())


def is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except (ValueError, TypeError, AttributeError):
        return False
    return True
