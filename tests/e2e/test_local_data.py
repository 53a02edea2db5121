"""The local stack keeps its data (SPEC section 9): a stack started again on its data folder comes back
with every job, history entry, archive object, producer key and queued or dead-lettered message, the
same admin key and the same emulator port; a crash of the emulator loses nothing that a snapshot
holds; two stacks never share a folder; a folder it cannot read is refused and left as it was.

The stacks here run in-process (LocalStack(data_dir=...)); test_serve_command.py does the same through
`pipelinejobs serve` with real signals.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from pipelinejobs import Client
from pipelinejobs.dlq import redrive
from pipelinejobs.local.stack import LocalStack, LocalStackError, MotoServerProcess

PIPELINE = "pipeline-local-data"
_LIVE_DURATIONS = {"pending_seconds", "run_seconds"}


def _stack(folder: Path, **options: Any) -> LocalStack:
    return LocalStack(port=0, quiet=True, data_dir=folder, **options)


def _folder_digest(folder: Path) -> dict[str, str]:
    """Every file of the folder and its content's hash (the lock file aside: it names the pid)."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != "lock"
    }


def _everything(client: Client, s3: Any, bucket: str) -> dict[str, Any]:
    """What a user sees: every job, its history and outputs; the producer keys; the archive's versions."""
    jobs = sorted(client.list_jobs(), key=lambda job: job.uuid)
    versions = s3.list_object_versions(Bucket=bucket)
    return {
        # (durations of a job still pending or running grow with the clock: the rest must be equal)
        "jobs": [{k: v for k, v in job.raw.items() if k not in _LIVE_DURATIONS} for job in jobs],
        "history": {job.uuid: client.history(job.uuid) for job in jobs},
        "outputs": {
            job.uuid: [{k: v for k, v in o.items() if k != "url"} for o in job.outputs()] for job in jobs
        },
        "keys": [(key.id, key.label, key.pipelines) for key in client.keys.list()],
        "versions": sorted(
            (v["Key"], v["VersionId"], v["ETag"], v["Size"], v["LastModified"].isoformat())
            for v in versions.get("Versions", [])
        ),
        "delete_markers": sorted((m["Key"], m["VersionId"]) for m in versions.get("DeleteMarkers", [])),
    }


def _dead_letters(stack: LocalStack) -> list[dict[str, Any]]:
    sqs = stack.client("sqs")
    answer = sqs.receive_message(
        QueueUrl=stack.resources.dead_letter_queue_url,
        MaxNumberOfMessages=10,
        VisibilityTimeout=0,
        MessageSystemAttributeNames=["All"],
    )
    return [
        {
            "body": m["Body"],
            "group": m["Attributes"]["MessageGroupId"],
            "dedup": m["Attributes"]["MessageDeduplicationId"],
        }
        for m in answer.get("Messages", [])
    ]


def _applied(client: Client, uuid: str, event_id: str) -> list[dict[str, Any]]:
    return [entry for entry in client.history(uuid) if entry["event_id"] == event_id]


def test_a_stack_started_again_on_its_folder_has_everything_it_had(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    # given a stack on a data folder with jobs in several states, archives, a producer key, and a
    # dead-lettered event
    with _stack(folder) as stack:
        assert stack.restored is None  # a new folder
        admin = Client(stack.api_url, admin_key=stack.admin_key, timeout=10)
        producer_key = admin.keys.create("reactor", [PIPELINE])
        producer = Client(stack.api_url, token=producer_key.key, timeout=10)
        finished = producer.create_job(PIPELINE, {"n": 1}).run().finish()
        running = admin.create_job(PIPELINE, {"n": 2}).run()
        admin.create_job(PIPELINE, {"n": 3}).cancel()
        admin.create_job(PIPELINE, {"n": 4}).run().fail()
        admin.create_job(PIPELINE, {"n": 5})
        s3 = stack.client("s3")
        bucket, prefix = finished.archive_path.removeprefix("s3://").split("/", 1)
        s3.put_object(Bucket=bucket, Key=prefix + "out/a.txt", Body=b"first")
        s3.put_object(Bucket=bucket, Key=prefix + "out/a.txt", Body=b"second version")
        s3.put_object(Bucket=bucket, Key=prefix + "out/b.bin", Body=bytes(range(256)) * 40)
        s3.put_object(Bucket=bucket, Key=prefix + "out/gone.txt", Body=b"deleted later")
        s3.delete_object(Bucket=bucket, Key=prefix + "out/gone.txt")
        # (every kind of write: idempotent events, a reset, a delete, a revoked key)
        retried = admin.create_job(PIPELINE, {"n": 6}).run()
        retried.send("update", idempotency_key="same-1", step=1)
        retried.send("update", idempotency_key="same-1", step=1)
        retried.reset()
        admin.create_job(PIPELINE, {"n": 7}).delete()
        admin.keys.revoke(admin.keys.create("short-lived", ["*"]))
        stack.drain()
        # (the items the snapshots keep up to date write by write are exactly the tables' items)
        assert stack.check_data()["differ"] == 0
        dead = {"uuid": running.uuid, "name": "update", "data": {"from": "dlq"}, "token": stack.admin_token()}
        dead_body = json.dumps({**dead, "event_id": "dead-lettered-1"})
        stack.client("sqs").send_message(
            QueueUrl=stack.resources.dead_letter_queue_url,
            MessageBody=dead_body,
            MessageGroupId=running.uuid,
            MessageDeduplicationId="dead-lettered-1",
        )
        before = _everything(admin, s3, bucket)
        admin_key, admin_token, aws_port = stack.admin_key, stack.admin_token(), stack.aws_port
        first_folder = stack.data_folder.path if stack.data_folder else None

    # when it is started again on the same folder
    with _stack(folder) as stack:
        admin = Client(stack.api_url, admin_key=stack.admin_key, timeout=10)
        s3 = stack.client("s3")
        # then everything is as it was: jobs, history, outputs, keys, every object version
        assert stack.restored is not None and stack.restored["jobs"] == 6
        assert _everything(admin, s3, bucket) == before
        assert s3.get_object(Bucket=bucket, Key=prefix + "out/a.txt")["Body"].read() == b"second version"
        # the same admin key (a token computed before still works), the same emulator port
        assert stack.admin_key == admin_key and stack.aws_port == aws_port
        assert Client(stack.api_url, token=admin_token, timeout=10).get_job(running.uuid).state == "RUNNING"
        assert stack.data_folder is not None and stack.data_folder.path == first_folder
        # the producer key still works, for its own jobs only
        producer = Client(stack.api_url, token=producer_key.key, timeout=10)
        assert [job.uuid for job in producer.list_jobs()] == [finished.uuid]
        # the dead-lettered event is there as it was, and redriven it is applied once
        assert _dead_letters(stack) == [
            {"body": dead_body, "group": running.uuid, "dedup": "dead-lettered-1"}
        ]
        sqs = stack.client("sqs")
        assert redrive(sqs, stack.resources.dead_letter_queue_url, stack.resources.queue_url) == 1
        stack.drain()
        assert [e["outcome"] for e in _applied(admin, running.uuid, "dead-lettered-1")] == ["applied"]
        # and the stack keeps working: a new job, a new event
        admin.get_job(running.uuid).finish()
        stack.drain()
        assert admin.get_job(running.uuid).state == "FINISHED"
        assert stack.check_data()["differ"] == 0


def test_events_queued_when_the_emulator_is_killed_are_applied_once_after_restart(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    # given a stack whose worker is held while events are accepted (202), and a snapshot taken then
    stack = _stack(folder).start()
    try:
        admin = Client(stack.api_url, admin_key=stack.admin_key, timeout=10)
        job = admin.create_job(PIPELINE, {"n": "crash"}).run()
        stack.drain()
        with stack.worker_held():
            accepted = [job.send("update", step=i) for i in range(3)]
            accepted.append(job.send("finish"))
            saved = stack.snapshot()
            # when the emulator is killed (kill -9) with the events still on the queue
            os.kill(stack.emulator_pid, signal.SIGKILL)
        assert saved["messages"] == 4
    finally:
        stack.stop()

    # then, started again, each accepted event is applied exactly once, in order
    with _stack(folder) as stack:
        stack.drain()
        admin = Client(stack.api_url, admin_key=stack.admin_key, timeout=10)
        history = admin.history(job.uuid)
        assert [e["event_id"] for e in history if e["event_id"] in accepted] == accepted
        assert all(e["outcome"] == "applied" for e in history if e["event_id"] in accepted)
        assert admin.get_job(job.uuid).state == "FINISHED"


def test_a_second_stack_on_a_folder_in_use_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    # given a stack running on a folder
    with _stack(folder) as stack:
        admin = Client(stack.api_url, admin_key=stack.admin_key, timeout=10)
        job = admin.create_job(PIPELINE, {"n": "first"})
        stack.drain()
        # when a second one starts on the same folder
        with pytest.raises(LocalStackError) as refused:
            _stack(folder).start()
        # then it is refused, saying why and what to do, and the first one is unharmed
        assert "in use by another `pipelinejobs serve`" in str(refused.value)
        assert "--data-dir" in str(refused.value)
        assert admin.get_job(job.uuid).state == "CREATED"
    with _stack(folder) as stack:
        assert stack.restored is not None and stack.restored["jobs"] == 1


@pytest.fixture(scope="module")
def folder_with_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A data folder a stack left (a job, an archive object), to copy: (folder, job uuid, admin key)."""
    folder = tmp_path_factory.mktemp("kept") / "data"
    with _stack(folder) as stack:
        admin = Client(stack.api_url, admin_key=stack.admin_key, timeout=10)
        job = admin.create_job(PIPELINE, {"n": "kept"})
        stack.client("s3").put_object(Bucket=stack.resources.bucket, Key="archive/x", Body=b"x")
        stack.drain()
        return folder, job.uuid, stack.admin_key


def _copy(folder_with_data: tuple[Path, str, str], tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    shutil.copytree(folder_with_data[0], folder)
    return folder


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (
            lambda folder: (folder / "state.json").write_bytes(
                b'{"format": "pipelinejobs-local-data", "vers'
            ),
            "state.json",
        ),
        (lambda folder: (folder / "manifest.json").write_text("not json"), "manifest.json"),
        (lambda folder: (folder / "admin-key").unlink(), "admin-key"),
        (lambda folder: next((folder / "blobs").iterdir()).unlink(), "is missing"),
        (
            lambda folder: (folder / "manifest.json").write_text(
                json.dumps({**json.loads((folder / "manifest.json").read_text()), "version": 2})
            ),
            "newer pipelinejobs",
        ),
    ],
    ids=["state-cut-short", "manifest-garbled", "admin-key-missing", "archive-blob-missing", "newer-version"],
)
def test_a_damaged_or_newer_folder_is_refused_with_a_clear_error_and_left_as_it_was(
    folder_with_data: tuple[Path, str, str], tmp_path: Path, damage: Any, said: str
) -> None:
    # given a folder with data, damaged (or written by a newer version) while no stack runs
    folder = _copy(folder_with_data, tmp_path)
    damage(folder)
    files = _folder_digest(folder)
    # when a stack starts on it
    with pytest.raises(LocalStackError) as refused:
        _stack(folder).start()
    # then it says which file and how to start afresh, and no file changed
    message = str(refused.value)
    assert said in message and "--fresh" in message, message
    assert _folder_digest(folder) == files


def test_fresh_starts_afresh(folder_with_data: tuple[Path, str, str], tmp_path: Path) -> None:
    # given a folder with data (here damaged: --fresh is the way out the error names)
    folder = _copy(folder_with_data, tmp_path)
    (folder / "state.json").write_text("garbled")
    _, uuid, admin_key = folder_with_data
    # when a stack starts on it with fresh=True (serve --fresh)
    with _stack(folder, fresh=True) as stack:
        # then nothing of the old data is there, and the admin key is a new one
        assert stack.restored is None
        assert Client(stack.api_url, admin_key=stack.admin_key, timeout=10).list_jobs() == []
        assert stack.admin_key != admin_key
    assert uuid not in (folder / "state.json").read_text()


def test_without_a_data_folder_nothing_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # given the tests' usual stack (no data folder), started in an empty working directory
    monkeypatch.chdir(tmp_path)
    with LocalStack(port=0, aws_port=0, quiet=True) as stack:
        Client(stack.api_url, admin_key=stack.admin_key, timeout=10).create_job(PIPELINE, {"n": 0})
        stack.drain()
        with pytest.raises(LocalStackError):
            stack.snapshot()
    # then it kept nothing anywhere
    assert list(tmp_path.iterdir()) == []


def test_a_snapshot_that_cannot_be_written_is_said_and_tried_again(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "data"
    with _stack(folder) as stack:
        admin = Client(stack.api_url, admin_key=stack.admin_key, timeout=10)
        # given a data folder where the state cannot be written (as on a full disk)
        (folder / "state.json").unlink()
        (folder / "state.json").mkdir()
        # when something changes
        job = admin.create_job(PIPELINE, {"n": "unsaved"})
        stack.drain()
        said = ""
        deadline = time.monotonic() + 60
        while "could not save the data folder" not in said and time.monotonic() < deadline:
            time.sleep(0.2)
            said += capfd.readouterr().err
        # then the terminal says so, naming the folder
        assert f"could not save the data folder {folder}" in said
        # and once it can be written again, the next snapshot (here the one at the stop) has everything
        (folder / "state.json").rmdir()
    with _stack(folder) as stack:
        assert (
            Client(stack.api_url, admin_key=stack.admin_key, timeout=10).get_job(job.uuid).state == "CREATED"
        )


def test_the_emulator_stopped_with_sigterm_saves_what_it_answered_first(tmp_path: Path) -> None:
    # given the emulator alone on a data folder, snapshots at most once an hour, its first one taken
    folder = tmp_path / "data"
    folder.mkdir()
    emulator = MotoServerProcess(0, data_dir=folder, snapshot_seconds=3600).start()
    try:
        emulator.restore()
        dynamodb = boto3.client(
            "dynamodb",
            endpoint_url=emulator.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        dynamodb.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        deadline = time.monotonic() + 60
        while not (folder / "state.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        # when an item is written (answered), then the emulator gets SIGTERM (systemd stopping it all)
        dynamodb.put_item(TableName="t", Item={"pk": {"S": "answered-before-sigterm"}})
        os.kill(emulator.pid, signal.SIGTERM)
        assert emulator._process is not None
        emulator._process.wait(60)
    finally:
        emulator.stop()
    # then it saved it before exiting
    assert "answered-before-sigterm" in (folder / "state.json").read_text()
