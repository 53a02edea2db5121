"""CLI unit tests: commands against canned API responses (and moto in-process for the AWS side):
tables, --json, guards, confirmations, error messages with a next step and their exit codes."""

from __future__ import annotations

import json
import time

import boto3
import pytest
from moto import mock_aws

from jobcore.tokens import admin_token
from pipelinejobs.cli import app
from tests.cli.conftest import ADMIN
from tests.sdk.fake_api import FakeApi

U1 = "11111111-1111-5111-8111-111111111111"
U2 = "22222222-2222-5222-8222-222222222222"
U3 = "33333333-3333-5333-8333-333333333333"


def job(uuid: str, state: str = "FAILED", **fields) -> dict:
    return {
        "uuid": uuid,
        "pipeline_uuid": "pipe-1",
        "state": state,
        "generation": 1,
        "tags": ["nightly"],
        "name": "sample run",
        "updated_at": "2024-05-01T12:00:00.000Z",
        **fields,
    }


def invoke(runner, fake_api: FakeApi | None, *args: str, input: str | None = None):
    root = ["--url", fake_api.url, "--token", ADMIN] if fake_api else []
    return runner.invoke(app, [*root, *args], input=input)


# -- help ----------------------------------------------------------------------------------------------

COMMANDS = [
    ["admin-token"],
    ["jobs", "list"],
    ["jobs", "show"],
    ["jobs", "history"],
    ["jobs", "outputs"],
    ["jobs", "create"],
    ["jobs", "event"],
    ["jobs", "wait"],
    ["jobs", "token"],
    ["jobs", "ready"],
    ["jobs", "reset"],
    ["jobs", "delete"],
    ["keys", "create"],
    ["keys", "list"],
    ["keys", "revoke"],
    ["dlq", "list"],
    ["dlq", "redrive"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_help_explains_it_with_an_example(runner, command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Examples" in result.stdout
    assert f"$ pipelinejobs {' '.join(command)}" in result.stdout


# -- admin-token -----------------------------------------------------------------------------------------


def test_admin_token_from_the_key(runner):
    result = runner.invoke(app, ["admin-token", "--key", "k1"])
    assert result.exit_code == 0
    assert result.stdout.strip() == admin_token("k1", time.time())


def test_admin_token_from_the_environment_as_json_and_export(runner, monkeypatch):
    # given
    monkeypatch.setenv("PIPELINEJOBS_ADMIN_KEY", "k2")
    # when
    as_json = json.loads(runner.invoke(app, ["admin-token", "--json", "--lifetime", "60"]).stdout)
    exported = runner.invoke(app, ["admin-token", "--export"]).stdout
    # then
    assert as_json["token"] == admin_token("k2", time.time(), 60)
    assert as_json["lifetime"] == 60 and as_json["valid_until"].endswith("Z")
    assert exported.strip() == f"export PIPELINEJOBS_TOKEN={admin_token('k2', time.time())}"


def test_admin_token_reads_the_key_from_an_ssm_secure_string(runner):
    with mock_aws():
        # given
        boto3.client("ssm").put_parameter(Name="/stack/admin-key", Value="k3", Type="SecureString")
        # when
        result = runner.invoke(app, ["admin-token", "--parameter", "/stack/admin-key"])
    # then
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == admin_token("k3", time.time())


def test_admin_token_missing_parameter_explains_without_traceback(runner):
    with mock_aws():
        result = runner.invoke(app, ["admin-token", "--parameter", "/nope"])
    assert result.exit_code == 1
    assert "ParameterNotFound" in result.stderr and "→" in result.stderr
    assert "Traceback" not in result.output


def test_admin_token_without_any_key_says_how_to_give_one(runner):
    result = runner.invoke(app, ["admin-token"])
    assert result.exit_code == 1
    assert "--key" in result.stderr and "--parameter" in result.stderr


# -- errors --------------------------------------------------------------------------------------------


def test_a_rejected_token_says_how_to_get_a_fresh_one(runner, fake_api):
    # given
    fake_api.route("GET", "/jobs", 401, {"error": {"code": "unauthorized", "message": "expired window"}})
    # when
    result = invoke(runner, fake_api, "jobs", "list")
    # then
    assert result.exit_code == 3
    assert "the token was rejected (expired window)" in result.stderr
    assert "pipelinejobs admin-token" in result.stderr
    assert "Traceback" not in result.output and result.stdout == ""


def test_no_credential_at_all_is_explained(runner, fake_api):
    result = runner.invoke(app, ["--url", fake_api.url, "jobs", "list"])
    assert result.exit_code == 3
    assert "PIPELINEJOBS_TOKEN" in result.stderr
    assert fake_api.requests == []


def test_an_unreachable_api_suggests_serve(runner):
    result = runner.invoke(app, ["--url", "http://127.0.0.1:9", "--token", ADMIN, "jobs", "show", U1])
    assert result.exit_code == 6
    assert "pipelinejobs serve" in result.stderr


def test_unknown_job_exits_4(runner, fake_api):
    fake_api.route("GET", f"/jobs/{U1}", 404, {"error": {"code": "job_not_found", "message": f"no job {U1}"}})
    result = invoke(runner, fake_api, "jobs", "show", U1)
    assert result.exit_code == 4
    assert f"no job {U1}" in result.stderr and "jobs list" in result.stderr


# -- list, show, history -------------------------------------------------------------------------------


def test_jobs_list_prints_a_table_with_the_filters_sent(runner, fake_api):
    # given
    fake_api.route("GET", "/jobs", 200, {"jobs": [job(U1), job(U2, "FINISHED")], "next": None})
    # when
    result = invoke(runner, fake_api, "jobs", "list", "--state", "failed", "--tag", "nightly")
    # then
    assert result.exit_code == 0, result.stderr
    for text in (U1, U2, "FAILED", "FINISHED", "pipe-1", "sample run", "nightly", "2024-05-01 12:00:00 "):
        assert text in result.stdout
    assert fake_api.requests[0].query == {"state": "FAILED", "tag": "nightly", "limit": "51"}
    assert "2 jobs" in result.stderr


def test_jobs_list_on_an_80_column_terminal_keeps_uuids_and_times_whole(runner, fake_api, monkeypatch):
    # given a terminal of 80 columns and jobs with tags
    monkeypatch.setenv("COLUMNS", "80")
    fake_api.route("GET", "/jobs", 200, {"jobs": [job(U1), job(U2, "VALIDATING")], "next": None})
    # when they are listed
    result = invoke(runner, fake_api, "jobs", "list")
    # then every line fits, uuids, states and times are whole, and the tags are left out
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    for text in (U1, U2, "VALIDATING", "2024-05-01 12:00"):
        assert text in result.stdout
    assert "nightly" not in result.stdout and "TAGS" not in result.stdout


def test_jobs_list_of_an_input_sends_child_of_and_shows_how_long_each_ran(runner, fake_api, monkeypatch):
    # given a terminal of 120 columns and the jobs of input m1, one running, one finished, one waiting
    monkeypatch.setenv("COLUMNS", "120")
    listed = [
        job(U1, "RUNNING", run_seconds=245.5),
        job(U2, "FINISHED", run_seconds=7384.0),
        job(U3, "CREATED", run_seconds=None),
    ]
    fake_api.route("GET", "/jobs", 200, {"jobs": listed, "next": None})
    # when they are listed
    result = invoke(runner, fake_api, "jobs", "list", "--child-of", "m1")
    # then the filter is sent, and each row shows its run (none for the job that has not run)
    assert result.exit_code == 0, result.stderr
    assert fake_api.requests[0].query == {"child_of": "m1", "limit": "51"}
    lines = result.stdout.splitlines()
    assert "RUN" in lines[0].split()
    assert "4m05s" in next(line for line in lines if U1 in line)
    assert "2h03m" in next(line for line in lines if U2 in line)
    assert not any(text in next(line for line in lines if U3 in line) for text in ("s ", "m ", "h "))
    assert max(len(line) for line in lines) <= 120


@pytest.mark.parametrize("state", ["VALIDATING", "RUNNING"])
def test_jobs_list_with_runs_on_an_80_column_terminal_still_fits(runner, fake_api, monkeypatch, state):
    # given a terminal of 80 columns and jobs that ran, with tags
    monkeypatch.setenv("COLUMNS", "80")
    listed = [job(U1, state, run_seconds=12.25), job(U2, "FINISHED", run_seconds=90061.0)]
    fake_api.route("GET", "/jobs", 200, {"jobs": listed, "next": None})
    # when they are listed
    result = invoke(runner, fake_api, "jobs", "list")
    # then every line fits and uuids, states and times are whole (the runs are in `jobs show`)
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    for text in (U1, U2, state, "2024-05-01 12:00"):
        assert text in result.stdout


def test_jobs_show_prints_inputs_and_durations(runner, fake_api):
    # given a running job of two inputs that waited 1.5 s and has run for 62.25 s
    representation = job(
        U1,
        "RUNNING",
        child_of=["m1", "m2"],
        pending_seconds=1.5,
        run_seconds=62.25,
        data={},
        allowed_events=[],
    )
    fake_api.route("GET", f"/jobs/{U1}", 200, representation)
    # when it is shown
    result = invoke(runner, fake_api, "jobs", "show", U1)
    # then its inputs and both durations are there, the run marked as still counting
    assert result.exit_code == 0, result.stderr
    rows = {
        line.split()[0]: line.split(None, 1)[1].strip() for line in result.stdout.splitlines() if line.strip()
    }
    assert rows["child_of"] == "m1, m2"
    assert rows["pending_seconds"] == "1.500 s"
    assert rows["run_seconds"] == "62.250 s (1m02s) so far"


def test_jobs_show_leaves_out_the_durations_of_a_job_that_never_ran(runner, fake_api):
    representation = job(U1, "CREATED", pending_seconds=None, run_seconds=None, data={}, allowed_events=[])
    fake_api.route("GET", f"/jobs/{U1}", 200, representation)
    result = invoke(runner, fake_api, "jobs", "show", U1)
    assert result.exit_code == 0, result.stderr
    assert "pending_seconds" not in result.stdout and "run_seconds" not in result.stdout


def test_jobs_list_says_when_more_match_than_shown(runner, fake_api):
    fake_api.route("GET", "/jobs", 200, {"jobs": [job(U1), job(U2), job(U3)], "next": "c"})
    result = invoke(runner, fake_api, "jobs", "list", "--limit", "2", "--json")
    listed = json.loads(result.stdout)
    assert [j["uuid"] for j in listed["jobs"]] == [U1, U2]
    assert listed["more"] is True


def test_jobs_list_all_pages_through_everything(runner, fake_api):
    pages = {None: {"jobs": [job(U1)], "next": "c1"}, "c1": {"jobs": [job(U2)], "next": None}}
    fake_api.route("GET", "/jobs", lambda request: (200, pages[request.query.get("next")]))
    result = invoke(runner, fake_api, "jobs", "list", "--all", "--json")
    assert [j["uuid"] for j in json.loads(result.stdout)["jobs"]] == [U1, U2]


def test_jobs_show_prints_the_fields_and_allowed_events(runner, fake_api):
    # given
    representation = job(U1, "RUNNING", data={"sample": "S1"}, allowed_events=["update", "finish"])
    fake_api.route("GET", f"/jobs/{U1}", 200, representation)
    # when
    table = invoke(runner, fake_api, "jobs", "show", U1)
    as_json = invoke(runner, fake_api, "jobs", "show", U1, "--json")
    # then
    assert table.exit_code == 0
    for text in (U1, "RUNNING", "update, finish", '"sample": "S1"', "pipe-1"):
        assert text in table.stdout
    assert json.loads(as_json.stdout) == representation


def test_jobs_history_shows_outcomes_transitions_and_reasons(runner, fake_api):
    # given
    events = [
        {
            "event_id": "e1",
            "name": "run",
            "outcome": "applied",
            "from_state": "CREATED",
            "to_state": "RUNNING",
            "generation": 1,
            "by": "job",
            "at": "2024-05-01T12:00:00.000Z",
            "data": {"host": "n7"},
        },
        {
            "event_id": "e2",
            "name": "cancel",
            "outcome": "rejected",
            "from_state": "RUNNING",
            "to_state": None,
            "generation": 1,
            "by": "admin",
            "at": "2024-05-01T12:01:00.000Z",
            "data": {},
            "reason": "cannot cancel a job in RUNNING",
        },
    ]
    fake_api.route("GET", f"/jobs/{U1}/events", 200, {"events": events, "next": None})
    # when
    result = invoke(runner, fake_api, "jobs", "history", U1)
    # then
    assert result.exit_code == 0
    for text in (
        "CREATED → RUNNING",
        "applied",
        "rejected",
        "cannot cancel a job in RUNNING",
        '{"host": "n7"}',
    ):
        assert text in result.stdout
    assert json.loads(invoke(runner, fake_api, "jobs", "history", U1, "--json").stdout) == events


def test_jobs_history_on_an_80_column_terminal_keeps_principals_reasons_and_pipelines_readable(
    runner, fake_api, monkeypatch
):
    # given a terminal of 80 columns, events by a producer key, and a job whose pipeline id is long
    monkeypatch.setenv("COLUMNS", "80")
    by = "key:THze-z5izHoh"
    events = [
        {
            "event_id": f"e{i}",
            "name": name,
            "outcome": outcome,
            "from_state": source,
            "to_state": target,
            "generation": 1,
            "by": by,
            "at": f"2026-12-02T05:33:2{i}.000Z",
            "data": {"host": "node-7"} if name == "run" else {},
            **({"reason": reason} if reason else {}),
        }
        for i, (name, outcome, source, target, reason) in enumerate(
            [
                ("run", "applied", "CREATED", "RUNNING", None),
                ("finish", "applied", "RUNNING", "FINISHED", None),
                (
                    "update",
                    "rejected",
                    "FINISHED",
                    None,
                    "the producer key was revoked after this event was accepted",
                ),
            ]
        )
    ]
    fake_api.route("GET", f"/jobs/{U1}/events", 200, {"events": events, "next": None})
    fake_api.route(
        "GET", "/jobs", 200, {"jobs": [job(U1, pipeline_uuid="demo-pipeline-long-01")], "next": None}
    )
    # when
    history = invoke(runner, fake_api, "jobs", "history", U1)
    listed = invoke(runner, fake_api, "jobs", "list")
    # then every line fits; the principal and the states are whole, the reason is readable in chunks
    # of at least 20 characters, and a job stays on one line (its pipeline cut short: `jobs show` has it)
    for result in (history, listed):
        assert result.exit_code == 0, result.stderr
        assert max(len(line) for line in result.stdout.splitlines()) <= 80
    assert history.stdout.count(by) == 3
    for text in ("RUNNING", "FINISHED", "05:33:20", "2026-12-02", "the producer key was"):
        assert text in history.stdout
    (row,) = [line for line in listed.stdout.splitlines() if U1 in line]
    assert "demo-pi" in row and "…" in row and len(listed.stdout.splitlines()) == 3


# -- events ----------------------------------------------------------------------------------------------


def test_jobs_event_with_a_job_token_prints_the_next_token(runner, fake_api):
    # given
    fake_api.route(
        "POST", f"/jobs/{U1}/events", 202, {"event_id": "e9", "event": "update", "token": "pjt_next"}
    )
    # when
    result = runner.invoke(
        app,
        [
            "--url",
            fake_api.url,
            "jobs",
            "event",
            U1,
            "update",
            "--data",
            '{"p": 1}',
            "--job-token",
            "pjt_now",
        ],
    )
    # then
    assert result.exit_code == 0, result.stderr
    request = fake_api.requests[0]
    assert (request.bearer, request.body) == ("pjt_now", {"name": "update", "data": {"p": 1}})
    assert "queued" in result.stdout and "e9" in result.stdout and "next token: pjt_next" in result.stdout


def test_jobs_event_wait_reports_a_rejection_and_exits_5(runner, fake_api):
    # given
    fake_api.route("POST", f"/jobs/{U1}/events", 202, {"event_id": "e1", "event": "finish", "token": ADMIN})
    rejected = {"event_id": "e1", "status": "rejected", "reason": "cannot finish a job in CREATED"}
    fake_api.route("GET", f"/jobs/{U1}/events/e1", 200, rejected)
    # when
    result = invoke(runner, fake_api, "jobs", "event", U1, "finish", "--wait", "--json")
    # then
    assert result.exit_code == 5
    assert json.loads(result.stdout) == {
        "uuid": U1,
        "name": "finish",
        "event_id": "e1",
        "status": "rejected",
        "reason": "cannot finish a job in CREATED",
    }  # and no admin token echoed back


def test_jobs_event_refuses_invalid_json_data(runner, fake_api):
    result = invoke(runner, fake_api, "jobs", "event", U1, "update", "--data", "{nope")
    assert result.exit_code == 1
    assert "--data is not valid JSON" in result.stderr
    assert fake_api.requests == []


def test_jobs_event_not_allowed_exits_5_with_a_pointer_to_show(runner, fake_api):
    fake_api.route(
        "POST",
        f"/jobs/{U1}/events",
        409,
        {"error": {"code": "event_not_allowed", "message": "cannot finish a job in CREATED"}},
    )
    result = invoke(runner, fake_api, "jobs", "event", U1, "finish")
    assert result.exit_code == 5
    assert "cannot finish a job in CREATED" in result.stderr and "jobs show" in result.stderr


# -- bulk reset and delete ---------------------------------------------------------------------------------


def test_bulk_reset_refuses_more_than_max_and_sends_nothing(runner, fake_api):
    # given
    fake_api.route("GET", "/jobs", 200, {"jobs": [job(U1), job(U2), job(U3)], "next": None})
    # when
    result = invoke(runner, fake_api, "jobs", "reset", "--state", "FAILED", "--max", "2", "--yes")
    # then
    assert result.exit_code == 1
    assert "more than 2 jobs match" in result.stderr and "--max" in result.stderr
    assert fake_api.requests[0].query["limit"] == "3"
    assert fake_api.calls("POST", r"/jobs/.*/events") == []


def test_bulk_reset_without_selection_refuses(runner, fake_api):
    result = invoke(runner, fake_api, "jobs", "reset", "--yes")
    assert result.exit_code == 1
    assert "nothing selected" in result.stderr
    assert fake_api.requests == []


def test_bulk_reset_asks_first_and_a_no_changes_nothing(runner, fake_api):
    fake_api.route("GET", "/jobs", 200, {"jobs": [job(U1), job(U2)], "next": None})
    result = invoke(runner, fake_api, "jobs", "reset", "--pipeline", "pipe-1", input="n\n")
    assert result.exit_code == 1
    assert "Reset 2 jobs?" in result.stderr and "aborted" in result.stderr
    assert fake_api.calls("POST", r"/jobs/.*/events") == []


def test_bulk_reset_confirmed_resets_each_match_and_reports_failures(runner, fake_api):
    # given: the second job was deleted meanwhile
    fake_api.route("GET", "/jobs", 200, {"jobs": [job(U1), job(U2), job(U3)], "next": None})
    fake_api.route("POST", r"/jobs/[^/]+/events", 202, {"event_id": "e", "event": "reset", "token": ADMIN})
    fake_api.route("POST", f"/jobs/{U2}/events", 404, {"error": {"code": "job_not_found", "message": "gone"}})
    # when
    result = invoke(runner, fake_api, "jobs", "reset", "--state", "FAILED", "--keep-archive", input="y\n")
    # then
    assert result.exit_code == 1
    posted = fake_api.calls("POST", r"/jobs/.*/events")
    assert [r.path.split("/")[2] for r in posted] == [U1, U2, U3]
    assert {json.dumps(r.body) for r in posted} == {
        json.dumps({"name": "reset", "data": {"keep_archive": True}})
    }
    assert "Reset requested for 2 jobs." in result.stdout and f"{U2}: gone" in result.stdout
    assert "Reset" in result.stderr and "3/3" in result.stderr  # the progress bar


def test_bulk_delete_by_uuid_json_summary(runner, fake_api):
    # given
    fake_api.route("POST", r"/jobs/[^/]+/events", 202, {"event_id": "e7", "event": "delete", "token": ADMIN})
    # when
    result = invoke(runner, fake_api, "jobs", "delete", U1, U2, U1, "--purge-archive", "--yes", "--json")
    # then
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        "requested": 2,
        "accepted": [{"uuid": U1, "event_id": "e7"}, {"uuid": U2, "event_id": "e7"}],
        "failed": [],
    }
    assert fake_api.requests[0].body == {"name": "delete", "data": {"purge_archive": True}}


def test_bulk_stops_at_once_when_the_credential_is_refused(runner, fake_api):
    fake_api.route(
        "POST", r"/jobs/[^/]+/events", 403, {"error": {"code": "forbidden", "message": "not admin"}}
    )
    result = invoke(runner, fake_api, "jobs", "delete", U1, U2, "--yes")
    assert result.exit_code == 3
    assert len(fake_api.requests) == 1


# -- dlq ---------------------------------------------------------------------------------------------------


@pytest.fixture
def queues():
    with mock_aws():
        sqs = boto3.client("sqs")
        dlq = sqs.create_queue(QueueName="t-dlq.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        queue = sqs.create_queue(QueueName="t-events.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        for i, uuid in enumerate((U1, U2, U1)):
            body = {
                "uuid": uuid,
                "name": "run",
                "data": {"i": i},
                "token": f"pjt_secret{i}",
                "event_id": f"ev{i}",
            }
            sqs.send_message(
                QueueUrl=dlq,
                MessageBody=json.dumps(body),
                MessageGroupId=uuid,
                MessageDeduplicationId=f"ev{i}",
            )
        yield sqs, dlq, queue


def test_dlq_list_shows_the_messages_but_never_their_tokens(runner, queues):
    # given
    sqs, dlq, _ = queues
    # when
    table = runner.invoke(app, ["dlq", "list", "--dlq-url", dlq])
    as_json = runner.invoke(app, ["dlq", "list", "--dlq-url", dlq, "--json"])
    # then
    assert table.exit_code == 0, table.stderr
    assert U1 in table.stdout and U2 in table.stdout and "ev2" in table.stdout
    listed = json.loads(as_json.stdout)
    assert listed["approximate_count"] == 3
    assert sorted(m["event_id"] for m in listed["messages"]) == ["ev0", "ev1", "ev2"]
    assert "pjt_secret" not in table.output + as_json.output
    # and the messages are still there, visible
    assert (
        int(
            sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["All"])["Attributes"][
                "ApproximateNumberOfMessages"
            ]
        )
        == 3
    )


def test_dlq_redrive_moves_messages_back_keeping_groups(runner, queues):
    # given
    sqs, dlq, queue = queues
    # when
    result = runner.invoke(app, ["dlq", "redrive", "--dlq-url", dlq, "--queue-url", queue, "--yes", "--json"])
    # then
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"moved": 3}
    moved = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"])
    bodies = [
        (m["Attributes"]["MessageGroupId"], json.loads(m["Body"])["event_id"]) for m in moved["Messages"]
    ]
    assert sorted(bodies) == [(U1, "ev0"), (U1, "ev2"), (U2, "ev1")]
    assert sqs.receive_message(QueueUrl=dlq).get("Messages") is None


def test_dlq_redrive_max_moves_only_that_many(runner, queues):
    sqs, dlq, queue = queues
    result = runner.invoke(
        app, ["dlq", "redrive", "--dlq-url", dlq, "--queue-url", queue, "--max", "1", "--yes"]
    )
    assert result.exit_code == 0, result.stderr
    assert "Moved 1 message back" in result.stdout
    depth = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])
    assert depth["Attributes"]["ApproximateNumberOfMessages"] == "2"


def test_dlq_without_a_queue_says_which_option_is_missing(runner):
    result = runner.invoke(app, ["dlq", "redrive", "--dlq-url", "https://sqs/x.fifo"])
    assert result.exit_code == 1
    assert "--queue-url is missing" in result.stderr


# -- a deployed stack's outputs ------------------------------------------------------------------------

STACK_TEMPLATE = {
    "Resources": {
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "d-events.fifo", "FifoQueue": True}},
        "Dlq": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "d-dlq.fifo", "FifoQueue": True}},
        "Key": {
            "Type": "AWS::SSM::Parameter",
            "Properties": {"Name": "/d/admin-key", "Type": "String", "Value": "dk"},
        },
    },
    "Outputs": {
        "QueueUrl": {"Value": {"Ref": "Queue"}},
        "DeadLetterQueueUrl": {"Value": {"Ref": "Dlq"}},
        "AdminKeyParameterName": {"Value": {"Ref": "Key"}},
        "AdminTokenLifetime": {"Value": "600"},
        "ApiUrl": {"Value": "http://127.0.0.1:9"},
    },
}


def test_stack_name_finds_the_queues_and_the_admin_key_in_the_stack_outputs(runner):
    with mock_aws():
        # given
        boto3.client("cloudformation").create_stack(StackName="d", TemplateBody=json.dumps(STACK_TEMPLATE))
        # when
        listed = runner.invoke(app, ["dlq", "list", "--stack-name", "d", "--json"])
        token = runner.invoke(app, ["--stack-name", "d", "admin-token"])
        shown = runner.invoke(app, ["--stack-name", "d", "jobs", "show", U1])
    # then
    assert listed.exit_code == 0, listed.stderr
    assert json.loads(listed.stdout)["queue_url"].endswith("/d-dlq.fifo")
    assert token.stdout.strip() == admin_token("dk", time.time(), 600)
    # the API URL came from the outputs too (nothing listens there)
    assert shown.exit_code == 6 and "127.0.0.1:9" in shown.stderr


def _counts(**nonzero: int) -> dict:
    states = ("CREATED", "RUNNING", "FAILED", "FINISHED", "INDEXING", "VALIDATING", "VALIDATED",
              "REJECTED", "FINALIZED", "RETIRED", "RESET", "CANCELED")  # fmt: skip
    counts = {s: nonzero.get(s, 0) for s in states}
    return {"counts": counts, "total": sum(counts.values()), "complete": True}


def test_jobs_counts_shows_a_bar_per_state_within_80_columns(runner, fake_api, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    fake_api.route("GET", "/jobs/counts", 200, _counts(RUNNING=1200, FAILED=30, FINISHED=600))
    result = invoke(runner, fake_api, "jobs", "counts", "--pipeline", "pipe-1", "--state", "running")
    assert result.exit_code == 0, result.stderr
    assert fake_api.requests[0].query == {"pipeline_uuid": "pipe-1", "state": "RUNNING"}
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert [line.split()[0] for line in lines] == ["RUNNING", "FINISHED", "FAILED"]  # most first
    bars = {line.split()[0]: line.count("█") for line in lines}
    assert bars["RUNNING"] == 2 * bars["FINISHED"] and bars["FAILED"] >= 1
    assert "1,200" in result.stdout and "1,830 jobs" in result.stderr
    assert "CREATED" not in result.stdout  # none: not shown


def test_jobs_counts_says_when_not_every_job_was_counted(runner, fake_api):
    fake_api.route("GET", "/jobs/counts", 200, {**_counts(CREATED=100_000), "complete": False})
    result = invoke(runner, fake_api, "jobs", "counts")
    assert result.exit_code == 0, result.stderr
    assert "more match than one call counts" in result.stderr


def test_jobs_counts_json_is_the_api_answer(runner, fake_api):
    answer = _counts(CREATED=2)
    fake_api.route("GET", "/jobs/counts", 200, answer)
    result = invoke(runner, fake_api, "jobs", "counts", "--json")
    assert json.loads(result.stdout) == answer
