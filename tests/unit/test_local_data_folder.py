"""The data folder's pieces on their own (persistence.py): the gate that makes snapshots consistent, the
requests that count as changes, the lock, and `serve --fresh` without a terminal to confirm."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelinejobs.cli import app
from pipelinejobs.local.persistence import DataFolder, Gate, _changes_state
from pipelinejobs.local.resources import LocalStackError


def test_a_snapshot_waits_for_requests_inside_the_gate_but_not_for_a_long_poll_waiting_outside() -> None:
    gate = Gate()
    inside, release, polling, poll_ends = (threading.Event() for _ in range(4))

    def request() -> None:
        gate.enter()
        inside.set()
        release.wait()
        gate.leave()

    def long_poll() -> None:
        gate.enter()
        with gate.outside():  # what a receive does while it waits for messages
            polling.set()
            poll_ends.wait()
        gate.leave()

    # given a long poll waiting for messages
    poller = threading.Thread(target=long_poll)
    poller.start()
    polling.wait()
    # then a snapshot closes the gate at once
    with gate.closed():
        pass
    # given a request being served
    worker = threading.Thread(target=request)
    worker.start()
    inside.wait()
    closed = threading.Event()

    def snapshot() -> None:
        with gate.closed():
            closed.set()

    snapshotter = threading.Thread(target=snapshot)
    snapshotter.start()
    # then the snapshot waits for it to be answered (never half a request), and then closes the gate
    assert not closed.wait(0.2)
    release.set()
    snapshotter.join()
    assert closed.is_set()
    poll_ends.set()
    poller.join()
    worker.join()


@pytest.mark.parametrize(
    ("method", "target", "changes"),
    [
        ("GET", "", False),  # S3 reads, moto's own pages
        ("PUT", "", True),  # S3 writes
        ("DELETE", "", True),
        ("POST", "AmazonSQS.SendMessage", True),
        ("POST", "AmazonSQS.DeleteMessage", True),
        ("POST", "AmazonSQS.ReceiveMessage", False),  # only receive counts and visibility, not kept
        ("POST", "DynamoDB_20120810.TransactWriteItems", True),
        ("POST", "DynamoDB_20120810.Query", False),
        ("POST", "DynamoDBStreams_20120810.GetRecords", False),
    ],
)
def test_which_requests_make_a_snapshot_due(method: str, target: str, changes: bool) -> None:
    assert _changes_state({"REQUEST_METHOD": method, "HTTP_X_AMZ_TARGET": target}) is changes


def test_a_folder_is_locked_for_one_stack(tmp_path: Path) -> None:
    first = DataFolder(tmp_path / "data").open()
    try:
        with pytest.raises(LocalStackError, match="in use by another `pipelinejobs serve`"):
            DataFolder(tmp_path / "data").open()
    finally:
        first.close()
    DataFolder(tmp_path / "data").open().close()  # free again once the first is closed


def test_serve_fresh_without_a_terminal_asks_for_yes_and_deletes_nothing(tmp_path: Path) -> None:
    # given a folder holding data
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "admin-key").write_text("kept-key\n")
    (folder / "manifest.json").write_text(json.dumps({"format": "pipelinejobs-local-data", "version": 1}))
    (folder / "state.json").write_text("{}")
    # when `serve --fresh` runs with no terminal to confirm on
    result = CliRunner().invoke(app, ["serve", "--fresh", "--data-dir", str(folder)])
    # then it refuses, says how, and deleted nothing
    assert result.exit_code == 2, result.output
    assert "--yes" in result.output
    assert sorted(p.name for p in folder.iterdir()) == ["admin-key", "manifest.json", "state.json"]


def test_a_folder_of_other_files_is_not_taken_for_a_data_folder(tmp_path: Path) -> None:
    # given a folder of someone's files (a mistyped --data-dir)
    (tmp_path / "notes.txt").write_text("mine")
    # when it is opened as a data folder, then it is refused, and nothing is added to it
    with pytest.raises(LocalStackError, match="holds other files than a pipelinejobs data folder"):
        DataFolder(tmp_path).open()
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
