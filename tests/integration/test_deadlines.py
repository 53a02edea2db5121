"""Deadlines (SPEC section 3a) on moto: the worker's write starts, restarts and clears them; the sweeper
finds the overdue ones in the deadline indexes and the worker fails them by the same guarded write."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from jobcore.records import HEARTBEAT, TIMEOUT

if TYPE_CHECKING:
    from api_fixtures import Api

    from tests.integration.conftest import Harness

pytest_plugins = ["api_fixtures"]


def _run(h: Harness, uuid: str, name: str = "run", data: dict[str, Any] | None = None) -> None:
    h.send(uuid, name, h.admin(), data)
    h.work()


def _failed_at_its_deadline(api: Api, **deadline: int) -> Any:
    """A job created through the API with `deadline`, run, then silent until the sweep failed it."""
    job = api.create(**deadline)
    api.send(job, "run")
    api.harness.clock.advance(max(deadline.values()) + 1)
    api.harness.service.sweep()
    api.work()
    return job


def _system_fails(h: Harness, uuid: str) -> list[dict[str, Any]]:
    return [e for e in h.history(uuid) if e["by"] == "system"]


def test_an_abandoned_job_is_failed_by_the_system_after_its_heartbeat(harness: Harness) -> None:
    h = harness
    job = h.create(heartbeat_seconds=60).job
    _run(h, job.uuid)
    running = h.repo.get(job.uuid)
    assert running is not None and running.heartbeat_seconds == 60
    assert running.heartbeat_due is not None
    assert running.heartbeat_due == pytest.approx(h.clock.now() * 1000 + 60_000, abs=1000)

    h.clock.advance(59)
    assert h.service.sweep() == []  # not yet
    h.clock.advance(2)
    overdue = h.service.sweep()
    assert [(o.uuid, o.reason) for o in overdue] == [(job.uuid, HEARTBEAT)]
    h.work()

    failed = h.repo.get(job.uuid)
    assert failed is not None and str(failed.state) == "FAILED"
    assert failed.deadline_missed == HEARTBEAT and failed.heartbeat_due is None
    (entry,) = _system_fails(h, job.uuid)
    assert entry["name"] == "fail" and entry["outcome"] == "applied"
    assert entry["data"]["reason"] == "heartbeat"
    assert entry["data"]["deadline"].startswith("2027-")  # ISO of the due time
    assert entry["from_state"] == "RUNNING" and entry["to_state"] == "FAILED"
    assert h.service.sweep() == []  # no deadline runs in FAILED


def test_every_applied_event_restarts_the_heartbeat(harness: Harness) -> None:
    h = harness
    job = h.create(heartbeat_seconds=60).job
    _run(h, job.uuid)
    for _ in range(3):
        h.clock.advance(45)
        _run(h, job.uuid, "update", {"progress": 1})
        assert h.service.sweep() == []
    h.clock.advance(61)
    assert len(h.service.sweep()) == 1


def test_the_timeout_runs_from_run_and_a_run_while_running_does_not_restart_it(harness: Harness) -> None:
    h = harness
    job = h.create(timeout_seconds=100).job
    _run(h, job.uuid)
    started = h.repo.get(job.uuid)
    assert started is not None and started.timeout_due is not None
    h.clock.advance(60)
    _run(h, job.uuid, "run")
    again = h.repo.get(job.uuid)
    assert again is not None and again.timeout_due == started.timeout_due
    h.clock.advance(41)
    (found,) = h.service.sweep()
    assert found.reason == TIMEOUT
    h.work()
    failed = h.repo.get(job.uuid)
    assert failed is not None and str(failed.state) == "FAILED" and failed.deadline_missed == TIMEOUT


def test_an_event_applied_before_the_fail_wins(harness: Harness) -> None:
    """The sweep saw the job overdue, but a heartbeat was applied before its fail: the fail is dropped."""
    h = harness
    job = h.create(heartbeat_seconds=60).job
    _run(h, job.uuid)
    h.clock.advance(61)
    assert len(h.service.sweep()) == 1  # queued ...
    h.send(job.uuid, "update", h.admin(), {"late": "but first"})  # ... but the heartbeat came first
    # (FIFO: the fail is ahead in the group; apply the update first, as a racing queue would)
    messages = h.receive(10)
    update = [m for m in messages if '"update"' in m["Body"]]
    fail = [m for m in messages if '"deadline"' in m["Body"]]
    assert len(update) == 1 and len(fail) == 1
    h.delete_succeeded(update, h.invoke(update))
    h.delete_succeeded(fail, h.invoke(fail))
    assert h.state(job.uuid) == "RUNNING"
    assert _system_fails(h, job.uuid) == []


def test_finish_clears_the_deadlines(harness: Harness) -> None:
    h = harness
    job = h.create(heartbeat_seconds=60, timeout_seconds=120).job
    _run(h, job.uuid)
    _run(h, job.uuid, "finish")
    done = h.repo.get(job.uuid)
    assert done is not None and done.heartbeat_due is None and done.timeout_due is None
    h.clock.advance(10_000)
    assert h.service.sweep() == []


@pytest.mark.parametrize("how", ["reset", "delete"])
def test_a_job_reset_or_deleted_while_its_deadline_runs_gets_no_ghost_fail(
    harness: Harness, how: str
) -> None:
    h = harness
    job = h.create(heartbeat_seconds=60).job
    _run(h, job.uuid)
    h.clock.advance(61)
    assert len(h.service.sweep()) == 1  # the fail is queued, then the admin resets or deletes ...
    h.drop_queued()
    data = {"keep_archive": True} if how == "reset" else {}
    _run(h, job.uuid, how, data)
    assert h.service.sweep() == []  # ... the deadline left the index with the state
    # and the fail queued before, arriving after it, is refused by the write's condition
    from jobcore.records import HEARTBEAT as reason

    overdue_then = _deadline_body(h, job.uuid, reason, deadline=_ms(h) - 1_000)
    h.send_raw(overdue_then, group=job.uuid)
    h.work()
    assert _system_fails(h, job.uuid) == []
    after = h.repo.get(job.uuid)
    assert after is not None
    assert (str(after.state), after.deleted) == (("CREATED", False) if how == "reset" else ("RUNNING", True))


def test_a_job_without_deadlines_is_never_in_the_indexes(harness: Harness) -> None:
    h = harness
    job = h.create().job
    _run(h, job.uuid)
    h.clock.advance(400 * 24 * 3600)
    assert h.service.sweep() == []
    running = h.repo.get(job.uuid)
    assert running is not None and running.heartbeat_due is None and running.timeout_due is None


def test_a_forged_deadline_message_is_recorded_rejected_and_fails_nothing(harness: Harness) -> None:

    h = harness
    job = h.create(heartbeat_seconds=60).job
    _run(h, job.uuid)
    h.clock.advance(61)
    body = json.loads(_deadline_body(h, job.uuid, HEARTBEAT, deadline=job_due(h, job.uuid)))
    body["signature"] = "0" * 64
    h.send_raw(json.dumps(body), group=job.uuid)
    h.work()
    assert h.state(job.uuid) == "RUNNING"
    (rejected,) = [e for e in h.history(job.uuid) if e["outcome"] == "rejected"]
    assert "signature" in (rejected.get("reason") or "")


def test_a_clock_behind_the_sweepers_does_not_fail_early(harness: Harness) -> None:
    """The sweeper's clock ran ahead (a jump): the worker's own clock says the deadline has not passed."""
    h = harness
    job = h.create(heartbeat_seconds=60).job
    _run(h, job.uuid)
    due = job_due(h, job.uuid)
    h.send_raw(_deadline_body(h, job.uuid, HEARTBEAT, deadline=due), group=job.uuid)
    h.work()  # the worker's now is before `due`
    assert h.state(job.uuid) == "RUNNING"


def test_the_deadline_expires_at_its_millisecond_not_before(harness: Harness) -> None:
    """A heartbeat in the same second as the deadline: overdue only strictly after it."""
    h = harness
    job = h.create(heartbeat_seconds=1).job
    _run(h, job.uuid)
    due = job_due(h, job.uuid)
    assert h.service.repo.overdue(due, 100) == []  # exactly at the deadline: still in time
    assert [o.uuid for o in h.service.repo.overdue(due + 1, 100)] == [job.uuid]


def job_due(h: Harness, uuid: str) -> int:
    job = h.repo.get(uuid)
    assert job is not None and job.heartbeat_due is not None
    return job.heartbeat_due


def _ms(h: Harness) -> int:
    return int(h.clock.now() * 1000)


def _deadline_body(h: Harness, uuid: str, reason: str, *, deadline: int) -> str:

    job = h.repo.get(uuid)
    assert job is not None
    state, generation = "RUNNING", 1
    signature = h.service.keyring().deadline_signature(uuid, reason, deadline, state, generation)
    return json.dumps(
        {
            "internal": "deadline",
            "uuid": uuid,
            "reason": reason,
            "deadline": deadline,
            "state": state,
            "generation": generation,
            "signature": signature,
        }
    )


# -- through the HTTP API ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [0, -5, 366 * 24 * 3600 + 1, 10**12, 1.5, "60", True, [60], {"s": 60}],
    ids=["zero", "negative", "over-a-leap-year", "absurd", "float", "string", "bool", "list", "object"],
)
@pytest.mark.parametrize("field", ["heartbeat_seconds", "timeout_seconds"])
def test_a_deadline_that_is_not_whole_seconds_in_range_is_400(api: Api, field: str, value: Any) -> None:
    spec = {"pipeline_uuid": "p", "data": {"x": 1}, field: value}
    response = api.call("POST", "/jobs", token=api.admin(), body=spec)
    assert response.status == 400, response.text
    assert field in response.body["error"]["message"]


def test_a_deadline_at_the_limits_is_accepted_and_shown(api: Api) -> None:
    job = api.create(heartbeat_seconds=1, timeout_seconds=366 * 24 * 3600)
    shown = job.body["job"]
    assert (shown["heartbeat_seconds"], shown["timeout_seconds"]) == (1, 366 * 24 * 3600)
    assert shown["heartbeat_due"] is None and shown["timeout_due"] is None  # CREATED: none runs yet
    api.send(job, "run")
    running = api.get(job, token=job.token).body
    assert running["heartbeat_due"] is not None and running["timeout_due"] is not None
    assert running["deadline_missed"] is None


def test_deadlines_given_for_a_job_that_exists_change_nothing(api: Api) -> None:
    """A create of the same inputs (the job exists, here already finished) is a 409; it does not set
    or change the existing job's deadlines."""
    job = api.create(data={"done": 1})
    api.send(job, "run")
    api.send(job, "finish")
    again = {"pipeline_uuid": "pipeline-1", "data": {"done": 1}, "heartbeat_seconds": 5}
    response = api.call("POST", "/jobs", token=api.admin(), body=again)
    assert response.status == 409 and response.body["uuid"] == job.uuid
    shown = api.get(job, token=api.admin()).body
    assert shown["heartbeat_seconds"] is None and shown["state"] == "FINISHED"


def test_the_pipeline_default_applies_unless_the_job_names_its_own_or_null(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The template parameter PipelineDeadlines reaches the API as PIPELINE_DEADLINES."""

    import api_handler

    defaults = {"*": {"heartbeat_seconds": 600}, "slow-pipe": {"timeout_seconds": 7200}}
    monkeypatch.setenv("PIPELINE_DEADLINES", json.dumps(defaults))
    service = api_handler.build_service(clock=api.clock)
    monkeypatch.setattr(api_handler, "_deps", lambda: service)
    plain = api.create(data={"n": 1}).body["job"]
    assert (plain["heartbeat_seconds"], plain["timeout_seconds"]) == (600, None)
    slow = api.create(pipeline_uuid="slow-pipe", data={"n": 2}).body["job"]
    assert (slow["heartbeat_seconds"], slow["timeout_seconds"]) == (None, 7200)  # its entry replaces *
    own = api.create(data={"n": 3}, heartbeat_seconds=30).body["job"]
    assert own["heartbeat_seconds"] == 30
    opted_out = api.create(data={"n": 4}, heartbeat_seconds=None).body["job"]
    assert opted_out["heartbeat_seconds"] is None


def test_an_accepted_event_still_queued_holds_the_fail_back(api: Api) -> None:
    """The API accepted a heartbeat before the deadline, and the worker has not applied it yet when the
    sweep runs: the fail waits for it, and the applied heartbeat restarts the deadline."""
    h = api.harness
    job = api.create(heartbeat_seconds=60)
    api.send(job, "run")
    h.clock.advance(59)
    response = api.event(job.uuid, job.token, "update", {"still": "alive"})  # accepted, not applied
    assert response.status == 202
    h.clock.advance(2)
    assert len(h.service.sweep()) == 1  # by the index the job looks overdue ...
    api.work()  # ... but the worker applies the update first (FIFO), then refuses the fail
    shown = api.get(job, token=api.admin()).body
    assert shown["state"] == "RUNNING"
    assert _system_fails(h, job.uuid) == []


def test_a_finish_after_the_timeout_is_409_and_recorded_as_ignored(api: Api) -> None:
    job = _failed_at_its_deadline(api, timeout_seconds=100)
    response = api.event(job.uuid, job.token, "finish", {"outputs": ["s3://late/result.csv"]})
    assert response.status == 409
    assert "timeout deadline passed" in response.body["error"]["message"]
    api.work()
    late = [e for e in api.history(job, token=api.admin()) if e["name"] == "finish"]
    assert [(e["outcome"], e["data"]) for e in late] == [("ignored", {"outputs": ["s3://late/result.csv"]})]
    shown = api.get(job, token=api.admin()).body
    assert (shown["state"], shown["deadline_missed"]) == ("FAILED", "timeout")


def test_a_callback_after_the_heartbeat_is_recorded_as_ignored(api: Api) -> None:
    job = _failed_at_its_deadline(api, heartbeat_seconds=60)
    assert api.callback(job, "FINISHED", {"result": 42}).status == 202  # the platform is not made to retry
    api.work()
    (late,) = [e for e in api.history(job, token=api.admin()) if e["name"] == "finish"]
    assert late["outcome"] == "ignored" and late["by"] == "callback"


def test_a_lost_accepted_event_does_not_hold_the_fail_back_forever(api: Api) -> None:
    """An event the API accepted but never queued (its container died between the write and the send)
    would hold the fail back for ever; past `order_wait_seconds` after the deadline the fail overtakes."""
    h = api.harness
    job = api.create(heartbeat_seconds=60)
    api.send(job, "run")
    assert api.event(job.uuid, job.token, "update").status == 202
    h.drop_queued()  # lost
    h.clock.advance(61)
    h.service.sweep()
    h.work_once()  # the fail goes back behind the accepted event ...
    assert api.get(job, token=api.admin()).body["state"] == "RUNNING"  # ... and waits for it, for now
    (waiting,) = api.queued()
    assert waiting["internal"] == "deadline" and waiting["since"] is not None
    h.send_raw(json.dumps({k: v for k, v in waiting.items() if not k.startswith("_")}), group=job.uuid)
    h.clock.advance(h.service.settings.order_wait_seconds)  # it has waited that long: lost
    api.work()
    assert api.get(job, token=api.admin()).body["state"] == "FAILED"


# -- the sweeper function, as EventBridge's schedule invokes it -----------------------------------


def test_the_sweeper_handler_queues_the_fail_of_every_overdue_job(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pathlib import Path

    import sweeper_handler

    from tests.integration.conftest import FakeContext, metric_totals

    h = harness
    monkeypatch.setattr(sweeper_handler, "_deps", lambda: h.service)
    stuck = [h.create(heartbeat_seconds=60).job for _ in range(3)]
    slow = h.create(timeout_seconds=30).job
    fine = h.create(heartbeat_seconds=3600).job
    for job in (*stuck, slow, fine):
        _run(h, job.uuid)
    h.clock.advance(61)
    event = json.loads((Path(__file__).resolve().parents[2] / "events" / "sweeper_schedule.json").read_text())
    capsys.readouterr()
    answer = sweeper_handler.handler(event, FakeContext())
    assert answer == {"overdue": 4, "heartbeat": 3, "timeout": 1}
    assert metric_totals(capsys.readouterr().out)["DeadlinesOverdue"] == 4
    h.work()
    states = {job.uuid: h.state(job.uuid) for job in (*stuck, slow, fine)}
    assert states == {**{j.uuid: "FAILED" for j in (*stuck, slow)}, fine.uuid: "RUNNING"}


def test_the_worker_counts_jobs_timed_out(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.integration.conftest import metric_totals

    h = harness
    job = h.create(heartbeat_seconds=60).job
    _run(h, job.uuid)
    h.clock.advance(61)
    h.service.sweep()
    capsys.readouterr()
    h.work()
    assert metric_totals(capsys.readouterr().out).get("JobsTimedOut") == 1


def test_the_sweeper_handler_builds_its_own_clients_from_the_environment(harness: Harness) -> None:
    """As Lambda runs it: its clients from the template's environment, the admin key from SSM."""
    import sweeper_handler

    from tests.integration.conftest import FakeContext

    sweeper_handler._deps.cache_clear()
    try:
        answer = sweeper_handler.handler({"detail-type": "Scheduled Event", "detail": {}}, FakeContext())
    finally:
        sweeper_handler._deps.cache_clear()
    assert answer == {"overdue": 0, "heartbeat": 0, "timeout": 0}  # (harness jobs live in 2027)


def test_an_event_accepted_after_the_sweep_is_applied_before_the_fail(api: Api) -> None:
    """The sweep queued the fail, then the API answered 202 for an update (queued behind the fail), and
    the worker gets to them only after order_wait_seconds: the fail may not overtake the update, which
    is queued, not lost (SPEC section 3, "a 202 is a promise"; 3a, the same guard as any event)."""
    h = api.harness
    job = api.create(heartbeat_seconds=60)
    api.send(job, "run")
    h.clock.advance(61)
    assert len(h.service.sweep()) == 1  # the fail is queued first ...
    response = api.event(job.uuid, job.token, "update", {"still": "alive"})
    assert response.status == 202  # ... then the update, behind it
    h.clock.advance(h.service.settings.order_wait_seconds)  # a backlog: the worker comes late
    api.work()
    (update,) = [e for e in api.history(job) if e["name"] == "update"]
    assert update["outcome"] == "applied", update.get("reason")
    assert api.get(job).body["state"] == "RUNNING"
    assert _system_fails(h, job.uuid) == []


def test_a_late_event_recorded_as_ignored_does_not_rotate_the_token(api: Api) -> None:
    """The 409 hands no token back, so the job token may not rotate there (SPEC section 4: rotation
    happens only where the new token can be handed back): the producer's token stays the current one."""
    from jobcore.tokens import hash_token

    h = api.harness
    job = _failed_at_its_deadline(api, timeout_seconds=100)
    response = api.event(job.uuid, job.token, "finish", {"outputs": ["s3://late/result.csv"]})
    assert response.status == 409
    api.work()
    stored = h.repo.get(job.uuid)
    assert stored is not None and stored.tokens.token_hash == hash_token(job.token)
    assert api.get(job, token=job.token).status == 200
