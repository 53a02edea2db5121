"""The CLI against the local stack over real HTTP (and its moto server for the AWS-side commands)."""

from __future__ import annotations

import json
import uuid as uuidlib

import boto3
import pytest

from pipelinejobs import Client
from pipelinejobs.cli import app

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack_env(local_stack, monkeypatch: pytest.MonkeyPatch):
    """The environment `pipelinejobs serve` tells a user to set: the API URL and the admin key."""
    monkeypatch.setenv("PIPELINEJOBS_URL", local_stack.api_url)
    monkeypatch.setenv("PIPELINEJOBS_ADMIN_KEY", local_stack.admin_key)
    return local_stack


@pytest.fixture
def aws_env(local_stack, monkeypatch: pytest.MonkeyPatch):
    """boto3 pointed at the local stack's emulator."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", local_stack.aws_endpoint)
    return local_stack


def run(runner, *args: str, input: str | None = None):
    result = runner.invoke(app, list(args), input=input)
    assert "Traceback" not in result.output
    return result


def test_admin_token_from_the_local_stacks_parameter(runner, aws_env):
    # when
    by_parameter = run(runner, "admin-token", "--parameter", aws_env.resources.admin_key_parameter)
    # then
    assert by_parameter.exit_code == 0, by_parameter.stderr
    assert by_parameter.stdout.strip() == aws_env.admin_token()
    # and the token works against the API
    client = Client(aws_env.api_url, token=by_parameter.stdout.strip())
    assert isinstance(list(client.iter_jobs(limit=1)), list)


def test_create_event_show_history_list_through_the_cli(runner, stack_env):
    # given
    tag = f"cli-{uuidlib.uuid4().hex[:10]}"
    created = run(
        runner, "jobs", "create", "pipe-cli", "--data", json.dumps({"t": tag}), "--tag", tag, "--json"
    )
    assert created.exit_code == 0, created.stderr
    uuid = json.loads(created.stdout)["job"]["uuid"]
    token = json.loads(created.stdout)["token"]
    # when: the job sends run with its own token; an admin sends update
    ran = run(
        runner,
        "jobs",
        "event",
        uuid,
        "run",
        "--job-token",
        token,
        "--data",
        '{"host": "n7"}',
        "--wait",
        "--json",
    )
    updated = run(runner, "jobs", "event", uuid, "update", "--data", '{"p": 0.5}', "--wait")
    # then
    assert ran.exit_code == 0, ran.stderr
    ran_json = json.loads(ran.stdout)
    assert ran_json["status"] == "applied" and ran_json["token"] != token  # rotated, and printed for the job
    assert updated.exit_code == 0 and "applied" in updated.stdout
    shown = run(runner, "jobs", "show", uuid)
    assert uuid in shown.stdout and "RUNNING" in shown.stdout and "finish" in shown.stdout
    history = run(runner, "jobs", "history", uuid)
    assert (
        "CREATED → RUNNING" in history.stdout
        and "applied" in history.stdout
        and '"host": "n7"' in history.stdout
    )
    assert [e["name"] for e in json.loads(run(runner, "jobs", "history", uuid, "--json").stdout)] == [
        "run",
        "update",
    ]
    listed = run(runner, "jobs", "list", "--tag", tag)
    assert uuid in listed.stdout and "RUNNING" in listed.stdout
    assert [
        j["uuid"] for j in json.loads(run(runner, "jobs", "list", "--tag", tag, "--json").stdout)["jobs"]
    ] == [uuid]


def test_an_event_the_state_refuses_exits_5(runner, stack_env):
    created = json.loads(
        run(
            runner, "jobs", "create", "pipe-cli", "--data", json.dumps({"u": uuidlib.uuid4().hex}), "--json"
        ).stdout
    )
    result = run(runner, "jobs", "event", created["job"]["uuid"], "finish")
    assert result.exit_code == 5
    assert "CREATED" in result.stderr


def test_bulk_reset_and_delete_by_filter(runner, stack_env):
    # given: three finished jobs with one tag
    tag = f"bulk-{uuidlib.uuid4().hex[:10]}"
    client = Client(stack_env.api_url, admin_key=stack_env.admin_key)
    jobs = [client.create_job("pipe-cli", {"i": i, "t": tag}, tags=[tag]) for i in range(3)]
    for job in jobs:
        job.run().finish()
    for job in jobs:
        job.wait_for("FINISHED", timeout=20)
    # when: the guard refuses, then a raised guard resets them all
    refused = run(runner, "jobs", "reset", "--tag", tag, "--max", "2", "--yes")
    reset = run(runner, "jobs", "reset", "--tag", tag, "--max", "3", "--wait", "--yes", "--json")
    # then
    assert refused.exit_code == 1 and "more than 2 jobs match" in refused.stderr
    assert reset.exit_code == 0, reset.stderr
    summary = json.loads(reset.stdout)
    assert summary["requested"] == 3 and summary["failed"] == []
    assert all(item["state"] == "CREATED" for item in summary["accepted"])
    assert {client.get_job(job.uuid).generation for job in jobs} == {2}
    # when: delete them
    deleted = run(runner, "jobs", "delete", "--tag", tag, "--yes", "--wait")
    # then
    assert deleted.exit_code == 0, deleted.stderr
    assert "Delete requested for 3 jobs." in deleted.stdout
    assert json.loads(run(runner, "jobs", "list", "--tag", tag, "--json").stdout)["jobs"] == []
    gone = run(runner, "jobs", "show", jobs[0].uuid)
    assert gone.exit_code == 4


def test_dlq_list_and_redrive_against_the_stack(runner, stack_env, aws_env, monkeypatch):
    # given: an event for a real job, dead-lettered (as after maxReceiveCount failures)
    client = Client(stack_env.api_url, admin_key=stack_env.admin_key)
    job = client.create_job("pipe-cli", {"dlq": uuidlib.uuid4().hex})
    event_id = f"dlq-{uuidlib.uuid4().hex}"
    body = {
        "uuid": job.uuid,
        "name": "run",
        "data": {"from": "dlq"},
        "token": job.token,
        "event_id": event_id,
    }
    sqs = boto3.client("sqs", endpoint_url=aws_env.aws_endpoint)
    dlq = aws_env.resources.dead_letter_queue_url
    sqs.send_message(
        QueueUrl=dlq, MessageBody=json.dumps(body), MessageGroupId=job.uuid, MessageDeduplicationId=event_id
    )
    monkeypatch.setenv("PIPELINEJOBS_DLQ_URL", dlq)
    monkeypatch.setenv("PIPELINEJOBS_QUEUE_URL", aws_env.resources.queue_url)
    # when
    listed = run(runner, "dlq", "list")
    as_json = json.loads(run(runner, "dlq", "list", "--json").stdout)
    redriven = run(runner, "dlq", "redrive", "--yes")
    # then
    assert listed.exit_code == 0, listed.stderr
    assert job.uuid in listed.stdout and event_id in listed.stdout
    assert job.token not in listed.output + json.dumps(as_json)
    assert any(m["event_id"] == event_id for m in as_json["messages"])
    assert redriven.exit_code == 0, redriven.stderr
    assert "Moved" in redriven.stdout
    # and the worker applies the redriven event
    stack_env.drain(timeout=20)
    assert job.refresh().state == "RUNNING"
    assert any(e["event_id"] == event_id and e["outcome"] == "applied" for e in job.history())
    assert json.loads(run(runner, "dlq", "list", "--json").stdout)["messages"] == []


def test_dlq_finds_the_local_stacks_queues_by_name(runner, aws_env):
    # with AWS_ENDPOINT_URL set and no queue URLs, the local stack's queues are found by their names
    result = run(runner, "dlq", "list", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["queue_url"] == aws_env.resources.dead_letter_queue_url


def test_reset_and_delete_wait_for_their_own_event_from_a_failure_state(runner, stack_env):
    # given a FAILED job and a REJECTED one (states `wait_for` gives up on when they are not awaited)
    pipeline = f"pipe-wait-{uuidlib.uuid4().hex[:8]}"
    client = Client(stack_env.api_url, admin_key=stack_env.admin_key)
    failed = client.create_job(pipeline, {"n": 1})
    failed.fail().wait_for("FAILED", timeout=20)
    rejected = client.create_job(pipeline, {"n": 2})
    rejected.run().finish().validate().reject().wait_for("REJECTED", timeout=20)
    # when the failed one is reset and the rejected one deleted, waiting
    reset = run(runner, "jobs", "reset", "--state", "FAILED", "--pipeline", pipeline, "--wait", "--yes")
    deleted = run(runner, "jobs", "delete", rejected.uuid, "--wait", "--yes")
    # then both wait for their own event, not the state before it, and succeed
    assert reset.exit_code == 0, reset.stdout + reset.stderr
    assert "reached FAILED" not in reset.stdout
    assert client.get_job(failed.uuid).state == "CREATED"
    assert deleted.exit_code == 0, deleted.stdout + deleted.stderr
    assert run(runner, "jobs", "show", rejected.uuid).exit_code == 4


def test_jobs_token_shows_the_callback_url_and_issues_a_new_one(runner, stack_env):
    client = Client(stack_env.api_url, admin_key=stack_env.admin_key)
    job = client.create_job("pipe-cli", {"t": uuidlib.uuid4().hex})
    shown = run(runner, "jobs", "token", job.uuid)
    assert shown.exit_code == 0
    assert f"callback_url: {job.callback_url}" in shown.stdout
    assert "token:        pjt_" in shown.stdout
    renewed = run(runner, "jobs", "token", job.uuid, "--new-callback-url", "--json")
    new_url = json.loads(renewed.stdout)["callback_url"]
    assert new_url.startswith(f"{stack_env.api_url}/jobs/{job.uuid}/callback?token=pjc_")
    assert new_url != job.callback_url


def test_a_key_issued_used_listed_and_revoked_through_the_cli(runner, stack_env, monkeypatch):
    # given a key issued by the admin (PIPELINEJOBS_ADMIN_KEY) for one pipeline, for 90 days
    pipeline = f"pipe-key-{uuidlib.uuid4().hex[:8]}"
    issued = run(
        runner, "keys", "create", "--label", "cli reactor", "--pipeline", pipeline, "--expires", "90d"
    )
    assert issued.exit_code == 0, issued.stderr
    key = next(word for word in issued.stdout.split() if word.startswith("pjk_"))
    key_id = key[4:16]
    assert "cannot be shown again" in issued.stderr
    # when the reactor's shell acts with it (only the key and the URL: what the reactor is given)
    reactor = ["--url", stack_env.api_url, "--api-key", key]
    monkeypatch.delenv("PIPELINEJOBS_ADMIN_KEY")
    created = run(runner, *reactor, "jobs", "create", pipeline, "--data", '{"n": 1}', "--json")
    assert created.exit_code == 0, created.stderr
    uuid = json.loads(created.stdout)["job"]["uuid"]
    ran = run(runner, *reactor, "jobs", "event", uuid, "run", "--wait", "--json")
    outside = run(runner, *reactor, "jobs", "create", "another-pipeline", "--data", '{"n": 1}')
    refused = run(runner, *reactor, "keys", "list")
    # then it created and drove its job, and was refused what a key may not do, saying why
    assert json.loads(created.stdout)["job"]["owner"] == key_id
    assert json.loads(ran.stdout)["status"] == "applied"
    assert [
        j["uuid"] for j in json.loads(run(runner, *reactor, "jobs", "list", "--json").stdout)["jobs"]
    ] == [uuid]
    assert outside.exit_code == 3 and "may not create jobs for pipeline" in outside.stderr
    assert refused.exit_code == 3 and "managing keys needs the admin credential" in refused.stderr
    # when the admin lists and revokes it
    monkeypatch.setenv("PIPELINEJOBS_ADMIN_KEY", stack_env.admin_key)
    listed = json.loads(run(runner, "keys", "list", "--json").stdout)["keys"]
    revoked = run(runner, "keys", "revoke", key_id, "--yes")
    # then the listing had it active without the key, and the reactor is refused at once
    assert [k["status"] for k in listed if k["id"] == key_id] == ["active"]
    assert key not in json.dumps(listed)
    assert revoked.exit_code == 0 and f"Revoked key {key_id}" in revoked.stdout
    after = run(runner, *reactor, "jobs", "show", uuid)
    assert after.exit_code == 3 and "pipelinejobs keys list" in " ".join(after.stderr.split())
    assert key not in after.output


def test_serve_banner_says_how_to_give_a_reactor_a_key(local_stack, capsys, monkeypatch):
    from pipelinejobs.local.commands import _print_banner

    monkeypatch.setenv("COLUMNS", "200")
    _print_banner(local_stack)
    banner = capsys.readouterr().out
    assert "pipelinejobs keys create --label my-reactor --pipeline <id>" in banner
    assert "export PIPELINEJOBS_URL=" in banner
