"""`pipelinejobs serve` keeps its data, from the user's side (SPEC section 9): Ctrl-C and start again,
and the jobs, their history, the archive and the queued events are there; the variables exported from
the first banner (PIPELINEJOBS_URL, PIPELINEJOBS_TOKEN, AWS_ENDPOINT_URL) still work; kill -9 loses
nothing that was answered; a second serve on the same folder is refused. Real processes and signals."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import boto3

from pipelinejobs import Client
from tests.e2e.test_serve_command import SCRIPT, _environment, _read_banner

PIPELINE = "pipeline-serve-data"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _serve(folder: Path, port: int, *extra: str) -> tuple[subprocess.Popen[str], str, dict[str, str]]:
    """serve started as a user starts it, on a data folder; its banner and the exports it printed."""
    process = subprocess.Popen(  # noqa: S603 (our own script)
        [str(SCRIPT), "serve", "--port", str(port), "--data-dir", str(folder), "--quiet", *extra],
        cwd=folder.parent,
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    banner = "\n".join(_read_banner(process, timeout=90))
    exports = dict(re.findall(r"\b((?:PIPELINEJOBS|AWS)_[A-Z_]+)=(\S+)", banner))
    return process, banner, exports


def _interrupt(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    try:
        rest, _ = process.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert process.returncode == 0, rest
    return rest


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def _s3(exports: dict[str, str]) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=exports["AWS_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _work(exports: dict[str, str], tag: str) -> tuple[Client, dict[str, str]]:
    """Jobs in several states, an archive object, and events sent last (maybe still queued at the stop):
    returns the client and {event_id: job uuid} of every event accepted (202)."""
    client = Client(exports["PIPELINEJOBS_URL"], token=exports["PIPELINEJOBS_TOKEN"], timeout=20)
    accepted: dict[str, str] = {}
    finished = client.create_job(PIPELINE, {"tag": tag, "n": 1}).run()
    accepted[finished.last_event_id or ""] = finished.uuid
    accepted[finished.send("finish")] = finished.uuid
    canceled = client.create_job(PIPELINE, {"tag": tag, "n": 2})
    accepted[canceled.send("cancel")] = canceled.uuid
    bucket, key = finished.archive_path.removeprefix("s3://").split("/", 1)
    _s3(exports).put_object(Bucket=bucket, Key=key + "result.txt", Body=f"result of {tag}".encode())
    running = client.create_job(PIPELINE, {"tag": tag, "n": 3})
    accepted[running.send("run")] = running.uuid
    for step in range(5):
        accepted[running.send("update", step=step)] = running.uuid
    return client, accepted


def _check_applied_once(client: Client, accepted: dict[str, str]) -> None:
    for event_id, uuid in accepted.items():
        client.wait_for_event(uuid, event_id, timeout=60)
        outcomes = [e["outcome"] for e in client.history(uuid) if e["event_id"] == event_id]
        assert outcomes == ["applied"], (event_id, outcomes)


def _states(client: Client) -> dict[str, str]:
    return {job.uuid: job.state for job in client.list_jobs()}


def test_ctrl_c_and_serve_again_keeps_the_data_and_the_exported_variables(tmp_path: Path) -> None:
    folder, port = tmp_path / "data", _free_port()
    # given serve on a data folder, and jobs made with the variables its banner exported
    first, banner, exports = _serve(folder, port)
    assert str(folder) in banner and "new" in banner, banner
    try:
        client, accepted = _work(exports, "ctrl-c")
        # when a second serve is started on the same folder, it is refused and says why
        second = subprocess.run(  # noqa: S603
            [str(SCRIPT), "serve", "--port", "0", "--data-dir", str(folder)],
            env=_environment(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert second.returncode == 1
        assert "in use by another `pipelinejobs serve`" in " ".join((second.stdout + second.stderr).split())
    finally:
        # when serve is stopped with Ctrl-C (events maybe still queued) and started again
        said = _interrupt(first)
    assert f"The data is kept in {folder}" in " ".join(said.split()), said
    again, banner, new_exports = _serve(folder, port)
    try:
        # then the banner says what came back, and the exported variables are unchanged
        assert "restored: 3 jobs" in banner, banner
        assert new_exports["AWS_ENDPOINT_URL"] == exports["AWS_ENDPOINT_URL"]
        # the old token works; every event accepted before the stop is applied, once
        _check_applied_once(client, accepted)
        states = _states(client)
        assert sorted(states.values()) == ["CANCELED", "FINISHED", "RUNNING"]
        finished = next(uuid for uuid, state in states.items() if state == "FINISHED")
        outputs = list(client.iter_outputs(finished))
        assert [o["key"] for o in outputs] == ["result.txt"]
        # and a command of another shell, with the first banner's exports, sees the same jobs
        listed = subprocess.run(  # noqa: S603
            [str(SCRIPT), "jobs", "list", "--json"],
            env={**_environment(), **exports},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert listed.returncode == 0, listed.stdout + listed.stderr
        assert set(states) <= set(re.findall(r"[0-9a-f]{8}-[0-9a-f-]{27}", listed.stdout))
    finally:
        _interrupt(again)


def test_kill_9_loses_nothing_that_was_answered(tmp_path: Path) -> None:
    folder, port = tmp_path / "data", _free_port()
    # given serve killed with kill -9 right after its answers (the emulator, in its own process, saves)
    first, _, exports = _serve(folder, port)
    client, accepted = _work(exports, "kill-serve")
    _kill(first.pid)
    first.wait(30)
    # when it is started again, then every job is there and every accepted event is applied once
    second, banner, exports = _serve(folder, port)
    try:
        assert "restored: 3 jobs" in banner, banner
        _check_applied_once(client, accepted)
        # given more work, and a snapshot on disk that holds its last event (within the stated bound)
        more_client, more = _work(exports, "kill-both")
        last = list(more)[-1]
        state = folder / "state.json"
        deadline = time.monotonic() + 60
        while last not in state.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        # when serve and its emulator are both killed (a crash of the whole stack)
        pids = [int(pid) for pid in (folder / "lock").read_text().split()]
        assert len(pids) == 2, pids
        for pid in pids:
            _kill(pid)
        second.wait(30)
    finally:
        if second.poll() is None:
            second.kill()
    # then, started again, what the snapshot held is there, each accepted event applied once
    third, banner, _ = _serve(folder, port)
    try:
        assert "restored: 6 jobs" in banner, banner
        _check_applied_once(more_client, {**accepted, **more})
    finally:
        _interrupt(third)
    assert json.loads((folder / "manifest.json").read_text())["version"] == 1
