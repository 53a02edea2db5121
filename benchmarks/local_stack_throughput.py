"""Sustained events/s end to end over HTTP against the local stack, with the queue depth sampled.

Starts the local stack (moto's server in a child process, the API behind its HTTP bridge, the worker fed
by the SQS event source with Lambda's semantics) and runs producers for `--duration` seconds. Each
producer drives jobs through a lifecycle as a well-behaved client of the API would: create (admin),
`run`, 8 `update`s, `finish`, always with the token of the last answer. Updates go back to back; a
state-changing event needs the previous one applied, so when the API answers 409 (not allowed from the
job's state as it reads it), the producer waits 50 ms and sends again. The SQS queue's depth (visible +
in flight + delayed) is sampled every second.

Figures: accepted and applied events/s over the window, 409 retries, the queue depth (max, mean, first
and last third), and the time the queue takes to drain after the producers stop. Target (issue 5): the
depth stays bounded (no growth from the first third of the window to the last, and it drains in
<= 30 s); events/s has no target (it measures this machine and the emulator, not AWS).

    python benchmarks/local_stack_throughput.py [--duration 60] [--producers 4] [--persist]

With --persist the stack runs on a data folder, as `pipelinejobs serve` does (snapshots after changes,
at most once a second), and the last line says what a snapshot of the run's data costs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid as uuidlib
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import use_project_paths

UPDATES_PER_JOB = 8
DRAIN_LIMIT_S = 30.0


class Producer(threading.Thread):
    """Drives jobs through their lifecycle over HTTP until told to stop."""

    def __init__(self, api_url: str, admin: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.api_url, self.admin, self.stop = api_url, admin, stop
        self.accepted = 0
        self.created = 0
        self.retries = 0
        self.errors: Counter[str] = Counter()

    def request(self, method: str, path: str, token: str, body: Any) -> tuple[int, Any]:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        request = urllib.request.Request(self.api_url + path, data=data, method=method, headers=headers)  # noqa: S310 (http://127.0.0.1)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def send(self, uuid: str, token: str, name: str, data: dict[str, Any]) -> str | None:
        """Send until accepted (409: the previous state change is not applied yet); the next token."""
        while not self.stop.is_set():
            status, body = self.request("POST", f"/jobs/{uuid}/events", token, {"name": name, "data": data})
            if status == 202:
                self.accepted += 1
                return str(body["token"])
            if status == 409:
                self.retries += 1
                time.sleep(0.05)
                continue
            self.errors[f"{name} {status}"] += 1
            return None
        return None

    def run(self) -> None:
        while not self.stop.is_set():
            spec = {"pipeline_uuid": "bench", "data": {"sample": uuidlib.uuid4().hex}}
            status, body = self.request("POST", "/jobs", self.admin, spec)
            if status != 201:
                self.errors[f"create {status}"] += 1
                continue
            self.created += 1
            uuid, token = body["job"]["uuid"], body["token"]
            for name, data in [
                ("run", {}),
                *(("update", {"progress": i}) for i in range(UPDATES_PER_JOB)),
                ("finish", {"outputs": 3}),
            ]:
                next_token = self.send(uuid, token, name, data)
                if next_token is None:
                    break
                token = next_token


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    parser.add_argument("--producers", type=int, default=4, help="concurrent producers (default 4)")
    parser.add_argument(
        "--persist",
        action="store_true",
        help="run the stack on a (temporary) data folder, as `pipelinejobs serve` does, and report what "
        "its snapshots cost (default: in memory, as the tests run it)",
    )
    args = parser.parse_args(argv)

    use_project_paths()
    os.environ.pop("AWS_PROFILE", None)
    from pipelinejobs.local.stack import LocalStack

    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def log(text: str, kind: str) -> None:
        with lock:
            outcomes[kind] += 1

    snapshot: dict[str, int] = {}
    # The functions' own output (logs, metrics) goes where Lambda would send it: not to this terminal.
    with (
        open(os.devnull, "w") as null,
        tempfile.TemporaryDirectory(prefix="pipelinejobs-bench-") as folder,
        contextlib.redirect_stdout(null),
        LocalStack(
            port=0,
            aws_port=0,
            quiet=True,
            log=log,
            stack_name="pipelinejobs-bench",
            data_dir=Path(folder) / "data" if args.persist else None,
        ) as stack,
    ):
        sqs = stack.client("sqs")
        queue_url = stack.resources.queue_url
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]

        def depth() -> int:
            attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
            return sum(int(attributes.get(name, 0)) for name in names)

        stop = threading.Event()
        producers = [Producer(stack.api_url, stack.admin_token(), stop) for _ in range(args.producers)]
        started = time.monotonic()
        with lock:
            applied_before = outcomes["applied"]
        for p in producers:
            p.start()
        samples: list[int] = []
        while (elapsed := time.monotonic() - started) < args.duration:
            samples.append(depth())
            time.sleep(max(0.0, 1.0 - (time.monotonic() - started - elapsed)))
        stop.set()
        for p in producers:
            p.join()
        window = time.monotonic() - started
        with lock:
            applied_in_window = outcomes["applied"] - applied_before
        drain_started = time.monotonic()
        try:
            stack.drain(timeout=DRAIN_LIMIT_S)
            drained: float | None = time.monotonic() - drain_started
        except TimeoutError:
            drained = None
        if args.persist:
            snapshot = stack.snapshot()  # of everything the run made: what one costs at that size
        with lock:
            final = dict(outcomes)

    accepted = sum(p.accepted for p in producers)
    created = sum(p.created for p in producers)
    retries = sum(p.retries for p in producers)
    errors = sum((p.errors for p in producers), Counter())
    third = max(1, len(samples) // 3)
    first, last = statistics.mean(samples[:third]), statistics.mean(samples[-third:])
    bounded = drained is not None and last <= max(2 * first, first + 20)
    print(
        f"{args.producers} producers for {window:.0f} s over HTTP (lifecycle: create, run, "
        f"{UPDATES_PER_JOB} updates, finish); {os.cpu_count()} CPUs"
    )
    print(f"jobs created:          {created}")
    print(f"events accepted:       {accepted} ({accepted / window:.1f} events/s)")
    print(
        f"events applied:        {applied_in_window} in the window ({applied_in_window / window:.1f} events/s)"
    )
    print(f"409 retries:           {retries} (a state change sent before the previous one was applied)")
    print(f"other refusals:        {dict(errors) or 'none'}")
    print(f"worker outcomes:       { {k: v for k, v in final.items() if k != 'request'} }")
    print(
        f"queue depth (1/s):     max {max(samples)}, mean {statistics.mean(samples):.1f}, "
        f"first third {first:.1f}, last third {last:.1f}"
    )
    print(
        f"drained after stop:    {f'{drained:.1f} s' if drained is not None else f'not within {DRAIN_LIMIT_S:.0f} s'}"
    )
    if args.persist:
        print(
            f"data folder:           {snapshot['taken'] - 1} snapshots during the run; the last, of "
            f"{snapshot['jobs']} jobs / {snapshot['items']} items / {snapshot['messages']} messages "
            f"({snapshot['bytes'] / 1e6:.1f} MB): {snapshot['ms']} ms, {snapshot['closed_ms']} ms of them "
            f"with requests held; crash bound at this size: "
            f"{max(1.0, 4 * snapshot['ms'] / 1000) + snapshot['ms'] / 1000:.1f} s"
        )
    verdict = "PASS" if bounded else "MISS"
    print(
        f"\nqueue depth bounded (last third <= max(2x first, first + 20), drained <= {DRAIN_LIMIT_S:.0f} s): "
        f"{verdict}; events/s: no target (this machine and the emulator, not AWS)"
    )
    lost = accepted - final.get("applied", 0) if not errors else None
    if lost:
        print(f"WARNING: {lost} accepted events not applied")
    return 0 if bounded else 3


if __name__ == "__main__":
    raise SystemExit(main())
