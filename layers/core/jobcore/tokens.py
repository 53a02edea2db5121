"""The credentials of SPEC section 4, as pure functions of an injected time.

- Job tokens (`pjt_...`) rotate; a rotated-out token stays valid for a grace period. The first is
  random; each rotation's token is the HMAC successor of the one it replaces (jobcore.keyring), so the
  API can hand anyone presenting a token still in its grace period the current one, without rotating
  again. An admin's fresh token for a job starts a new random chain.
- Callback tokens (`pjc_...`) never rotate by use and authorize only the callback events; they are
  derived from the admin key and a nonce stored with the job, so an admin can always read the URL.
- Admin tokens are the hex HMAC-SHA256 of the current time window under the admin key.
- Producer keys (`pjk_<id>_<secret>`) are issued by an admin: a public 12-character id, which finds the
  key's item without a scan, and 256 random bits. Only the hash of the whole key is stored.

Only SHA-256 hashes of job and callback tokens are stored. The prefixes tell the kinds apart without a
lookup (and let secret scanners recognise a leaked token); they carry no secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from jobcore.states import Actor

JOB_TOKEN_PREFIX: Final = "pjt_"  # noqa: S105 (a public prefix, not a secret)
CALLBACK_TOKEN_PREFIX: Final = "pjc_"  # noqa: S105
_TOKEN_BYTES: Final = 32  # 256 bits of randomness
_ADMIN_TOKEN = re.compile(r"[0-9a-f]{64}")
_RANDOM_TOKEN = re.compile(r"pj[tc]_[A-Za-z0-9_-]{43}")
PRODUCER_KEY_PREFIX: Final = "pjk_"
KEY_ID_CHARS: Final = 12  # 72 random bits: ids never collide in practice, and a collision is refused
_KEY_SECRET_BYTES: Final = 32  # 256 bits
_PRODUCER_KEY = re.compile(r"pjk_([A-Za-z0-9_-]{12})_[A-Za-z0-9_-]{43}")
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{12}")
# At most this many rotated-out tokens are in their grace period at once, so a job item stays small
# however fast rotations come. A token is never dropped before its grace ends (SPEC section 4): while
# this many are in grace, a rotation that is due by use, age or state change waits, and one asked for
# (POST /jobs/{uuid}/token) is refused with 429 until the oldest expires.
MAX_GRACE_TOKENS: Final = 4


def new_job_token() -> str:
    return JOB_TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)


def new_callback_token() -> str:
    return CALLBACK_TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)


def new_producer_key() -> tuple[str, str]:
    """(id, key): a fresh producer key `pjk_<id>_<secret>` and its public id."""
    key_id = secrets.token_urlsafe(9)  # 12 URL-safe characters
    while key_id.startswith("-"):  # a command line (`keys revoke <id>`) would take it for an option
        key_id = secrets.token_urlsafe(9)
    return key_id, f"{PRODUCER_KEY_PREFIX}{key_id}_{secrets.token_urlsafe(_KEY_SECRET_BYTES)}"


def producer_key_id(token: str) -> str | None:
    """The public id in a producer key, or None if `token` is not shaped like one. Proves nothing."""
    match = _PRODUCER_KEY.fullmatch(token)
    return match.group(1) if match else None


def is_key_id(text: str) -> bool:
    return bool(_KEY_ID.fullmatch(text))


# One message for every way a producer key can be wrong: which part was wrong is not said.
KEY_REFUSED: Final = "the producer key is not valid (unknown, revoked or expired)"
# The reason a queued event of a key revoked after its acceptance is recorded with.
KEY_REVOKED_AFTER: Final = "the producer key was revoked after this event was accepted"

# What an unknown key id is compared against, so that an unknown id and a wrong secret cost the same.
DUMMY_KEY_HASH: Final = "0" * 43


def hash_token(token: str) -> str:
    """URL-safe base64 of SHA-256, without padding (43 characters)."""
    digest = hashlib.sha256(token.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def credential_kind(token: str) -> Actor | None:
    """Which kind of credential `token` looks like, or None if it looks like none of them.

    The shape decides only which check applies; it proves nothing by itself.
    """
    if _RANDOM_TOKEN.fullmatch(token):
        return Actor.JOB if token.startswith(JOB_TOKEN_PREFIX) else Actor.CALLBACK
    if _PRODUCER_KEY.fullmatch(token):
        return Actor.KEY
    if _ADMIN_TOKEN.fullmatch(token):
        return Actor.ADMIN
    return None


def admin_window(now: float, lifetime: int) -> int:
    return math.floor(now / lifetime)


def admin_token(key: str, now: float, lifetime: int = 3600) -> str:
    """HMAC-SHA256(key, str(window)) as lowercase hex, window = floor(now / lifetime)."""
    return _admin_token_for_window(key, admin_window(now, lifetime))


def _admin_token_for_window(key: str, window: int) -> str:
    return hmac.new(key.encode("utf-8"), str(window).encode("ascii"), hashlib.sha256).hexdigest()


def is_admin_token(token: str, key: str, now: float, lifetime: int = 3600) -> bool:
    """True for the token of the current or the previous window. Constant-time comparisons."""
    if not key or not _ADMIN_TOKEN.fullmatch(token):
        return False
    window = admin_window(now, lifetime)
    # Compare against both windows without short-circuiting, so timing says nothing about which matched.
    current = hmac.compare_digest(token, _admin_token_for_window(key, window))
    previous = hmac.compare_digest(token, _admin_token_for_window(key, window - 1))
    return current | previous


def grace_key(token_hash: str) -> str:
    """How a rotated-out token's hash is kept in the grace list: its first 132 bits, which identify it
    as surely (a second token with the same prefix is a 2^132 search) and keep the job item small."""
    return token_hash[:22]


def same_hash(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and hmac.compare_digest(a, b)


@dataclass(frozen=True, slots=True)
class RotationPolicy:
    rotate_uses: int = 50
    rotate_seconds: int = 3600
    grace_seconds: int = 600

    def due(self, tokens: TokenState, now: float, *, state_changing: bool) -> bool:
        """Whether the current job token must be replaced after this use."""
        return (
            state_changing
            or tokens.uses + 1 >= self.rotate_uses
            or now - tokens.issued_at >= self.rotate_seconds
        )


@dataclass(frozen=True, slots=True)
class TokenState:
    """The token material of one job, as stored: hashes only."""

    token_hash: str | None
    issued_at: float
    uses: int = 0
    # grace_key of a rotated-out job token's hash -> epoch seconds until which it is still accepted.
    grace: Mapping[str, float] = field(default_factory=dict)
    callback_hash: str | None = None

    def authenticate(self, token: str, now: float) -> Actor | None:
        """Actor.JOB or Actor.CALLBACK if `token` is valid for this job now, else None. Constant time."""
        kind = credential_kind(token)
        if kind not in (Actor.JOB, Actor.CALLBACK):
            return None  # checked before hashing: only well-formed (ASCII) tokens are hashed
        hashed = hash_token(token)
        if kind is Actor.CALLBACK:
            return Actor.CALLBACK if same_hash(hashed, self.callback_hash) else None
        current = same_hash(hashed, self.token_hash)
        key = grace_key(hashed)
        in_grace = any(same_hash(key, h) and until > now for h, until in self.grace.items())
        return Actor.JOB if current or in_grace else None

    def live_grace(self, now: float) -> dict[str, float]:
        """The rotated-out tokens (hash -> until) still in their grace period."""
        return {h: until for h, until in self.grace.items() if until > now}

    def may_rotate(self, now: float) -> bool:
        """Whether a rotation now keeps every rotated-out token for its whole grace (MAX_GRACE_TOKENS)."""
        return self.token_hash is None or len(self.live_grace(now)) < MAX_GRACE_TOKENS

    def grace_frees_at(self, now: float) -> float:
        """When the oldest rotated-out token's grace ends (a rotation is possible again)."""
        return min(self.live_grace(now).values(), default=now)

    def rotated(self, fresh: str, now: float, policy: RotationPolicy) -> TokenState:
        """The state that accepts `fresh` as the current token, and the current one for its grace period.

        Every rotated-out token keeps its own grace; only expired ones are dropped. Callers check
        `may_rotate` first."""
        grace = self.live_grace(now)
        if self.token_hash is not None:
            grace[grace_key(self.token_hash)] = now + policy.grace_seconds
        return TokenState(hash_token(fresh), now, 0, grace, self.callback_hash)

    def current_from(self, token: str, successor: Callable[[str], str], now: float) -> str | None:
        """The current job token, if `token` is it or a rotated-out token (in grace) on its chain.

        `successor` is Keyring.next_job_token. None when `token` is not valid now, or when the current
        token does not descend from it (an admin issued a fresh one, or the admin key changed).
        """
        if self.authenticate(token, now) is not Actor.JOB or self.token_hash is None:
            return None
        candidate = token
        for _ in range(len(self.grace) + 1):
            if same_hash(hash_token(candidate), self.token_hash):
                return candidate
            candidate = successor(candidate)
        return None
