"""Suite-wide: the order tests run in under pytest-xdist, the `--scenarios` option, and the figures
printed at the end.

`make test` runs the suite on every core (`pytest -n auto`); tests/xdist_scheduling.py hands it out a
test file at a time, the reliability folder (one shared local stack) as one unit, the longest units
first. Suites register the figures they print with tests/summaries.py; workers hand theirs to the
controller, which prints them after the run.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests import aws_calls, summaries

aws_calls.install()  # every AWS call a function makes, against its policy (tests/aws_calls.py)

# Under xdist, the order units are handed out in: the longest first (the reliability folder, ~4 min on
# two cores; the model-based test, ~3 min), so that none starts last and runs on alone.
XDIST_ORDER = (
    "tests/reliability/",
    "tests/model/",
    "tests/e2e/",
    "tests/sdk/",
    "tests/cli/",
    "tests/integration/",
    "tests/unit/",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--scenarios",
        type=int,
        default=None,
        help="model-based scenarios per run (default 1000, or PIPELINEJOBS_SCENARIOS); 100000 for a soak",
    )


def _rank(item: pytest.Item) -> int:
    return next(
        (i for i, folder in enumerate(XDIST_ORDER) if item.nodeid.startswith(folder)), len(XDIST_ORDER)
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker (every worker comes to the same order)
        items.sort(key=_rank)  # stable: each folder keeps its own order


# -- figures: printed at the end, from this process and from every xdist worker ----------------------------


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput[summaries.WORKER_OUTPUT_KEY] = summaries.local_sections(session.config)
        workeroutput[aws_calls.WORKER_OUTPUT_KEY] = aws_calls.recorded()
        return
    _check_least_privilege(session)


def _whole_suite(config: pytest.Config) -> bool:
    option = config.option
    return (
        config.args_source == pytest.Config.ArgsSource.TESTPATHS
        and not option.keyword
        and not option.markexpr
        and not getattr(option, "lf", False)
        and not getattr(option, "deselect", None)
    )


def _check_least_privilege(session: pytest.Session) -> None:
    """Every function's AWS calls against its grants in template.yaml (tests/aws_calls.py)."""
    lines, problems = aws_calls.compare(full_run=_whole_suite(session.config))
    shown = lines + [f"FAIL {p}" for p in problems]
    summaries.register(session.config, "least privilege", lambda: shown)
    if problems and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    sections = getattr(node, "workeroutput", {}).get(summaries.WORKER_OUTPUT_KEY)
    if sections:
        summaries.relay(node.config, sections)
    aws_calls.merge(getattr(node, "workeroutput", {}).get(aws_calls.WORKER_OUTPUT_KEY) or {})


# The template checks issue 5 asks for (tests/unit/test_template.py), reported with the figures.
TEMPLATE_TESTS = "tests/unit/test_template.py::"
TEMPLATE_CHECKS = {
    "test_template_allows_no_wildcard_action": "no wildcard action",
    "test_template_allows_data_actions_only_on_named_resources": "data actions only on named resources",
    "test_template_encrypts_every_resource_that_holds_data_at_rest": "encryption at rest",
    "test_template_table_is_on_demand_with_pitr_and_encryption": "point-in-time recovery",
    "test_template_bucket_is_encrypted_private_versioned_and_tls_only": "public access blocked",
    "test_template_alarms_on_any_message_in_the_dead_letter_queue": "an alarm on the dead-letter queue",
}


def _template_lines(reporter: pytest.TerminalReporter) -> list[str]:
    """The template checks' verdicts, from the reports the terminal reporter keeps (every worker's too)."""
    seen: dict[str, set[str]] = {}
    for category, reports in reporter.stats.items():
        if category in ("", "warnings"):  # passed setups and teardowns; warnings
            continue
        for report in reports:
            nodeid = getattr(report, "nodeid", "") or ""
            name = nodeid[len(TEMPLATE_TESTS) :].split("[", 1)[0]
            if nodeid.startswith(TEMPLATE_TESTS) and name in TEMPLATE_CHECKS:
                seen.setdefault(name, set()).add(category)
    if not seen:
        return []
    checks = []
    for name, what in TEMPLATE_CHECKS.items():
        categories = seen.get(name)
        verdict = "not run" if not categories else "PASS" if categories == {"passed"} else "FAIL"
        checks.append(f"{what} {verdict}")
    return ["template.yaml (as written and as SAM translates it): " + "; ".join(checks)]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    sections = summaries.all_sections(terminalreporter.config)
    template = _template_lines(terminalreporter)
    if template:
        sections.setdefault("reliability", []).extend(template)
    for title, lines in sections.items():
        terminalreporter.section(title)
        for line in lines:
            terminalreporter.write_line(line)


# -- xdist scheduling ----------------------------------------------------------------------------------------


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getoption("dist") == "each":  # every test on every worker: nothing to schedule
        return None
    from tests.xdist_scheduling import SuiteScheduling

    return SuiteScheduling(config, log)
