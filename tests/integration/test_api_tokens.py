"""SPEC section 4 through the HTTP API: rotation (state change, uses, age, request), the grace window,
revocation by reset and delete, admin-issued tokens, a job token confined to its job, and the cost of
an event (one conditional write, one send, a second write only when the token rotates)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest

from jobcore.tokens import RotationPolicy

if TYPE_CHECKING:
    from api_fixtures import Api

pytest_plugins = ["api_fixtures"]


@contextmanager
def aws_calls() -> Iterator[Counter[str]]:
    """Every AWS operation made inside the block, counted by `service:Operation`."""
    from botocore.client import BaseClient

    calls: Counter[str] = Counter()
    original = BaseClient._make_api_call

    def counting(self: Any, operation: str, params: Any) -> Any:
        calls[f"{self.meta.service_model.service_name}:{operation}"] += 1
        return original(self, operation, params)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(BaseClient, "_make_api_call", counting)
        yield calls


def dynamodb_calls(calls: Counter[str]) -> dict[str, int]:
    return {k.split(":")[1]: v for k, v in calls.items() if k.startswith("dynamodb:")}


# -- rotation ---------------------------------------------------------------------------------------


def test_state_changing_event_rotates_the_token(api: Api) -> None:
    # given a job in CREATED
    job = api.create()
    # when its token moves it to RUNNING, then reports progress without a state change
    run = api.event(job.uuid, job.token, "run")
    api.work()
    update = api.event(job.uuid, run.body["token"], "update")
    # then the first answer holds a new token, the second hands the same one back
    assert run.body["token"] != job.token
    assert update.body["token"] == run.body["token"]


def test_repeated_run_in_running_is_not_a_state_change(api: Api) -> None:
    job = api.create()
    api.send(job, "run")
    again = api.event(job.uuid, job.token, "run")
    assert again.body["token"] == job.token


def test_token_rotates_after_its_uses(api: Api) -> None:
    # given a policy of three uses per token
    api.service.policy = RotationPolicy(rotate_uses=3, rotate_seconds=3600, grace_seconds=600)
    job = api.create()
    # when it sends non-state-changing events, each applied by the worker (which counts the uses)
    tokens = []
    for _ in range(4):
        response = api.event(job.uuid, job.token, "update")
        assert response.status == 202
        tokens.append(response.body["token"])
        job.token = response.body["token"]
        api.work()
    # then the third use rotates it, and the new token starts counting afresh
    first = tokens[0]
    assert tokens[:2] == [first, first]
    assert tokens[2] != first
    assert tokens[3] == tokens[2]


def test_token_rotates_at_its_age(api: Api) -> None:
    # given a job whose token is an hour old
    job = api.create()
    api.clock.advance(3599)
    young = api.event(job.uuid, job.token, "update")
    api.clock.advance(2)
    # when it is used again
    old = api.event(job.uuid, job.token, "update")
    # then it is rotated
    assert young.body["token"] == job.token
    assert old.body["token"] != job.token


def test_rotation_on_request(api: Api) -> None:
    # given a job
    job = api.create()
    # when its token asks for a new one
    response = api.call("POST", f"/jobs/{job.uuid}/token", token=job.token)
    # then a new token works, the old one is still in its grace period, and no callback URL is issued
    assert response.status == 200
    fresh = response.body["token"]
    assert fresh != job.token and "callback_url" not in response.body
    assert response.headers["cache-control"] == "no-store"
    assert api.get(job, token=fresh).status == 200
    assert api.get(job, token=job.token).status == 200


def test_callback_token_cannot_rotate(api: Api) -> None:
    job = api.create()
    response = api.call("POST", f"/jobs/{job.uuid}/token", token=job.callback_token)
    assert response.status == 403


# -- the grace window -------------------------------------------------------------------------------


def test_rotated_out_token_works_for_its_grace_period_then_is_refused(api: Api) -> None:
    # given a token rotated out by a state-changing event
    job = api.create()
    old = job.token
    new = api.event(job.uuid, old, "run").body["token"]
    api.work()
    # when the old token is used within the grace period
    api.clock.advance(599)
    in_grace = api.event(job.uuid, old, "update")
    # then it is accepted, the event is applied, and the caller is handed the current token (not another
    # rotation, which would push other tokens out of their grace)
    assert in_grace.status == 202
    assert in_grace.body["token"] == new
    api.work()
    status = api.call("GET", f"/jobs/{job.uuid}/events/{in_grace.body['event_id']}", token=new).body
    assert status["status"] == "applied"
    # and after the grace period it is refused everywhere
    api.clock.advance(2)
    assert api.event(job.uuid, old, "update").status == 401
    assert api.get(job, token=old).status == 401
    assert api.event(job.uuid, in_grace.body["token"], "update").status == 202


def test_events_queued_with_the_presented_token_apply_after_it_rotated(api: Api) -> None:
    # given two events sent in a row with the same token, the first one rotating it
    job = api.create()
    first = api.event(job.uuid, job.token, "run")
    second = api.event(job.uuid, job.token, "update")
    # when the worker applies them
    api.work()
    # then both were applied: the queued message carries the presented token, valid in its grace
    assert [(e["name"], e["outcome"]) for e in api.history(job)] == [
        ("run", "applied"),
        ("update", "applied"),
    ]
    assert first.status == second.status == 202


def test_concurrent_rotation_hands_back_the_presented_token(api: Api, monkeypatch) -> None:
    # given another request that rotates the token (to its successor) between this request's
    # acceptance and its own rotation
    job = api.create()
    repo = api.service.repo
    accept = repo.accept
    successor = api.service.keyring().next_job_token(job.token)

    def accept_then_someone_rotates(acceptance: Any) -> Any:
        result = accept(acceptance)
        seen = result.job
        rotated = seen.tokens.rotated(successor, api.clock.now(), api.service.policy)
        assert repo.replace_tokens(seen.uuid, seen.tokens.token_hash, rotated)
        return result

    monkeypatch.setattr(repo, "accept", accept_then_someone_rotates)
    # when this request's state-changing event wants to rotate too
    response = api.event(job.uuid, job.token, "run")
    monkeypatch.undo()
    # then it is accepted and answers with the presented token, which is in its grace period ...
    assert response.status == 202
    assert response.body["token"] == job.token
    # ... and whose next use hands back the token the other request rotated to
    follow_up = api.event(job.uuid, job.token, "update")
    assert follow_up.status == 202 and follow_up.body["token"] == successor


# -- confinement and revocation ---------------------------------------------------------------------


def test_job_token_never_works_on_another_job(api: Api) -> None:
    # given two jobs
    a, b = api.create(), api.create()
    # when a's tokens are used on b
    # then every route refuses them
    assert api.event(b.uuid, a.token, "run").status == 401
    assert api.get(b, token=a.token).status == 401
    assert api.call("GET", f"/jobs/{b.uuid}/events", token=a.token).status == 401
    assert api.call("POST", f"/jobs/{b.uuid}/token", token=a.token).status == 401
    assert api.callback(b, "RUNNING", token=a.callback_token).status == 401
    assert api.queued() == []


def test_job_token_may_not_list_jobs(api: Api) -> None:
    job = api.create()
    assert api.call("GET", "/jobs", token=job.token).status == 403
    assert api.call("GET", "/jobs", token=job.callback_token).status == 403
    assert api.call("GET", "/jobs").status == 401


def test_reset_revokes_every_token_and_an_admin_issues_new_ones(api: Api) -> None:
    # given a running job whose tokens are known, with an old token still in its grace period
    job = api.create()
    old = job.token
    api.send(job, "run")
    # when an admin resets it (keeping the archive, so it is CREATED again at once)
    api.event(job.uuid, api.admin(), "reset", {"keep_archive": True})
    api.work()
    shown = api.get(job).body
    assert (shown["state"], shown["generation"]) == ("CREATED", 2)
    # then the job token, the rotated-out one and the callback token are all refused
    assert api.event(job.uuid, job.token, "run").status == 401
    assert api.event(job.uuid, old, "run").status == 401
    assert api.callback(job, "RUNNING").status == 401
    # and an admin gets a fresh job token and a new callback URL, both working
    issued = api.call("POST", f"/jobs/{job.uuid}/token", token=api.admin())
    assert issued.status == 200
    assert issued.body["callback_url"].startswith(
        f"https://api.example.com/jobs/{job.uuid}/callback?token=pjc_"
    )
    job.token = issued.body["token"]
    job.callback_url = issued.body["callback_url"]
    assert api.event(job.uuid, job.token, "run").status == 202
    assert api.callback(job, "RUNNING").status == 202
    api.work()
    assert [e["outcome"] for e in api.history(job)][-2:] == ["applied", "applied"]


def test_a_job_token_event_after_an_accepted_reset_is_refused_at_once(api: Api) -> None:
    # given a running job, and a reset accepted but not applied yet
    job = api.create()
    api.send(job, "run")
    assert api.event(job.uuid, api.admin(), "reset", {"keep_archive": True}).status == 202
    # when its job token, still valid until the reset is applied, sends an update
    late = api.event(job.uuid, job.token, "update")
    # then it is refused now (409), not answered 202 and rejected later: the reset comes first
    assert late.status == 409
    assert (
        late.body["error"]["message"]
        == "cannot update a job in RESET (where its 1 queued events will leave it)"
    )
    api.work()
    assert [e["name"] for e in api.history(job)] == ["run", "reset", "erased"]


def test_admin_issuing_a_token_keeps_the_callback_url(api: Api) -> None:
    # given a job and its callback URL
    job = api.create()
    # when an admin issues a fresh job token
    issued = api.call("POST", f"/jobs/{job.uuid}/token", token=api.admin()).body
    # then the answer shows the current callback URL, which still works
    assert issued["callback_url"] == job.callback_url
    assert api.callback(job, "RUNNING").status == 202
    assert api.get(job, token=issued["token"]).status == 200


def test_delete_revokes_the_tokens(api: Api) -> None:
    job = api.create()
    api.event(job.uuid, api.admin(), "delete")
    api.work()
    assert api.get(job, token=job.token).status == 404
    assert api.call("POST", f"/jobs/{job.uuid}/token", token=api.admin()).status == 404
    assert api.callback(job, "RUNNING").status == 404


# -- the cost of an event ---------------------------------------------------------------------------


def test_an_event_costs_one_write_and_one_send(api: Api) -> None:
    # given a running job (its token already rotated) and a warm admin-key cache
    job = api.create()
    api.send(job, "run")
    # when it sends a progress note
    with aws_calls() as calls:
        response = api.event(job.uuid, job.token, "update", {"progress": 50})
    # then the acceptance (one conditional write, no read) and one send
    assert response.status == 202
    assert dynamodb_calls(calls) == {"UpdateItem": 1}
    assert calls["sqs:SendMessage"] == 1
    assert sum(calls.values()) == 2


def test_a_rotating_event_adds_one_conditional_write(api: Api) -> None:
    job = api.create()
    with aws_calls() as calls:
        response = api.event(job.uuid, job.token, "run")
    assert response.body["token"] != job.token
    assert dynamodb_calls(calls) == {"UpdateItem": 2}
    assert calls["sqs:SendMessage"] == 1


def test_a_callback_costs_one_write_and_one_send(api: Api) -> None:
    job = api.create()
    with aws_calls() as calls:
        response = api.callback(job, "RUNNING", {"id": "platform-1"})
    assert response.status == 202
    assert dynamodb_calls(calls) == {"UpdateItem": 1}
    assert calls["sqs:SendMessage"] == 1
    assert sum(calls.values()) == 2


def test_a_late_callback_costs_one_more_write(api: Api) -> None:
    # given a finished job
    job = api.create()
    api.send(job, "run")
    api.send(job, "finish")
    # when its platform reports RUNNING after all (the finish is already known)
    with aws_calls() as calls:
        response = api.callback(job, "RUNNING")
    # then accepted (the platform is not made to retry) with a second write, to be recorded as ignored
    assert response.status == 202
    assert dynamodb_calls(calls) == {"UpdateItem": 2}
    api.work()
    assert api.history(job)[-1]["outcome"] == "ignored"


def test_refused_credentials_cost_nothing(api: Api) -> None:
    job = api.create()
    with aws_calls() as calls:
        assert api.event(job.uuid, "garbage", "run").status == 401
        assert api.event(job.uuid, None, "run").status == 401
    assert sum(calls.values()) == 0


def test_admin_key_is_read_from_ssm_once_and_cached(api: Api) -> None:
    import api_handler

    # given the real dependencies of a fresh container (SSM SecureString admin key)
    service = api_handler.build_service(clock=api.clock)
    job = api.create()
    calls_per_request = []
    for _ in range(3):
        with aws_calls() as calls:
            assert service.get_job(job.uuid, api.admin())["uuid"] == job.uuid
        calls_per_request.append(calls["ssm:GetParameter"])
    assert calls_per_request == [1, 0, 0]
