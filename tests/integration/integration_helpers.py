"""Helpers for integration tests that write queue messages as the HTTP API writes them."""

from __future__ import annotations

from typing import Any

from jobcore.keyring import Keyring, acceptance_fields

ADMIN_KEY = "integration-admin-key"
"""The admin key the integration stack is built with (`conftest.py` uses it; test modules import it from
here, since another folder's `conftest` may be the one `import conftest` finds)."""


def marked_body(
    harness: Any,
    uuid: str,
    name: str,
    *,
    seq: int,
    expect: tuple[str, int],
    token: str | None = None,
    key: str | None = None,
    event_id: str | None = None,
    data: dict[str, Any] | None = None,
    by: str = "admin",
    ignore: bool = False,
) -> dict[str, Any]:
    """A message as the API queues an event it accepted: its place `seq`, the state it expects, and the
    API's mark, made with the admin key (or with `key`, to forge one)."""
    keyring = Keyring(key or ADMIN_KEY)
    event_id = event_id or keyring.event_id(uuid)
    at = harness.clock.now()
    data = data or {}
    fields = acceptance_fields(
        uuid=uuid,
        event_id=event_id,
        name=name,
        data=data,
        expect=expect,
        seq=seq,
        by=by,
        at=at,
        ignore=ignore,
    )
    return {
        "uuid": uuid,
        "name": name,
        "data": data,
        "token": token or harness.admin(),
        "event_id": event_id,
        "expect": list(expect),
        "seq": seq,
        "by": by,
        "at": at,
        "ignore": ignore,
        "mark": keyring.mark(fields),
    }
