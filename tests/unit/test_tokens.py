"""The three credentials of SPEC section 4, with an injected clock."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import pytest

from jobcore.clock import FakeClock
from jobcore.keyring import Keyring
from jobcore.states import Actor
from jobcore.tokens import (
    CALLBACK_TOKEN_PREFIX,
    JOB_TOKEN_PREFIX,
    MAX_GRACE_TOKENS,
    RotationPolicy,
    TokenState,
    admin_token,
    admin_window,
    credential_kind,
    grace_key,
    hash_token,
    is_admin_token,
    new_callback_token,
    new_job_token,
    same_hash,
)

URL_SAFE = re.compile(r"[A-Za-z0-9_-]+")
KEY = "admin-key-for-tests"
LIFETIME = 3600
POLICY = RotationPolicy()  # 50 uses, 3600 s, 600 s grace


def fresh_state(clock: FakeClock) -> tuple[str, TokenState]:
    token, callback = new_job_token(), new_callback_token()
    return token, TokenState(hash_token(token), clock.now(), 0, {}, hash_token(callback))


def rotate(state: TokenState, clock: FakeClock, fresh: str | None = None) -> tuple[str, TokenState]:
    fresh = fresh or new_job_token()
    return fresh, state.rotated(fresh, clock.now(), POLICY)


# -- job and callback tokens: shape -------------------------------------------------------------------


@pytest.mark.parametrize(("make", "prefix"), [(new_job_token, "pjt_"), (new_callback_token, "pjc_")])
def test_new_token_is_prefixed_url_safe_and_has_at_least_128_bits(make, prefix: str) -> None:
    # when a token is made
    token = make()
    # then it has its kind's prefix and a URL-safe random body of at least 128 bits
    assert token.startswith(prefix)
    body = token[len(prefix) :]
    assert URL_SAFE.fullmatch(body)
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    assert len(raw) * 8 >= 128


def test_token_prefixes_are_the_documented_ones() -> None:
    assert (JOB_TOKEN_PREFIX, CALLBACK_TOKEN_PREFIX) == ("pjt_", "pjc_")


def test_new_tokens_never_repeat() -> None:
    tokens = {new_job_token() for _ in range(1000)} | {new_callback_token() for _ in range(1000)}
    assert len(tokens) == 2000


def test_hash_token_is_43_char_sha256_and_not_the_token() -> None:
    # given a token
    token = new_job_token()
    # when it is hashed
    hashed = hash_token(token)
    # then the hash is the unpadded URL-safe base64 of SHA-256, never the token itself
    assert hashed != token
    assert token not in hashed
    assert len(hashed) == 43
    assert URL_SAFE.fullmatch(hashed)
    expected = base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(b"=").decode()
    assert hashed == expected


def test_same_hash_refuses_missing_values() -> None:
    assert same_hash("abc", "abc")
    assert not same_hash("abc", "abd")
    assert not same_hash(None, "abc")
    assert not same_hash("abc", None)
    assert not same_hash(None, None)


# -- authenticate ---------------------------------------------------------------------------------------


def test_authenticate_accepts_the_current_job_token() -> None:
    # given a job's token state
    clock = FakeClock()
    token, state = fresh_state(clock)
    # when its current token is presented
    # then it authenticates as the job
    assert state.authenticate(token, clock.now()) is Actor.JOB


def test_authenticate_accepts_a_rotated_out_token_within_grace() -> None:
    # given a token rotated out just now
    clock = FakeClock()
    old, state = fresh_state(clock)
    new, state = rotate(state, clock)
    # when the old one is presented before the grace period ends
    clock.advance(POLICY.grace_seconds - 1)
    # then both the new and the old token are accepted
    assert state.authenticate(new, clock.now()) is Actor.JOB
    assert state.authenticate(old, clock.now()) is Actor.JOB


def test_authenticate_refuses_a_rotated_out_token_after_grace() -> None:
    # given a token rotated out
    clock = FakeClock()
    old, state = fresh_state(clock)
    new, state = rotate(state, clock)
    # when the grace period has passed
    clock.advance(POLICY.grace_seconds + 1)
    # then the old token is refused; the new one is still good
    assert state.authenticate(old, clock.now()) is None
    assert state.authenticate(new, clock.now()) is Actor.JOB


def test_authenticate_refuses_a_rotated_out_token_exactly_at_grace_end() -> None:
    clock = FakeClock()
    old, state = fresh_state(clock)
    _, state = rotate(state, clock)
    clock.advance(POLICY.grace_seconds)
    assert state.authenticate(old, clock.now()) is None


def test_authenticate_refuses_another_jobs_tokens() -> None:
    # given two jobs
    clock = FakeClock()
    token_a, state_a = fresh_state(clock)
    token_b, callback_b = new_job_token(), new_callback_token()
    state_b = TokenState(hash_token(token_b), clock.now(), 0, {}, hash_token(callback_b))
    # when one job's token or callback token is presented to the other
    # then it is refused
    assert state_a.authenticate(token_b, clock.now()) is None
    assert state_a.authenticate(callback_b, clock.now()) is None
    assert state_b.authenticate(token_a, clock.now()) is None


def test_authenticate_callback_token_authenticates_as_callback_only() -> None:
    # given a job with a callback token
    clock = FakeClock()
    callback = new_callback_token()
    token = new_job_token()
    state = TokenState(hash_token(token), clock.now(), 0, {}, hash_token(callback))
    # when the callback token is presented
    # then it is a callback credential, never the job's own
    assert state.authenticate(callback, clock.now()) is Actor.CALLBACK


def test_authenticate_a_callback_token_in_the_job_token_slot_is_refused() -> None:
    # given a job whose job-token hash happens to be that of a callback-shaped token
    clock = FakeClock()
    callback = new_callback_token()
    state = TokenState(hash_token(callback), clock.now())
    # when it is presented
    # then it is refused: callback-shaped tokens are only checked against the callback hash
    assert state.authenticate(callback, clock.now()) is None


def test_authenticate_callback_token_does_not_expire_or_rotate() -> None:
    # given a callback token and many rotations of the job token over a long time
    clock = FakeClock()
    _, state = fresh_state(clock)
    callback = new_callback_token()
    state = TokenState(state.token_hash, state.issued_at, 0, {}, hash_token(callback))
    for _ in range(10):
        clock.advance(10_000)
        _, state = rotate(state, clock)
    # then the callback token still authenticates
    assert state.authenticate(callback, clock.now()) is Actor.CALLBACK


@pytest.mark.parametrize(
    "presented",
    ["", "garbage", "pjt_short", "pjx_" + "a" * 43, "a" * 64, "Bearer pjt_" + "a" * 43],
)
def test_authenticate_refuses_malformed_tokens(presented: str) -> None:
    clock = FakeClock()
    _, state = fresh_state(clock)
    assert state.authenticate(presented, clock.now()) is None


def test_authenticate_with_no_tokens_stored_refuses_everything() -> None:
    # given a job whose tokens were all revoked (reset, delete)
    clock = FakeClock()
    state = TokenState(None, clock.now())
    # then no token shape authenticates
    assert state.authenticate(new_job_token(), clock.now()) is None
    assert state.authenticate(new_callback_token(), clock.now()) is None


# -- rotation -------------------------------------------------------------------------------------------


def test_rotation_policy_defaults_match_the_spec() -> None:
    assert (POLICY.rotate_uses, POLICY.rotate_seconds, POLICY.grace_seconds) == (50, 3600, 600)


def test_rotation_due_after_a_state_changing_event() -> None:
    clock = FakeClock()
    _, state = fresh_state(clock)
    assert POLICY.due(state, clock.now(), state_changing=True)
    assert not POLICY.due(state, clock.now(), state_changing=False)


def test_rotation_due_at_n_uses() -> None:
    # given a token used one time fewer than the limit before this use
    clock = FakeClock()
    policy = RotationPolicy(rotate_uses=5)
    _, fresh = fresh_state(clock)
    state_before_last = TokenState(fresh.token_hash, clock.now(), 3)
    state_at_last = TokenState(fresh.token_hash, clock.now(), 4)
    # then the 4th use keeps it, the 5th use rotates it
    assert not policy.due(state_before_last, clock.now(), state_changing=False)
    assert policy.due(state_at_last, clock.now(), state_changing=False)


def test_rotation_due_at_age() -> None:
    # given a token issued now
    clock = FakeClock()
    _, state = fresh_state(clock)
    # when it is one second short of the age limit, then exactly at it
    clock.advance(POLICY.rotate_seconds - 1)
    young = POLICY.due(state, clock.now(), state_changing=False)
    clock.advance(1)
    old = POLICY.due(state, clock.now(), state_changing=False)
    # then only the old one is due
    assert not young
    assert old


def test_rotated_gives_a_fresh_token_and_resets_uses_and_age() -> None:
    # given a much-used old token
    clock = FakeClock()
    old, state = fresh_state(clock)
    state = TokenState(state.token_hash, state.issued_at, 49, {}, state.callback_hash)
    clock.advance(100)
    # when it is rotated
    new, rotated = rotate(state, clock)
    # then a new job token, counted from zero and from now; the callback hash is kept
    assert new != old
    assert credential_kind(new) is Actor.JOB
    assert rotated.token_hash == hash_token(new)
    assert rotated.uses == 0
    assert rotated.issued_at == clock.now()
    assert rotated.callback_hash == state.callback_hash
    assert rotated.grace == {grace_key(hash_token(old)): clock.now() + POLICY.grace_seconds}
    # and no token is stored in clear
    assert new not in repr(rotated)
    assert old not in repr(rotated)


def test_rotated_never_drops_a_token_before_its_grace_ends() -> None:
    # given as many quick rotations as the grace list holds
    clock = FakeClock()
    token, state = fresh_state(clock)
    issued = [token]
    for _ in range(MAX_GRACE_TOKENS):
        assert state.may_rotate(clock.now())
        clock.advance(1)
        token, state = rotate(state, clock)
        issued.append(token)
    # then every rotated-out token is still in grace, and no further rotation may happen
    assert [state.authenticate(t, clock.now()) for t in issued] == [Actor.JOB] * (MAX_GRACE_TOKENS + 1)
    assert not state.may_rotate(clock.now())
    # until the oldest one's grace ends, which grace_frees_at says
    frees_at = state.grace_frees_at(clock.now())
    assert frees_at == FakeClock().now() + 1 + POLICY.grace_seconds
    clock.advance(frees_at - clock.now())
    assert state.may_rotate(clock.now())
    assert state.authenticate(issued[0], clock.now()) is None


def test_current_from_follows_the_chain_from_a_token_in_grace() -> None:
    # given a chain of rotations, each token the successor of the one before
    clock = FakeClock()
    keyring = Keyring("chain-key")
    token, state = fresh_state(clock)
    chain = [token]
    for _ in range(3):
        clock.advance(10)
        token, state = rotate(state, clock, keyring.next_job_token(token))
        chain.append(token)
    # when any token of the chain still in grace is presented
    # then the current token is found from it
    for presented in chain:
        assert state.current_from(presented, keyring.next_job_token, clock.now()) == chain[-1]
    # and not from a token of another key's chain, a stranger, or one whose grace ended
    assert state.current_from(chain[0], Keyring("other-key").next_job_token, clock.now()) is None
    assert state.current_from(new_job_token(), keyring.next_job_token, clock.now()) is None
    clock.advance(POLICY.grace_seconds + 1)
    assert state.current_from(chain[0], keyring.next_job_token, clock.now()) is None
    assert state.current_from(chain[-1], keyring.next_job_token, clock.now()) == chain[-1]


def test_current_from_a_broken_chain_is_none() -> None:
    # given a rotation to a random token (an admin's fresh one), not the successor
    clock = FakeClock()
    keyring = Keyring("chain-key")
    old, state = fresh_state(clock)
    _, state = rotate(state, clock)
    # then the old token, still valid, does not lead to the current one
    assert state.authenticate(old, clock.now()) is Actor.JOB
    assert state.current_from(old, keyring.next_job_token, clock.now()) is None


def test_rotated_drops_expired_grace_entries() -> None:
    # given a token rotated out, then the grace period passing
    clock = FakeClock()
    first, state = fresh_state(clock)
    second, state = rotate(state, clock)
    clock.advance(POLICY.grace_seconds + 1)
    # when the job token rotates again
    _, state = rotate(state, clock)
    # then the expired entry is gone and only the just-rotated-out token is in grace
    assert set(state.grace) == {grace_key(hash_token(second))}
    assert grace_key(hash_token(first)) not in state.grace


def test_rotated_from_revoked_state_adds_no_grace_entry() -> None:
    clock = FakeClock()
    token, state = rotate(TokenState(None, clock.now()), clock)
    assert state.grace == {}
    assert state.authenticate(token, clock.now()) is Actor.JOB


# -- admin tokens ---------------------------------------------------------------------------------------


def expected_admin_token(key: str, window: int) -> str:
    return hmac.new(key.encode("utf-8"), str(window).encode("ascii"), hashlib.sha256).hexdigest()


def test_admin_token_is_hmac_sha256_hex_of_the_window() -> None:
    # given a time
    clock = FakeClock()
    window = int(clock.now() // LIFETIME)
    # when the admin token is computed
    token = admin_token(KEY, clock.now(), LIFETIME)
    # then it is the lowercase hex HMAC-SHA256 of str(window) under the key
    assert token == expected_admin_token(KEY, window)
    assert re.fullmatch(r"[0-9a-f]{64}", token)
    assert admin_window(clock.now(), LIFETIME) == window


def test_admin_token_is_the_same_throughout_a_window() -> None:
    start = 1_767_225_600.0  # a window boundary
    assert admin_token(KEY, start) == admin_token(KEY, start + LIFETIME - 0.001)
    assert admin_token(KEY, start) != admin_token(KEY, start + LIFETIME)


def test_admin_token_current_and_previous_window_are_valid() -> None:
    # given a token issued now
    clock = FakeClock()
    token = admin_token(KEY, clock.now(), LIFETIME)
    # then it is valid now and throughout the next window
    assert is_admin_token(token, KEY, clock.now(), LIFETIME)
    clock.advance(LIFETIME)
    assert is_admin_token(token, KEY, clock.now(), LIFETIME)


def test_admin_token_two_windows_ago_is_invalid() -> None:
    # given a token of two windows ago
    clock = FakeClock()
    window = admin_window(clock.now(), LIFETIME)
    old = expected_admin_token(KEY, window - 2)
    # then it is refused
    assert not is_admin_token(old, KEY, clock.now(), LIFETIME)
    # and so is a token of the next window (not yet valid)
    assert not is_admin_token(expected_admin_token(KEY, window + 1), KEY, clock.now(), LIFETIME)


def test_admin_token_with_the_wrong_key_is_invalid() -> None:
    clock = FakeClock()
    token = admin_token("another-key", clock.now(), LIFETIME)
    assert not is_admin_token(token, KEY, clock.now(), LIFETIME)


def test_admin_token_with_an_empty_key_is_never_valid() -> None:
    clock = FakeClock()
    assert not is_admin_token(admin_token("", clock.now()), "", clock.now())


@pytest.mark.parametrize(
    "presented",
    [
        "z" * 64,  # not hex
        "g" + "0" * 63,
        "0" * 63,  # too short
        "0" * 65,  # too long
        "",
    ],
)
def test_admin_token_not_hex_or_wrong_length_is_invalid(presented: str) -> None:
    clock = FakeClock()
    assert not is_admin_token(presented, KEY, clock.now(), LIFETIME)


def test_admin_token_in_uppercase_is_invalid() -> None:
    # the SPEC names the lowercase hex digest
    clock = FakeClock()
    token = admin_token(KEY, clock.now(), LIFETIME)
    assert not is_admin_token(token.upper(), KEY, clock.now(), LIFETIME)


def test_admin_token_is_not_accepted_as_a_job_token() -> None:
    clock = FakeClock()
    _, state = fresh_state(clock)
    assert state.authenticate(admin_token(KEY, clock.now()), clock.now()) is None


# -- credential_kind ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "kind"),
    [
        ("pjt_" + "A" * 43, Actor.JOB),
        ("pjt_" + "a-_9" * 10 + "abc", Actor.JOB),
        ("pjc_" + "A" * 43, Actor.CALLBACK),
        ("0123456789abcdef" * 4, Actor.ADMIN),
        ("pjt_" + "A" * 42, None),  # too short
        ("pjt_" + "A" * 44, None),  # too long
        ("pjt_" + "A" * 42 + "=", None),  # padding is not URL-safe token text
        ("pjx_" + "A" * 43, None),  # unknown prefix
        ("PJT_" + "A" * 43, None),
        ("0123456789ABCDEF" * 4, None),  # uppercase hex
        ("0" * 63, None),
        ("", None),
        ("Bearer " + "0" * 64, None),
    ],
)
def test_credential_kind_classifies_by_shape(token: str, kind: Actor | None) -> None:
    assert credential_kind(token) is kind


def test_credential_kind_of_fresh_tokens() -> None:
    assert credential_kind(new_job_token()) is Actor.JOB
    assert credential_kind(new_callback_token()) is Actor.CALLBACK
    assert credential_kind(admin_token(KEY, FakeClock().now())) is Actor.ADMIN
