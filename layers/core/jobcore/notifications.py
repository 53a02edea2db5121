"""`Job State Changed` notifications (SPEC section 7), derived from the job record's change stream.

Publishing from the table's stream rather than from the worker means a crash between the write and the
publish cannot lose a notification, and the worker needs no read to know the job's pipeline.
Delivery is at least once: consumers deduplicate on `event_id`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def state_change(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The notification detail for one change of a job item, or None if it is not a state change.

    A state change is a new state, a new generation (a completed reset), or a deletion. A job failed
    by the system for a missed deadline adds `deadline_missed` (`heartbeat` or `timeout`).
    """
    if not new or new.get("sk") != "JOB" or not old:
        return None
    deleted = bool(new.get("deleted_at")) and not old.get("deleted_at")
    moved = old.get("state") != new.get("state") or old.get("generation") != new.get("generation")
    if not (moved or deleted):
        return None
    detail = {
        "uuid": new.get("uuid") or str(new["pk"]).removeprefix("JOB#"),
        "pipeline_uuid": new["pipeline_uuid"],
        "event": new.get("last_event"),
        "event_id": new.get("last_event_id"),
        "from_state": old.get("state"),
        "to_state": None if deleted else new.get("state"),
        "generation": int(new["generation"]),
        "at": new.get("deleted_at") if deleted else new.get("updated_at"),
    }
    if new.get("missed") and not deleted:
        # the system failed the job for a missed deadline (SPEC section 3a): which one
        detail["deadline_missed"] = new["missed"]
    return detail
