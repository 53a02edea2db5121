"""No credential in anything the reliability runs produced (SPEC section 2; issue 5, item 4).

Runs after every other test of this folder (conftest.py orders it last). Looked for: every job, callback
and admin token the runs were handed or sent, the admin key, and the SHA-256 hash of each (what the table
stores). Looked in: every log line of the functions (at INFO, as deployed), every metric line, every line
the stack printed, every error body, and every history entry of every job the runs saw. Also: nothing
shaped like a job or callback token appears there at all, whether the runs knew of it or not.
"""

from __future__ import annotations

import re

import pytest

from tests.reliability.conftest import Figures, Output, RecordingApi, Secrets

pytestmark = pytest.mark.e2e

TOKEN_SHAPE = re.compile(r"pj[tc]_[A-Za-z0-9_-]{43}|pjk_[A-Za-z0-9_-]{12}_[A-Za-z0-9_-]{43}")


def test_no_token_hash_or_admin_key_in_any_log_metric_history_entry_or_error_body(
    api: RecordingApi, output: Output, secrets: Secrets, figures: Figures
) -> None:
    # given every history entry of every job the runs saw
    api.stack.drain(timeout=60)
    read = {uuid for uuid, _ in output.history_entries}
    for uuid in sorted(secrets.jobs - read):
        response = api.request("GET", f"/jobs/{uuid}/events", token=api.admin(), query={"limit": "1000"})
        if response.status == 200:  # uuids harvested from bodies include jobs never created
            for entry in response.body["events"]:
                output.add_history(uuid, entry)
    # when each source is searched for every credential and hash
    found: dict[str, set[str]] = {}
    shaped: dict[str, list[str]] = {}
    for source, texts in output.sources().items():
        text = "\n".join(texts)
        figures.texts_scanned[source] = len(texts)
        found[source] = secrets.found_in(text)
        shaped[source] = TOKEN_SHAPE.findall(text)
    figures.secrets = len(secrets.values)
    figures.leaks = sum(len(values) for values in found.values()) + sum(len(v) for v in shaped.values())
    # then none is anywhere
    assert not any(found.values()), {source: sorted(v)[:3] for source, v in found.items() if v}
    assert not any(shaped.values()), {source: v[:3] for source, v in shaped.items() if v}
    # and the search was not vacuous: every source had lines, and there were credentials to look for
    assert all(figures.texts_scanned[source] > 0 for source in output.sources()), figures.texts_scanned
    assert figures.texts_scanned["log line"] > 100 and figures.texts_scanned["history entry"] > 100
    assert len(secrets.values) > 50 and api.stack.admin_key in secrets.values
    assert output.unhandled() == 0, output.failures[:5]
