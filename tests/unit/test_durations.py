"""pending_seconds and run_seconds (SPEC section 2): the durations of a job's current generation, from its
timestamps and, while it runs, the clock the caller passes (a fake one here)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from jobcore.clock import FakeClock, iso
from jobcore.records import Job
from jobcore.states import State
from jobcore.tokens import TokenState

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def at(seconds: float) -> str:
    return iso(T0 + seconds)


def job(state: State = State.CREATED, created: float = 0.0, **times: float) -> Job:
    """A job created `created` seconds after T0 that reached each `<state>_at` of `times` then."""
    stamps = {name: at(offset) for name, offset in times.items()}
    return Job(
        uuid="11111111-1111-5111-8111-111111111111",
        pipeline_uuid="pipe-1",
        state=state,
        generation=1,
        archive_path="s3://bucket/jobs/pipe-1/11111111-1111-5111-8111-111111111111/",
        created_at=at(created),
        updated_at=max([at(created), *stamps.values()]),
        state_entered_at=max([at(created), *stamps.values()]),
        tokens=TokenState(None, T0),
        state_times={k: v for k, v in stamps.items() if k != "run_ended_at"},
        run_ended_at=stamps.get("run_ended_at"),
    )


def shown(record: Job, clock: FakeClock) -> tuple[float | None, float | None]:
    body = record.public(now=clock.now())
    return body["pending_seconds"], body["run_seconds"]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=T0)


def test_durations_of_a_job_that_never_ran_are_none(clock: FakeClock) -> None:
    # given a job waiting in CREATED for an hour
    clock.advance(3600)
    # then neither duration applies yet
    assert shown(job(), clock) == (None, None)


def test_durations_of_a_running_job_count_up_to_now(clock: FakeClock) -> None:
    # given a job created at T0 that ran 12.5 s later
    running = job(State.RUNNING, run_at=12.5)
    clock.advance(40)
    # then it waited 12.5 s and has run 27.5 s so far ...
    assert shown(running, clock) == (12.5, 27.5)
    # ... and the run keeps counting as the clock moves, the wait does not
    clock.advance(60.25)
    assert shown(running, clock) == (12.5, 87.75)


def test_durations_of_a_finished_job_are_fixed(clock: FakeClock) -> None:
    # given a job that ran from 10 s to 70 s
    finished = job(State.FINISHED, run_at=10, finished_at=70, run_ended_at=70)
    clock.advance(100)
    first = shown(finished, clock)
    clock.advance(3600)
    # then its durations do not move with the clock
    assert first == shown(finished, clock) == (10.0, 60.0)


def test_run_seconds_end_at_the_run_not_at_a_later_indexing(clock: FakeClock) -> None:
    # given a job that finished at 70 s, was indexed from 80 s, and came back to FINISHED at 500 s
    # (`indexed` moves finished_at; the run's end stays where the run ended)
    indexed = job(State.FINISHED, run_at=10, finished_at=500, indexing_at=80, run_ended_at=70)
    clock.advance(1000)
    # then the run is still the 60 s it took
    assert shown(indexed, clock) == (10.0, 60.0)


@pytest.mark.parametrize(
    ("state", "times", "expected"),
    [
        (State.FAILED, {"run_at": 5, "failed_at": 9, "run_ended_at": 9}, (5.0, 4.0)),
        (
            State.VALIDATING,
            {"run_at": 5, "finished_at": 15, "validating_at": 60, "run_ended_at": 15},
            (5.0, 10.0),
        ),
        (
            State.FAILED,
            {"run_at": 5, "finished_at": 15, "validating_at": 60, "failed_at": 90, "run_ended_at": 15},
            (5.0, 10.0),
        ),
        (State.RETIRED, {"run_at": 5, "finished_at": 15, "retired_at": 99, "run_ended_at": 15}, (5.0, 10.0)),
        (State.RESET, {"run_at": 5, "reset_at": 8, "run_ended_at": 8}, (5.0, 3.0)),
        (State.FAILED, {"failed_at": 9}, (None, None)),  # failed before it ever ran
        (State.CANCELED, {"canceled_at": 9}, (None, None)),
    ],
    ids=[
        "fail",
        "validating",
        "fail-while-validating",
        "retired",
        "reset-while-running",
        "fail-unrun",
        "canceled",
    ],
)
def test_run_seconds_stop_when_the_job_leaves_running(
    clock: FakeClock, state: State, times: dict[str, float], expected: tuple[float | None, float | None]
) -> None:
    clock.advance(10_000)
    assert shown(job(state, **times), clock) == expected


def test_a_run_recorded_before_its_end_was_kept_ends_at_the_earliest_finish_or_fail(clock: FakeClock) -> None:
    # given a job that left RUNNING before the run's end was recorded (no run_ended_at)
    legacy = job(State.FAILED, run_at=5, finished_at=15, failed_at=90)
    clock.advance(1000)
    # then its run ends at the finish, not at the later fail
    assert shown(legacy, clock) == (5.0, 10.0)


def test_a_new_generation_has_fresh_durations(clock: FakeClock) -> None:
    # given a job that ran and finished, then was reset: generation 2 is created anew at 300 s
    finished = job(State.FINISHED, run_at=10, finished_at=70, run_ended_at=70)
    second = replace(job(created=300), generation=2)
    clock.advance(400)
    assert shown(finished, clock) == (10.0, 60.0)
    # then the new generation has not run yet ...
    assert shown(second, clock) == (None, None)
    # ... and once it runs, its wait counts from its own creation
    running = replace(job(State.RUNNING, created=300, run_at=302.25), generation=2)
    assert shown(running, clock) == (2.25, 97.75)


def test_durations_are_rounded_to_the_millisecond(clock: FakeClock) -> None:
    # given a job running since 0.1 s, read at a time with more than millisecond precision
    running = job(State.RUNNING, run_at=0.1)
    clock.advance(0.3004)
    pending, run = shown(running, clock)
    assert (pending, run) == (0.1, 0.2)
    assert run is not None and len(str(run).split(".")[1]) <= 3


def test_a_clock_a_little_behind_the_worker_never_shows_a_negative_run(clock: FakeClock) -> None:
    # given a job the worker saw run at 5 s, read by an API whose clock says 4.9 s
    running = job(State.RUNNING, run_at=5)
    clock.advance(4.9)
    assert shown(running, clock) == (5.0, 0.0)
