"""CLI unit tests of producer keys against canned API responses: `keys create / list / revoke` (what they
send, print once, warn about and refuse), and the CLI acting as a producer with `--api-key` /
PIPELINEJOBS_KEY (which credential wins, and what the errors then say to do)."""

from __future__ import annotations

import json
import re
import shlex
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipelinejobs.cli import app
from tests.cli.conftest import ADMIN
from tests.sdk.fake_api import FakeApi

KEY_ID = "Xk3v9QmL2a_B"
SECRET = "S3cr3t" + "q" * 34 + "_z-"
KEY = f"pjk_{KEY_ID}_{SECRET}"
U1 = "11111111-1111-5111-8111-111111111111"
RECORD = {
    "id": KEY_ID,
    "label": "lab-a",
    "pipelines": ["pipe-1", "pipe-2"],
    "expires_at": "2027-03-01T12:00:00.000Z",
    "created_at": "2026-12-01T12:00:00.000Z",
    "revoked_at": None,
    "status": "active",
}
FORBIDDEN = {"error": {"code": "forbidden", "message": "managing producer keys needs an admin token"}}


def as_admin(runner, fake_api: FakeApi, *args: str, input: str | None = None):
    return runner.invoke(app, ["--url", fake_api.url, "--token", ADMIN, *args], input=input)


def as_key(runner, fake_api: FakeApi, *args: str, input: str | None = None):
    return runner.invoke(app, ["--url", fake_api.url, "--api-key", KEY, *args], input=input)


def issued(fake_api: FakeApi, **fields) -> None:
    fake_api.route("POST", "/keys", 201, {**RECORD, "key": KEY, **fields})


def sent_expiry(fake_api: FakeApi) -> datetime:
    return datetime.fromisoformat(
        fake_api.calls("POST", "/keys")[0].body["expires_at"].replace("Z", "+00:00")
    )


# -- keys create ---------------------------------------------------------------------------------------


def test_keys_create_prints_the_key_once_with_a_warning_and_how_to_use_it(runner, fake_api):
    # given
    issued(fake_api)
    # when
    result = as_admin(
        runner, fake_api, "keys", "create", "--label", "lab-a", "--pipeline", "pipe-1", "--pipeline", "pipe-2"
    )
    # then the request is the admin's, with the scope given
    assert result.exit_code == 0, result.stderr
    request = fake_api.calls("POST", "/keys")[0]
    assert request.bearer == ADMIN
    assert request.body == {"label": "lab-a", "pipelines": ["pipe-1", "pipe-2"]}
    # and the key is printed once, on stdout only, with its record
    assert result.stdout.count(KEY) == 1 and KEY not in result.stderr
    for text in (KEY_ID, "lab-a", "pipe-1, pipe-2", "never"):
        assert text in result.stdout
    # with a warning to store it now, and how to use and revoke it
    warning = " ".join(result.stderr.split())
    assert "Store this key now" in warning and "cannot be shown again" in warning
    assert "export PIPELINEJOBS_KEY=" in warning
    assert f"pipelinejobs keys revoke {KEY_ID}" in warning


@pytest.mark.parametrize(
    ("expires", "delta"),
    [("90d", timedelta(days=90)), ("12h", timedelta(hours=12)), ("2w", timedelta(weeks=2))],
)
def test_keys_create_expires_after_a_duration(runner, fake_api, expires, delta):
    issued(fake_api)
    result = as_admin(
        runner, fake_api, "keys", "create", "--label", "l", "--pipeline", "p", "--expires", expires
    )
    assert result.exit_code == 0, result.stderr
    assert abs((sent_expiry(fake_api) - (datetime.now(UTC) + delta)).total_seconds()) < 60
    assert "(in " in result.stdout


@pytest.mark.parametrize(
    ("expires", "moment"),
    [
        ("2099-01-01", datetime(2099, 1, 1, tzinfo=UTC)),
        ("2099-01-01T12:30:00Z", datetime(2099, 1, 1, 12, 30, tzinfo=UTC)),
        ("2099-01-01T12:30:00+02:00", datetime(2099, 1, 1, 10, 30, tzinfo=UTC)),
        ("2099-01-01T12:30", datetime(2099, 1, 1, 12, 30, tzinfo=UTC)),  # naive: UTC
    ],
)
def test_keys_create_expires_at_an_iso_date_or_time(runner, fake_api, expires, moment):
    issued(fake_api)
    result = as_admin(
        runner, fake_api, "keys", "create", "--label", "l", "--pipeline", "p", "--expires", expires
    )
    assert result.exit_code == 0, result.stderr
    assert sent_expiry(fake_api) == moment


@pytest.mark.parametrize(
    ("expires", "says"),
    [
        ("soon", "neither a duration nor a date"),
        ("6m", "neither"),
        ("2001-01-01", "not in the future"),
        ("0d", "not in the future"),
    ],
)
def test_keys_create_refuses_a_bad_expiry_before_any_request(runner, fake_api, expires, says):
    result = as_admin(
        runner, fake_api, "keys", "create", "--label", "l", "--pipeline", "p", "--expires", expires
    )
    assert result.exit_code == 1
    assert says in result.stderr and "90d" in result.stderr
    assert fake_api.requests == []


def test_keys_create_for_every_pipeline(runner, fake_api):
    issued(fake_api, pipelines=["*"])
    result = as_admin(runner, fake_api, "keys", "create", "--label", "ops", "--all-pipelines")
    assert result.exit_code == 0, result.stderr
    assert fake_api.requests[0].body["pipelines"] == ["*"]
    assert "every pipeline" in result.stdout


@pytest.mark.parametrize(
    ("scope", "says"),
    [([], "which pipelines?"), (["--pipeline", "p", "--all-pipelines"], "not both")],
)
def test_keys_create_needs_one_kind_of_scope(runner, fake_api, scope, says):
    result = as_admin(runner, fake_api, "keys", "create", "--label", "l", *scope)
    assert result.exit_code == 1 and says in result.stderr
    assert fake_api.requests == []


def test_keys_create_json_gives_the_key_and_its_record(runner, fake_api):
    issued(fake_api)
    result = as_admin(
        runner, fake_api, "keys", "create", "--label", "lab-a", "--pipeline", "pipe-1", "--json"
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {**RECORD, "key": KEY}
    assert "cannot be shown again" in result.stderr and KEY not in result.stderr


def test_keys_create_refused_by_the_api_says_what_to_fix(runner, fake_api):
    refused = {"error": {"code": "invalid_request", "message": "label must be 1 to 100 characters"}}
    fake_api.route("POST", "/keys", 400, refused)
    result = as_admin(runner, fake_api, "keys", "create", "--label", " ", "--pipeline", "p")
    assert result.exit_code == 1
    assert "label must be 1 to 100 characters" in result.stderr and "--help" in result.stderr


def test_managing_keys_with_a_key_says_it_needs_the_admin_credential(runner, fake_api):
    # given the API's answer to a producer key on /keys
    for method in ("POST", "GET"):
        fake_api.route(method, "/keys", 403, FORBIDDEN)
    fake_api.route("DELETE", f"/keys/{KEY_ID}", 403, FORBIDDEN)
    # when the CLI acts with a key
    results = [
        as_key(runner, fake_api, "keys", "create", "--label", "l", "--pipeline", "p"),
        as_key(runner, fake_api, "keys", "list"),
        as_key(runner, fake_api, "keys", "revoke", KEY_ID, "--yes"),
    ]
    # then each says what it needs and how to give it, naming the key by its id only
    for result in results:
        assert result.exit_code == 3
        assert "managing keys needs the admin credential" in result.stderr
        assert f"producer key {KEY_ID}" in result.stderr and "--token" in result.stderr
        assert SECRET not in result.output
    assert {request.bearer for request in fake_api.requests} == {KEY}


# -- keys list -----------------------------------------------------------------------------------------

MANY = [
    RECORD,
    {
        **RECORD,
        "id": "Zz9-zz9_Zz9z",
        "label": "the nightly reactor of the genomics core facility, building 4",
        "pipelines": [f"pipeline-with-a-long-name-{i}" for i in range(6)],
        "expires_at": None,
        "status": "revoked",
        "revoked_at": "2026-12-02T00:00:00.000Z",
    },
    {**RECORD, "id": "Aa1-aa1_Aa1a", "label": "old", "pipelines": ["*"], "status": "expired"},
]


def test_keys_list_fits_80_columns_with_ids_statuses_and_expiry_whole(runner, fake_api, monkeypatch):
    # given an 80-column terminal and keys with long labels and scopes
    monkeypatch.setenv("COLUMNS", "80")
    fake_api.route("GET", "/keys", 200, {"keys": MANY})
    # when
    result = as_admin(runner, fake_api, "keys", "list")
    # then
    assert result.exit_code == 0, result.stderr
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    for text in ("ID", "LABEL", "PIPELINES", "STATUS", "EXPIRES", KEY_ID, "Zz9-zz9_Zz9z", "Aa1-aa1_Aa1a"):
        assert text in result.stdout
    for text in ("active", "revoked", "expired", "2027-03-01 12:00", "never", "every pipeline"):
        assert text in result.stdout
    assert "3 keys shown, 1 active" in result.stderr
    assert fake_api.requests[0].bearer == ADMIN


def test_keys_list_active_and_json(runner, fake_api):
    fake_api.route("GET", "/keys", 200, {"keys": MANY})
    active = as_admin(runner, fake_api, "keys", "list", "--active")
    as_json = json.loads(as_admin(runner, fake_api, "keys", "list", "--json").stdout)
    assert KEY_ID in active.stdout and "Zz9-zz9_Zz9z" not in active.stdout
    assert as_json == {"keys": MANY}


def test_keys_list_empty_says_how_to_issue_one(runner, fake_api):
    fake_api.route("GET", "/keys", 200, {"keys": []})
    result = as_admin(runner, fake_api, "keys", "list")
    assert result.exit_code == 0 and "pipelinejobs keys create" in result.stderr


# -- keys revoke ---------------------------------------------------------------------------------------


def revoked(fake_api: FakeApi) -> None:
    answer = {**RECORD, "status": "revoked", "revoked_at": "2026-12-05T08:00:00.000Z"}
    fake_api.route("DELETE", f"/keys/{KEY_ID}", 200, answer)


def test_keys_revoke_asks_first_showing_the_key_then_revokes(runner, fake_api):
    # given
    fake_api.route("GET", "/keys", 200, {"keys": [RECORD]})
    revoked(fake_api)
    # when
    result = as_admin(runner, fake_api, "keys", "revoke", KEY_ID, input="y\n")
    # then
    assert result.exit_code == 0, result.stderr
    assert f"Revoke key {KEY_ID} (lab-a; pipelines pipe-1, pipe-2)?" in result.stderr
    assert [(r.method, r.path) for r in fake_api.requests] == [
        ("GET", "/keys"),
        ("DELETE", f"/keys/{KEY_ID}"),
    ]
    assert f"Revoked key {KEY_ID} (lab-a) at 2026-12-05 08:00:00 UTC" in result.stdout
    assert "still queued will be rejected" in result.stdout


def test_keys_revoke_answered_no_changes_nothing(runner, fake_api):
    fake_api.route("GET", "/keys", 200, {"keys": [RECORD]})
    result = as_admin(runner, fake_api, "keys", "revoke", KEY_ID, input="n\n")
    assert result.exit_code == 1 and "aborted" in result.stderr
    assert fake_api.calls("DELETE", r"/keys/.*") == []


def test_keys_revoke_yes_revokes_at_once_and_json_gives_the_record(runner, fake_api):
    revoked(fake_api)
    result = as_admin(runner, fake_api, "keys", "revoke", KEY_ID, "--yes", "--json")
    assert result.exit_code == 0, result.stderr
    assert [r.method for r in fake_api.requests] == ["DELETE"]
    assert json.loads(result.stdout)["status"] == "revoked"


def test_keys_revoke_an_unknown_id_exits_4_and_revokes_nothing(runner, fake_api):
    fake_api.route("GET", "/keys", 200, {"keys": [RECORD]})
    fake_api.route("DELETE", r"/keys/.*", 404, {"error": {"code": "key_not_found", "message": "no key"}})
    asked = as_admin(runner, fake_api, "keys", "revoke", "Nope12345678")
    forced = as_admin(runner, fake_api, "keys", "revoke", "Nope12345678", "--yes")
    assert asked.exit_code == forced.exit_code == 4
    assert "no producer key Nope12345678" in asked.stderr and "keys list" in asked.stderr
    assert len(fake_api.calls("DELETE", r"/keys/.*")) == 1  # only the --yes one asked the API


def test_keys_revoke_an_already_revoked_key_says_so(runner, fake_api):
    fake_api.route("GET", "/keys", 200, {"keys": [MANY[1]]})
    result = as_admin(runner, fake_api, "keys", "revoke", "Zz9-zz9_Zz9z")
    assert result.exit_code == 0
    assert "already revoked at 2026-12-02 00:00:00 UTC" in result.stdout
    assert fake_api.calls("DELETE", r"/keys/.*") == []


def test_keys_revoke_given_the_whole_key_revokes_its_id_and_never_shows_it(runner, fake_api):
    revoked(fake_api)
    result = as_admin(runner, fake_api, "keys", "revoke", KEY, "--yes")
    assert result.exit_code == 0, result.stderr
    assert [r.path for r in fake_api.requests] == [f"/keys/{KEY_ID}"]
    assert SECRET not in result.output


# -- acting as a producer key ----------------------------------------------------------------------------


def test_api_key_makes_the_cli_act_as_the_producer(runner, fake_api):
    # given
    fake_api.route("GET", "/jobs", 200, {"jobs": [], "next": None})
    created = {"job": {"uuid": U1, "pipeline_uuid": "pipe-1", "state": "CREATED", "owner": KEY_ID}}
    fake_api.route("POST", "/jobs", 201, {**created, "token": "pjt_first", "callback_url": "http://cb"})
    # when
    listed = as_key(runner, fake_api, "jobs", "list")
    made = as_key(runner, fake_api, "jobs", "create", "pipe-1", "--data", '{"s": 1}', "--json")
    # then both went with the key, and the job's own token is shown to hand on
    assert listed.exit_code == 0 and made.exit_code == 0, made.stderr
    assert {request.bearer for request in fake_api.requests} == {KEY}
    assert json.loads(made.stdout)["token"] == "pjt_first"


def test_pipelinejobs_key_in_the_environment_beats_the_admin_variables_with_a_note(
    runner, fake_api, monkeypatch
):
    # given a shell that exported both
    monkeypatch.setenv("PIPELINEJOBS_KEY", KEY)
    monkeypatch.setenv("PIPELINEJOBS_TOKEN", ADMIN)
    fake_api.route("GET", "/jobs", 200, {"jobs": [], "next": None})
    # when
    result = runner.invoke(app, ["--url", fake_api.url, "jobs", "list"])
    # then the key was used, and a note says so and how to act as the admin instead
    assert result.exit_code == 0, result.stderr
    assert fake_api.requests[0].bearer == KEY
    note = " ".join(result.stderr.split())
    assert "acts as that producer key" in note and "--token" in note
    assert SECRET not in result.output


def test_an_admin_option_beats_an_exported_key_without_a_note(runner, fake_api, monkeypatch):
    monkeypatch.setenv("PIPELINEJOBS_KEY", KEY)
    fake_api.route("GET", "/keys", 200, {"keys": [RECORD]})
    result = as_admin(runner, fake_api, "keys", "list")
    assert result.exit_code == 0, result.stderr
    assert fake_api.requests[0].bearer == ADMIN
    assert "note" not in result.stderr


def test_an_api_key_option_beats_an_exported_admin_token(runner, fake_api, monkeypatch):
    monkeypatch.setenv("PIPELINEJOBS_TOKEN", ADMIN)
    fake_api.route("GET", "/jobs", 200, {"jobs": [], "next": None})
    result = as_key(runner, fake_api, "jobs", "list")
    assert result.exit_code == 0, result.stderr
    assert fake_api.requests[0].bearer == KEY and "note" not in result.stderr


def test_a_key_and_an_admin_option_together_are_refused(runner, fake_api):
    result = runner.invoke(app, ["--url", fake_api.url, "--token", ADMIN, "--api-key", KEY, "jobs", "list"])
    assert result.exit_code == 1
    assert "not both" in result.stderr
    assert fake_api.requests == [] and SECRET not in result.output


def test_a_malformed_key_is_refused_without_showing_it(runner, fake_api, monkeypatch):
    monkeypatch.setenv("PIPELINEJOBS_KEY", "pjt_" + SECRET)
    result = runner.invoke(app, ["--url", fake_api.url, "jobs", "list"])
    assert result.exit_code == 3
    assert "PIPELINEJOBS_KEY is not a producer key" in result.stderr
    assert SECRET not in result.output and "Traceback" not in result.output
    assert fake_api.requests == []


def test_a_refused_key_says_to_check_it_with_keys_list(runner, fake_api):
    refused = {
        "error": {
            "code": "unauthorized",
            "message": "the producer key is not valid (unknown, revoked or expired)",
        }
    }
    fake_api.route("GET", f"/jobs/{U1}", 401, refused)
    result = as_key(runner, fake_api, "jobs", "show", U1)
    assert result.exit_code == 3
    message = " ".join(result.stderr.split())
    assert f"the producer key {KEY_ID} was refused" in message
    assert "pipelinejobs keys list" in message and "pipelinejobs keys create" in message
    assert "admin-token" not in message and SECRET not in result.output


def test_a_key_refused_an_admin_event_says_it_needs_the_admin_credential(runner, fake_api):
    not_yours = {"error": {"code": "forbidden", "message": "a producer key may not send reset"}}
    fake_api.route("POST", rf"/jobs/{U1}/events", 403, not_yours)
    result = as_key(runner, fake_api, "jobs", "reset", U1, "--yes")
    assert result.exit_code == 3
    message = " ".join(result.stderr.split())
    assert "a producer key may not send reset" in message
    assert "reset, ready, delete and managing keys need the admin credential" in message


def test_a_key_on_an_unknown_job_hints_that_it_sees_only_its_own(runner, fake_api):
    fake_api.route("GET", f"/jobs/{U1}", 404, {"error": {"code": "job_not_found", "message": f"no job {U1}"}})
    result = as_key(runner, fake_api, "jobs", "show", U1)
    assert result.exit_code == 4 and "sees only the jobs it created" in " ".join(result.stderr.split())


def test_jobs_list_owner_filter_is_sent(runner, fake_api):
    fake_api.route("GET", "/jobs", 200, {"jobs": [], "next": None})
    as_admin(runner, fake_api, "jobs", "list", "--owner", KEY_ID)
    assert fake_api.requests[0].query == {"owner": KEY_ID, "limit": "51"}


def test_help_never_shows_an_exported_key(runner, monkeypatch):
    monkeypatch.setenv("PIPELINEJOBS_KEY", KEY)
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "--api-key" in result.stdout and "PIPELINEJOBS_KEY" in result.stdout
    assert SECRET not in result.output


# -- the docs -------------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTED = re.compile(r"^(pipelinejobs .+?)(?:\s+#.*)?$|`(pipelinejobs [^`\n]+)`", re.MULTILINE)


def documented_commands() -> list[str]:
    found = []
    for doc in ("README.md", "docs/KEYS.md"):
        for line, inline in DOCUMENTED.findall((ROOT / doc).read_text()):
            found.append(re.split(r"\s+(?:\||\\$)", line or inline)[0])
    return found


def test_every_command_the_docs_show_exists_with_its_options():
    # given every `pipelinejobs …` command line of the README and docs/KEYS.md
    import typer.main

    commands = documented_commands()
    assert any(c.startswith("pipelinejobs keys create") for c in commands)
    for line in commands:
        command: Any = typer.main.get_command(app)
        words = shlex.split(line)[1:]
        while words:
            word = words.pop(0)
            if word.startswith("-"):
                # then each option is one the command (or the root) has
                option = next((p for p in command.params if word.split("=")[0] in p.opts), None)
                assert option is not None, f"{line!r}: {command.name} has no option {word}"
                if not option.is_flag and "=" not in word and words:
                    words.pop(0)
            elif hasattr(command, "commands"):
                assert word in command.commands, f"{line!r}: no command {word}"
                command = command.commands[word]
