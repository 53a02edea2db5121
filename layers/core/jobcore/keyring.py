"""Values the service derives from the admin key: HMAC-SHA256 under the key, one purpose per prefix.

| value | what it is for |
|---|---|
| `next_job_token(token)` | a rotated job token: the successor of the token presented. Whoever holds a token still in its grace period can be handed the current one (the API recomputes the chain), so a token's reuse never needs another rotation |
| `callback_token(uuid, nonce)` | the job's callback token, recomputable by the service: an admin can always read the current callback URL, though only its hash is stored |
| `event_id(uuid)` / `keyed_event_id(...)` / `issued(uuid, event_id)` | event ids the API can recognise as its own without storing them: an id it never issued is a 404 |
| `mark(...)` / `marked(...)` | the API's acceptance of an event, carried in its queue message: the worker applies a marked event without re-checking the credential (SPEC section 3, "a 202 is a promise") |
| `erase_signature(...)` | an internal erasure step, which no producer can forge |
| `deadline_signature(...)` | the sweeper's `fail` of a job that missed a deadline (SPEC section 3a) |
| `index_signature(fields)` | an internal indexer step (SPEC section 3, `index`): every field of it |

The admin token is the HMAC of a decimal number (the time window); every message here starts with a
purpose word and a colon, so no derived value can equal an admin token or another purpose's value.
Nothing here is logged or returned except the tokens and ids it is asked for.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any, Final

from jobcore.ids import canonical_json
from jobcore.tokens import CALLBACK_TOKEN_PREFIX, JOB_TOKEN_PREFIX

_TAG_BYTES: Final = 12  # 96 bits: guessing an id the API would recognise is hopeless
_NONCE_BYTES: Final = 16


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def new_nonce() -> str:
    return _b64(secrets.token_bytes(_NONCE_BYTES))


def data_digest(data: Any) -> str:
    """SHA-256 of the canonical JSON of an event's data (what an acceptance mark covers)."""
    return _b64(hashlib.sha256(canonical_json(data).encode("utf-8")).digest())


def acceptance_fields(
    *,
    uuid: str,
    event_id: str,
    name: str,
    data: Any,
    expect: tuple[str, int] | list[Any],
    seq: int,
    by: str,
    at: float,
    ignore: bool,
) -> dict[str, Any]:
    """What an acceptance mark covers: everything in an accepted event's message but its token."""
    return {
        "uuid": uuid,
        "event_id": event_id,
        "name": name,
        "data": data_digest(data),
        "expect": [str(expect[0]), int(expect[1])],
        "seq": seq,
        "by": by,
        "at": repr(float(at)),
        "ignore": ignore,
    }


class Keyring:
    """Every value above, for one admin key. Cheap to build; equal keys give equal values."""

    def __init__(self, admin_key: str) -> None:
        self._key = admin_key.encode("utf-8")

    def _mac(self, purpose: str, *parts: str) -> bytes:
        message = ":".join((purpose, *parts)).encode("utf-8")
        return hmac.new(self._key, message, hashlib.sha256).digest()

    # -- tokens --------------------------------------------------------------------------------------

    def next_job_token(self, token: str) -> str:
        """The token that replaces `token` when it rotates (same shape as a random job token)."""
        return JOB_TOKEN_PREFIX + _b64(self._mac("chain", token))

    def callback_token(self, uuid: str, nonce: str) -> str:
        return CALLBACK_TOKEN_PREFIX + _b64(self._mac("callback", uuid, nonce))

    # -- event ids -----------------------------------------------------------------------------------

    def _event_id(self, uuid: str, nonce: str) -> str:
        return f"{nonce}.{_b64(self._mac('event', uuid, nonce)[:_TAG_BYTES])}"

    def event_id(self, uuid: str) -> str:
        """A fresh event id for `uuid`, recognisable by `issued` (39 URL-safe characters)."""
        return self._event_id(uuid, new_nonce())

    def keyed_event_id(self, uuid: str, incarnation: int, idempotency_key: str) -> str:
        """The event id of an Idempotency-Key: the same key on the same job always gives the same id."""
        nonce = _b64(self._mac("idempotency", uuid, str(incarnation), idempotency_key)[:_NONCE_BYTES])
        return self._event_id(uuid, nonce)

    def issued(self, uuid: str, event_id: str) -> bool:
        """Whether the API issued `event_id` for `uuid` (constant time)."""
        nonce, dot, _ = event_id.partition(".")
        if not dot or not nonce:
            return False
        return hmac.compare_digest(self._event_id(uuid, nonce), event_id)

    # -- acceptance marks ----------------------------------------------------------------------------

    def mark(self, fields: dict[str, Any]) -> str:
        """The API's mark on an accepted event's message: covers every field the worker relies on."""
        return _b64(self._mac("accepted", canonical_json(fields)))

    def marked(self, fields: dict[str, Any], mark: str) -> bool:
        return hmac.compare_digest(self.mark(fields), mark)

    # -- internal messages ---------------------------------------------------------------------------

    def erase_signature(self, uuid: str, purpose: str, event_id: str, generation: int) -> str:
        return self._mac("erase", uuid, purpose, event_id, str(generation)).hex()

    def erase_signed(self, uuid: str, purpose: str, event_id: str, generation: int, signature: str) -> bool:
        return hmac.compare_digest(self.erase_signature(uuid, purpose, event_id, generation), signature)

    def deadline_signature(self, uuid: str, reason: str, deadline: int, state: str, generation: int) -> str:
        return self._mac("deadline", uuid, reason, str(deadline), state, str(generation)).hex()

    def deadline_signed(
        self, uuid: str, reason: str, deadline: int, state: str, generation: int, signature: str
    ) -> bool:
        expected = self.deadline_signature(uuid, reason, deadline, state, generation)
        return hmac.compare_digest(expected, signature)

    def index_signature(self, fields: dict[str, Any]) -> str:
        return self._mac("index", canonical_json(fields)).hex()

    def index_signed(self, fields: dict[str, Any], signature: str) -> bool:
        return hmac.compare_digest(self.index_signature(fields), signature)
