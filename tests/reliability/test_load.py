"""Load on the local stack (issue 5, item 3): 8 producers, 100 jobs, 4,000 events through the HTTP API.

Each job goes through a whole valid life, 40 events: run, 24 updates, finish, index, indexed, validate,
9 updates, validated, finalize. (No updates while INDEXING: the indexer ends that state on its own, by the
system's `indexed`, as soon as no accepted event is queued; a producer's `indexed` is allowed either way,
and the system's `indexed`, when it came first, is the one entry of a history nobody sent.) A producer follows the token each 202 hands back.
The API checks an event against the job's *stored* state, which lags the queue; so before an event that
the state before the last state change would not allow (finish after run, index after finish, ...), the
producer waits until that change is applied (`GET /jobs/{uuid}/events/{event_id}`); updates go back to
back. Each producer keeps its dozen jobs going at once (a job waiting for its change lets the others send),
and all of them pause while the queue is deeper than `MAX_DEPTH` (moto's FIFO queue slows as it fills).

Then: every accepted event is in its job's history exactly once, applied, in the order it was accepted;
nothing else is; every job is FINALIZED in its first generation; nothing went to the dead-letter queue.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest

from jobcore.states import State, is_allowed, next_state
from tests.e2e.conftest import queue_depth
from tests.reliability.conftest import Figures, LoadFigures, Output, RecordingApi, dead_lettered

pytestmark = pytest.mark.e2e

PRODUCERS = 8
JOBS = 100
# fmt: off
LIFE = (
    "run", *["update"] * 24, "finish",
    "index", "indexed",
    "validate", *["update"] * 9, "validated",
    "finalize",
)
# fmt: on
EVENTS = JOBS * len(LIFE)  # 4,000
MAX_DEPTH = 40  # queued messages above which producers pause
IDLE_PAUSE = 0.02


@dataclass
class LoadJob:
    uuid: str
    token: str
    step: int = 0
    state: State = State.CREATED  # once everything accepted so far is applied
    # the states the API may hold now: from the earliest state change not yet seen applied onwards
    possible: frozenset[State] = frozenset({State.CREATED})
    pending: str | None = None  # the event id of the latest state change not yet seen applied
    accepted: list[tuple[str, str]] = field(default_factory=list)  # (event id, name), in order

    @property
    def done(self) -> bool:
        return self.step == len(LIFE)

    def allowed_now(self, name: str) -> bool:
        """Whether the API takes `name` whichever of the possible states it holds."""
        return all(is_allowed(state, name) for state in self.possible)

    def accepted_event(self, event_id: str, name: str) -> None:
        self.accepted.append((event_id, name))
        self.step += 1
        after = next_state(self.state, name)
        if after != self.state:
            self.state, self.pending = after, event_id
            self.possible |= {after}

    def change_applied(self) -> None:
        """The latest change is applied, so is every event before it (one job's events are in order)."""
        self.possible, self.pending = frozenset({self.state}), None


@dataclass
class Tally:
    sent: int = 0
    refused: Counter[int] = field(default_factory=Counter)
    polls: int = 0
    max_depth: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class DepthGate:
    """Closed while the queue is deeper than MAX_DEPTH; one thread watches it for all producers."""

    def __init__(self, sqs: Any, queue_url: str, tally: Tally) -> None:
        self.sqs, self.queue_url, self.tally = sqs, queue_url, tally
        self.open = threading.Event()
        self.open.set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="load-depth-gate", daemon=True)

    def _watch(self) -> None:
        while not self.stop.is_set():
            depth = queue_depth(self.sqs, self.queue_url)
            self.tally.max_depth = max(self.tally.max_depth, depth)
            if depth > MAX_DEPTH:
                self.open.clear()
            else:
                self.open.set()
            self.stop.wait(0.5)
        self.open.set()


def _produce(
    api: RecordingApi, jobs: list[LoadJob], gate: DepthGate, tally: Tally, errors: list[str]
) -> None:
    try:
        while not all(job.done for job in jobs):
            progressed = False
            for job in jobs:
                if job.done:
                    continue
                name = LIFE[job.step]
                if not job.allowed_now(name):
                    # the job's last change must be applied first: look once, come back after the others
                    with tally.lock:
                        tally.polls += 1
                    path = f"/jobs/{job.uuid}/events/{job.pending}"
                    polled = api.request("GET", path, token=job.token)
                    status = polled.body.get("status") if polled.status == 200 else None
                    if status == "queued":
                        continue
                    assert status == "applied", (job.uuid, name, polled.status, polled.body)
                    job.change_applied()
                gate.open.wait()
                response = api.post_event(job.uuid, name, job.token, {"step": job.step})
                with tally.lock:
                    tally.sent += 1
                if response.status != 202:
                    with tally.lock:
                        tally.refused[response.status] += 1
                    errors.append(f"{job.uuid} {name} (step {job.step}): {response.status} {response.body}")
                    return
                job.token = response.body["token"]
                job.accepted_event(response.body["event_id"], name)
                progressed = True
            if not progressed:
                time.sleep(IDLE_PAUSE)
    except Exception as error:  # reported by the test
        errors.append(f"{type(error).__name__}: {error}")


def test_four_thousand_events_from_eight_producers_are_each_applied_once_in_order(
    api: RecordingApi, sqs: Any, output: Output, figures: Figures
) -> None:
    stack = api.stack
    unhandled = output.unhandled()
    # given 100 new jobs (made 8 at a time), shared among 8 producers
    with ThreadPoolExecutor(PRODUCERS) as pool:
        made = list(pool.map(lambda _: api.create_job(pipeline_uuid="load", tags=["load"]), range(JOBS)))
    jobs = [LoadJob(created["job"]["uuid"], created["token"]) for created in made]
    tally = Tally()
    gate = DepthGate(sqs, stack.resources.queue_url, tally)
    errors: list[str] = []
    producers = [
        threading.Thread(
            target=_produce, args=(api, jobs[i::PRODUCERS], gate, tally, errors), name=f"producer-{i}"
        )
        for i in range(PRODUCERS)
    ]
    # when they send every job's life through the HTTP API
    started = time.monotonic()
    gate.thread.start()
    for producer in producers:
        producer.start()
    for producer in producers:
        producer.join(timeout=300)
    gate.stop.set()
    gate.thread.join()
    stack.drain(timeout=120)
    seconds = time.monotonic() - started
    assert not errors, errors[:5]
    assert not any(p.is_alive() for p in producers)

    # then every accepted event is applied exactly once, in the order it was accepted, and nothing else
    with ThreadPoolExecutor(PRODUCERS) as pool:
        histories = list(pool.map(lambda job: api.history(job.uuid), jobs))
        views = list(pool.map(lambda job: api.job(job.uuid).body, jobs))
    lost = duplicated = wrong_state = applied = 0
    for job, history, view in zip(jobs, histories, views, strict=True):
        # the system's `indexed` ends the index run when it comes before the producer's (nobody sent it)
        system = [(e["name"], e["outcome"]) for e in history if e["by"] == "system"]
        assert system in ([], [("indexed", "applied")]), (job.uuid, system)
        history = [e for e in history if e["by"] != "system"]
        ids = Counter(entry["event_id"] for entry in history)
        accepted_ids = [event_id for event_id, _ in job.accepted]
        lost += sum(1 for event_id in accepted_ids if ids[event_id] == 0)
        duplicated += sum(n - 1 for n in ids.values() if n > 1)
        applied += sum(1 for entry in history if entry["outcome"] == "applied")
        assert [(e["event_id"], e["name"], e["outcome"]) for e in history] == [
            (event_id, name, "applied") for event_id, name in job.accepted
        ], job.uuid
        if (view["state"], view["generation"], view["last_event"]) != ("FINALIZED", 1, "finalize"):
            wrong_state += 1
    accepted = sum(len(job.accepted) for job in jobs)
    figures.load = LoadFigures(
        producers=PRODUCERS,
        jobs=JOBS,
        sent=tally.sent,
        accepted=accepted,
        applied=applied,
        lost=lost,
        duplicated=duplicated,
        wrong_final_state=wrong_state,
        seconds=seconds,
        max_queue_depth=tally.max_depth,
    )
    print(
        f"load: {tally.sent} sent, {accepted} accepted, {applied} applied, {lost} lost, {duplicated} applied "
        f"twice in {seconds:.1f} s ({applied / seconds:.1f} events/s); {tally.polls} status polls; "
        f"queue depth at most {tally.max_depth}"
    )
    assert (tally.sent, accepted, applied) == (EVENTS, EVENTS, EVENTS)
    assert (lost, duplicated, wrong_state) == (0, 0, 0)
    figures.dead_lettered = dead_lettered(stack, sqs)
    assert figures.dead_lettered == 0
    assert output.unhandled() == unhandled, output.failures[unhandled:]
