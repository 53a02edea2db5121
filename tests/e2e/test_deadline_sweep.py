"""Deadlines on the local stack (SPEC section 3a), from the user's side: a job whose compute platform
went silent is failed by the system on its own, with nothing polled by hand, and the failure is
notified like any state change. The stack runs the template's sweeper schedule itself; here every
half second instead of every minute (`schedule_seconds`), so the test waits for a 1 s heartbeat, not
for the clock of the schedule."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from pipelinejobs import Client
from pipelinejobs.local.stack import LocalStack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def deadline_stack() -> Iterator[LocalStack]:
    with LocalStack(
        port=0, aws_port=0, quiet=True, stack_name="pipelinejobs-e2e-deadlines", schedule_seconds=0.5
    ) as s:
        yield s


@pytest.fixture(scope="module")
def admin(deadline_stack: LocalStack) -> Client:
    return Client(deadline_stack.api_url, admin_key=deadline_stack.admin_key, timeout=10)


def _notified(stack: LocalStack, uuid: str, to_state: str, timeout: float = 20) -> dict:
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        found = [
            n for n in list(stack.notifications) if n.get("uuid") == uuid and n.get("to_state") == to_state
        ]
        if found:
            return found[-1]
        time.sleep(0.1)
    raise AssertionError(f"no notification of {uuid} reaching {to_state}")


def test_an_abandoned_job_fails_on_its_own_and_is_notified(deadline_stack: LocalStack, admin: Client) -> None:
    # given a job with a 1 s heartbeat that runs, then goes silent (its platform died)
    job = admin.create_job("pipe-deadlines", {"sample": time.time()}, heartbeat_seconds=1)
    job.send("run")
    job.wait_for("RUNNING", timeout=20)
    # when nobody does anything, then within a few seconds the system has failed it
    until = time.monotonic() + 20
    while admin.get_job_data(job.uuid)["state"] != "FAILED":
        assert time.monotonic() < until, "the job was not failed at its deadline"
        time.sleep(0.2)
    shown = admin.get_job_data(job.uuid)
    assert shown["deadline_missed"] == "heartbeat" and shown["heartbeat_due"] is None
    (fail,) = [e for e in admin.history(job.uuid) if e["name"] == "fail"]
    assert (fail["by"], fail["outcome"], fail["data"]["reason"]) == ("system", "applied", "heartbeat")
    # and the failure was notified like any state change
    notification = _notified(deadline_stack, job.uuid, "FAILED")
    assert notification["from_state"] == "RUNNING" and notification["event"] == "fail"
    assert notification["deadline_missed"] == "heartbeat"


def test_a_job_that_keeps_sending_heartbeats_is_left_running(
    deadline_stack: LocalStack, admin: Client
) -> None:
    job = admin.create_job("pipe-deadlines", {"sample": time.time()}, heartbeat_seconds=2)
    job.send("run")
    job.wait_for("RUNNING", timeout=20)
    for _ in range(6):  # 3 s of heartbeats every 0.5 s: each restarts the 2 s deadline
        time.sleep(0.5)
        job.send("update", {"progress": 1})
    job.wait_for("RUNNING", timeout=20)
    # then, silent, it fails; and a finish that comes too late is 409, recorded as ignored
    until = time.monotonic() + 20
    while admin.get_job_data(job.uuid)["state"] != "FAILED":
        assert time.monotonic() < until
        time.sleep(0.2)
    from pipelinejobs import EventNotAllowed

    with pytest.raises(EventNotAllowed) as refused:
        job.send("finish", {"outputs": ["late.csv"]})
    assert "heartbeat deadline passed" in str(refused.value)
    until = time.monotonic() + 20
    while not [e for e in admin.history(job.uuid) if e["name"] == "finish"]:
        assert time.monotonic() < until
        time.sleep(0.2)
    (late,) = [e for e in admin.history(job.uuid) if e["name"] == "finish"]
    assert late["outcome"] == "ignored" and late["data"] == {"outputs": ["late.csv"]}
