"""The dashboard in a real browser (SPEC section 9, issue 13): Debian's Chromium driven by Playwright
against the local stack, as a person uses it: sign in with the admin token or a producer key, filter the
jobs, open one, send an event and see it applied, see its outputs and download one, reset with a
confirmation, issue and revoke a key, look at and redrive the dead-letter queue; a job whose name and
data are script injections runs nothing; the credential never appears in a URL."""

from __future__ import annotations

import json
import re
import uuid as uuidlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from dashboard_data import (
    HOSTILE_DATA,
    HOSTILE_NAME,
    HOSTILE_TEXT,
    SUMMARY,
    Seeded,
    chromium_path,
    put_outputs,
    seed,
)
from playwright.sync_api import Browser, Page, expect, sync_playwright

from pipelinejobs import Client
from pipelinejobs.errors import Unauthorized

if TYPE_CHECKING:
    from pathlib import Path

    from pipelinejobs.local.stack import LocalStack

pytestmark = pytest.mark.e2e
expect.set_options(timeout=15_000)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def admin(stack: LocalStack) -> Client:
    return Client(stack.api_url, admin_key=stack.admin_key, timeout=10)


@pytest.fixture(scope="module")
def seeded(stack: LocalStack, admin: Client) -> Seeded:
    return seed(admin, stack.client("s3"))


class Watched:
    """A page and everything it did that a person would not see: script errors, dialogs, requests."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.urls: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        # (a refused request is logged by the browser itself, "Failed to load resource": the page shows
        # the API's reason instead; anything else logged as an error, a CSP violation included, counts)
        page.on("console", lambda m: self._console(m.type, m.text))
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        page.on("request", lambda r: self.urls.append(r.url))

    def _console(self, kind: str, text: str) -> None:
        if kind == "error" and not text.startswith("Failed to load resource"):
            self.errors.append(text)


@pytest.fixture
def watched(browser: Browser, stack: LocalStack, seeded: Seeded) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    watched = Watched(page)
    page.goto(stack.api_url + "/")
    yield watched
    context.close()
    # nothing the page did failed in its console, and it opened no alert/confirm/prompt of its own
    assert watched.errors == []
    assert watched.dialogs == []


def sign_in(page: Page, credential: str) -> None:
    page.fill("#credential", credential)
    page.click("#signin button[type=submit]")
    expect(page.locator("#sign-out")).to_be_visible()


def rows(page: Page) -> Any:
    return page.locator("#jobs tr[data-uuid]")


def filter_jobs(page: Page, **fields: str) -> None:
    """Fill the filters form as a person would (a select for the state, text for the rest), then apply."""
    for name, value in fields.items():
        if name == "state":
            page.select_option("#filters select[name=state]", value)
        else:
            page.fill(f"#filters input[name={name}]", value)
    page.click("#filters button[type=submit]")


def open_job(page: Page, uuid: str) -> None:
    page.goto(page.url.split("#")[0] + f"#/job/{uuid}")
    expect(page.locator("#fields dd[data-field=uuid]")).to_have_text(uuid)


# -- signing in ----------------------------------------------------------------------------------------


def test_a_wrong_credential_is_refused_with_a_reason_and_the_admin_token_signs_in(
    watched: Watched, stack: LocalStack, seeded: Seeded
) -> None:
    page = watched.page
    # when a person pastes a job token, then a wrong admin token
    page.fill("#credential", seeded.created.token)
    page.click("#signin button[type=submit]")
    expect(page.locator("#signin-error")).to_contain_text("job or callback token")
    page.fill("#credential", "0" * 64)
    page.click("#signin button[type=submit]")
    # then each is refused with the API's reason, and nothing is kept
    expect(page.locator("#signin-error")).to_contain_text("admin token is not valid")
    assert page.evaluate("sessionStorage.length") == 0
    # when the admin token the banner printed is pasted
    token = stack.admin_token()
    sign_in(page, token)
    # then the jobs are listed, and the token is kept in this tab only: never in a URL or local storage
    expect(rows(page)).to_have_count(5)
    assert page.evaluate("localStorage.length") == 0
    assert token not in page.url
    assert not [url for url in watched.urls if token in url]
    expect(page.locator("#who")).to_have_text("signed in as admin")


# -- the jobs table --------------------------------------------------------------------------------


def test_the_table_lists_newest_first_with_counts_per_state_and_filters(
    watched: Watched, stack: LocalStack, seeded: Seeded
) -> None:
    page = watched.page
    sign_in(page, stack.admin_token())
    # then the table shows every job, newest first, and the counts bar each state's number
    expect(rows(page)).to_have_count(5)
    assert rows(page).first.get_attribute("data-uuid") == seeded.hostile.uuid
    expect(page.locator("#total")).to_have_text("5 jobs")
    expect(page.locator("#legend button[data-state=RUNNING]")).to_have_text("RUNNING 2")
    expect(page.locator("#legend button[data-state=FAILED]")).to_have_text("FAILED 1")
    # when a person filters by pipeline, then by state from the bar's legend
    filter_jobs(page, pipeline_uuid="variant-calling")
    expect(rows(page)).to_have_count(2)
    expect(page.locator("#total")).to_have_text("2 jobs")
    page.click("#legend button[data-state=FAILED]")
    # then only the matching jobs are listed, and the filters are in the page's address (no secret)
    expect(rows(page)).to_have_count(1)
    assert rows(page).first.get_attribute("data-uuid") == seeded.failed.uuid
    assert "state=FAILED" in page.url and "pipeline_uuid=variant-calling" in page.url
    # and a tag filter with no match says so
    filter_jobs(page, tag="no-such-tag")
    expect(page.locator("#jobs")).to_contain_text("No job matches these filters.")


def test_the_table_refreshes_itself_when_a_job_changes(
    watched: Watched, stack: LocalStack, admin: Client
) -> None:
    page = watched.page
    sign_in(page, stack.admin_token())
    filter_jobs(page, state="CANCELED")
    expect(page.locator("#jobs")).to_contain_text("No job matches")
    # when a job is canceled elsewhere (the SDK), while the page stays open
    job = admin.create_job("rnaseq", {"sample": "live-refresh"}, name="canceled elsewhere")
    job.cancel().wait_for("CANCELED", timeout=30)
    # then it appears without a reload (the page refreshes every 5 s)
    expect(page.locator("#jobs tr[data-uuid]")).to_have_count(1, timeout=20_000)
    expect(page.locator("#jobs")).to_contain_text("canceled elsewhere")


# -- a job's page ----------------------------------------------------------------------------------


def test_a_job_page_shows_fields_history_and_outputs_and_downloads_one(
    watched: Watched, stack: LocalStack, seeded: Seeded, tmp_path: Path
) -> None:
    page = watched.page
    sign_in(page, stack.admin_token())
    # when a person opens the finished job from the table
    page.locator(f"#jobs tr[data-uuid='{seeded.finished.uuid}'] a.job-link").click()
    # then its fields, durations and history are shown
    expect(page.locator("#fields dd[data-field=state]")).to_have_text("FINISHED")
    expect(page.locator("#fields dd[data-field=pipeline]")).to_have_text("variant-calling")
    expect(page.locator("#fields dd[data-field=run]")).not_to_have_text("\u2013")
    history = page.locator("#history li")
    expect(history).to_have_count(3)
    expect(history.nth(0)).to_contain_text("run")
    expect(history.nth(0)).to_contain_text("CREATED → RUNNING")
    expect(history.nth(1)).to_contain_text('"progress": 0.9')
    expect(history.nth(2)).to_contain_text("finish")
    expect(history.nth(2)).to_contain_text("RUNNING → FINISHED")
    expect(history.nth(2)).to_contain_text("by job")  # (the SDK handle sent it with the job token)
    # and its outputs, each with a link
    expect(page.locator("#outputs tr[data-key]")).to_have_count(3)
    # when a person downloads summary.json
    with page.expect_download() as download:
        page.locator("#outputs tr[data-key='summary.json'] a").click()
    saved = tmp_path / "summary.json"
    download.value.save_as(saved)
    # then they get its bytes, through a link that carries no credential of ours
    assert saved.read_bytes() == SUMMARY
    assert download.value.url.startswith(stack.aws_endpoint)
    assert stack.admin_key not in download.value.url


def test_sending_an_event_from_the_page_is_applied_and_shown(
    watched: Watched, stack: LocalStack, admin: Client
) -> None:
    page = watched.page
    job = admin.create_job("rnaseq", {"sample": "from-the-page"}, name="driven from the page")
    sign_in(page, stack.admin_token())
    open_job(page, job.uuid)
    # then the buttons are exactly the events an admin may send to a CREATED job
    buttons = page.locator("#actions button")
    expect(buttons).to_have_count(len(admin.get_job_data(job.uuid)["allowed_events"]))
    # when a person sends `run` with data typed in
    page.fill("#event-data", json.dumps({"host": "node-9"}))
    page.click("#actions button[data-event=run]")
    # then the page says it was applied, and shows the new state and the history entry with its data
    expect(page.locator("#toast")).to_have_text("run applied")
    expect(page.locator("#fields dd[data-field=state]")).to_have_text("RUNNING")
    expect(page.locator("#history li").last).to_contain_text('"host": "node-9"')
    assert admin.get_job_data(job.uuid)["state"] == "RUNNING"
    # and malformed data is refused in the page, before anything is sent
    page.fill("#event-data", "{not json")
    page.click("#actions button[data-event=update]")
    expect(page.locator("#toast")).to_have_text("The event data is not valid JSON")
    assert [e["name"] for e in admin.history(job.uuid)] == ["run"]


def test_reset_asks_first_and_cancel_sends_nothing(
    watched: Watched, stack: LocalStack, admin: Client
) -> None:
    page = watched.page
    job = admin.create_job("rnaseq", {"sample": "reset-me"}, name="to be reset")
    put_outputs(stack.client("s3"), job, {"out.txt": b"first run\n"})
    job.run().finish().wait_for("FINISHED", timeout=30)
    sign_in(page, stack.admin_token())
    open_job(page, job.uuid)
    expect(page.locator("#outputs tr[data-key]")).to_have_count(1)
    # when a person clicks reset, then cancels the confirmation
    page.click("#actions button[data-event=reset]")
    expect(page.locator("#confirm")).to_be_visible()
    expect(page.locator("#confirm-text")).to_contain_text("erased")
    page.click("#confirm-cancel")
    # then nothing was sent
    expect(page.locator("#confirm")).to_be_hidden()
    assert [e["name"] for e in admin.history(job.uuid)] == ["run", "finish"]
    # when they click reset again and confirm
    page.click("#actions button[data-event=reset]")
    page.click("#confirm-ok")
    # then the job starts again (CREATED, generation 2) and its outputs are gone
    expect(page.locator("#fields dd[data-field=state]")).to_have_text("CREATED", timeout=20_000)
    expect(page.locator("h1 + .state + .muted")).to_have_text("generation 2")
    expect(page.locator("#outputs")).to_contain_text("No outputs")
    assert admin.get_job_data(job.uuid)["generation"] == 2


def test_a_fresh_token_is_shown_once_and_works(watched: Watched, stack: LocalStack, admin: Client) -> None:
    page = watched.page
    job = admin.create_job("rnaseq", {"sample": "fresh-token"})
    sign_in(page, stack.admin_token())
    open_job(page, job.uuid)
    # when an admin asks for a fresh token and callback URL
    page.click("#fresh-token")
    values = page.locator("#secret input.secret-value")
    expect(values).to_have_count(2)
    token, callback = values.nth(0).input_value(), values.nth(1).input_value()
    # then the token opens the job, and the callback URL is the job's
    assert Client(stack.api_url, timeout=10).job(job.uuid, token=token).refresh().state == "CREATED"
    assert callback.startswith(f"{stack.api_url}/jobs/{job.uuid}/callback?token=")
    # and neither went into the page's address
    assert token not in page.url and "callback" not in page.url


# -- hostile job data --------------------------------------------------------------------------------


def test_a_job_whose_fields_are_script_injections_runs_nothing(
    watched: Watched, stack: LocalStack, seeded: Seeded
) -> None:
    page = watched.page
    sign_in(page, stack.admin_token())
    # when the table and the hostile job's page are shown
    expect(page.locator(f"#jobs tr[data-uuid='{seeded.hostile.uuid}']")).to_contain_text(HOSTILE_NAME)
    page.locator(f"#jobs tr[data-uuid='{seeded.hostile.uuid}'] a.job-link").click()
    expect(page.locator("#fields dd[data-field=session]")).to_have_text(HOSTILE_TEXT)
    expect(page.locator("#history li")).to_have_count(2)
    # then every payload is shown as the text it is ...
    expect(page.locator("h1")).to_have_text(HOSTILE_NAME)
    expect(page.locator("#fields dd[data-field=agent]")).to_have_text(HOSTILE_DATA["html"])
    expect(page.locator("#job-data")).to_contain_text(HOSTILE_DATA["note"])
    expect(page.locator("#history")).to_contain_text(HOSTILE_TEXT)
    # ... and none ran or became an element: no script but the page's, no image, no javascript: link
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("document.scripts.length") == 1
    assert page.locator("main img").count() == 0
    assert page.locator("a[href^='javascript']").count() == 0


# -- a producer key --------------------------------------------------------------------------------


def test_an_admin_issues_a_key_a_reactor_uses_it_and_the_admin_revokes_it(
    watched: Watched, stack: LocalStack, admin: Client
) -> None:
    page = watched.page
    sign_in(page, stack.admin_token())
    page.click("nav a[data-view=keys]")
    # when an admin issues a key for one pipeline
    page.fill("#key-label", "browser reactor")
    page.fill("#key-pipelines", "keyed-pipeline")
    page.select_option("#key-expires", "30")
    page.click("#issue-key button[type=submit]")
    # then it is shown once, listed without its secret, and works for a reactor
    key = page.locator("#issued input.secret-value").input_value()
    assert re.fullmatch(r"pjk_[A-Za-z0-9_-]{12}_[A-Za-z0-9_-]+", key)
    key_id = key[4:16]
    row = page.locator(f"#keys tr[data-key-id='{key_id}']")
    expect(row).to_contain_text("browser reactor")
    expect(row).to_contain_text("active")
    assert key not in page.locator("#keys").inner_text()
    reactor = Client(stack.api_url, api_key=key, timeout=10)
    reactor.create_job("keyed-pipeline", {"sample": str(uuidlib.uuid4())})
    # when the admin revokes it, confirming
    row.locator("button[data-revoke]").click()
    page.click("#confirm-ok")
    # then it is listed as revoked and refused at once
    expect(row).to_contain_text("revoked")
    with pytest.raises(Unauthorized):
        reactor.create_job("keyed-pipeline", {"sample": str(uuidlib.uuid4())})


def test_a_producer_key_sees_its_own_jobs_and_only_what_it_may_do(
    watched: Watched, stack: LocalStack, admin: Client, seeded: Seeded
) -> None:
    page = watched.page
    issued = admin.keys.create(label="lab-c", pipelines=["rnaseq"])
    assert issued.key is not None
    own = Client(stack.api_url, api_key=issued.key, timeout=10).create_job(
        "rnaseq", {"sample": "owned"}, name="mine"
    )
    sign_in(page, issued.key)
    # then only its own job is listed, and no admin page is offered
    expect(rows(page)).to_have_count(1)
    expect(page.locator("#jobs")).to_contain_text("mine")
    expect(page.locator("#who")).to_have_text(f"signed in with producer key {issued.id}")
    expect(page.locator("nav a[data-view=keys]")).to_be_hidden()
    expect(page.locator("#filters input[name=owner]")).to_have_count(0)
    # and its job offers its events, never reset or delete
    open_job(page, own.uuid)
    expect(page.locator("#actions button[data-event=run]")).to_be_visible()
    expect(page.locator("#actions button[data-event=reset]")).to_have_count(0)
    expect(page.locator("#actions button[data-event=delete]")).to_have_count(0)
    # and another owner's job is not there for it
    open_url = page.url.split("#")[0] + f"#/job/{seeded.created.uuid}"
    page.goto(open_url)
    expect(page.locator("main")).to_contain_text("deleted, or not yours")


# -- the dead-letter queue -------------------------------------------------------------------------


def test_an_admin_sees_the_dead_letters_and_redrives_them(
    watched: Watched, stack: LocalStack, admin: Client
) -> None:
    page = watched.page
    # given a job's update dead-lettered (as the worker's redrive policy leaves it), with its token
    job = admin.create_job("rnaseq", {"sample": "dead-lettered"})
    sqs = stack.client("sqs")
    body = {"uuid": job.uuid, "name": "update", "token": job.token, "event_id": "dl-1", "data": {"p": 1}}
    sqs.send_message(
        QueueUrl=stack.resources.dead_letter_queue_url,
        MessageBody=json.dumps(body),
        MessageGroupId=job.uuid,
        MessageDeduplicationId="dl-1",
    )
    sign_in(page, stack.admin_token())
    page.click("nav a[data-view=dlq]")
    # then the page shows it, without its token
    expect(page.locator("#dlq-depth")).to_have_text("1 message")
    expect(page.locator("#dlq")).to_contain_text("dl-1")
    assert job.token not in page.content()
    # when the admin redrives, confirming
    page.click("#redrive")
    page.click("#confirm-ok")
    # then the queue is empty, and the event is applied
    expect(page.locator("#dlq-depth")).to_have_text("0 messages")
    expect(page.locator("#redrive-progress")).to_have_text("moved 1, about 0 left")
    stack.drain()
    assert [(e["event_id"], e["outcome"]) for e in admin.history(job.uuid)] == [("dl-1", "applied")]


def test_signing_out_forgets_the_credential(watched: Watched, stack: LocalStack) -> None:
    page = watched.page
    sign_in(page, stack.admin_token())
    page.click("#sign-out")
    expect(page.locator("#credential")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    # and a reload does not sign back in
    page.reload()
    expect(page.locator("#credential")).to_be_visible()


def test_an_indexed_jobs_outputs_come_from_its_manifest_with_levels(
    watched: Watched, stack: LocalStack, admin: Client
) -> None:
    page = watched.page
    # given a finished job whose archive was indexed, with a level pattern for its results
    job = admin.create_job("rnaseq", {"sample": "indexed"}, name="indexed")
    put_outputs(stack.client("s3"), job, {"results/counts.tsv": b"g\t1\n", "logs/run.log": b"ok\n"})
    job.run().finish().index(index_patterns=[{"level": "results", "pattern": "results/**"}])
    stack.drain()  # every step of the index applied, the system's `indexed` too
    assert [e["name"] for e in admin.history(job.uuid)][-2:] == ["index", "indexed"]
    # when its page is opened
    sign_in(page, stack.admin_token())
    open_job(page, job.uuid)
    # then the outputs say they are the manifest's, each with its level
    expect(page.locator("#outputs-source")).to_have_text("from the manifest its last index recorded")
    expect(page.locator("#outputs tr[data-key='results/counts.tsv'] td").nth(1)).to_have_text("results")
    expect(page.locator("#outputs tr[data-key='logs/run.log'] td").nth(1)).to_have_text("")
    expect(page.locator("#history li").last).to_contain_text("by system")
