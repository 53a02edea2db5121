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

from tests import summaries

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


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    sections = getattr(node, "workeroutput", {}).get(summaries.WORKER_OUTPUT_KEY)
    if sections:
        summaries.relay(node.config, sections)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for title, lines in summaries.all_sections(terminalreporter.config).items():
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
