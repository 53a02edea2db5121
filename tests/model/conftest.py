"""Model-based tests: the scenario budget (`--scenarios`, or PIPELINEJOBS_SCENARIOS), one moto stack per
module, and the figures printed at the end of the session.

`--scenarios` is registered here, so it is known when pytest is pointed at this folder
(`pytest tests/model --scenarios 100000`); from the repository root use the environment variable
(`PIPELINEJOBS_SCENARIOS=100000 pytest`), which works everywhere.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

import pytest

DEFAULT_SCENARIOS = 1000


@dataclass
class ModelStats:
    scenarios: Counter[str] = field(default_factory=Counter)  # by mode
    events_sent: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)  # applied / rejected / ignored
    faults: Counter[str] = field(default_factory=Counter)  # kind:where:call
    divergences: int = 0
    seconds: float = 0.0


STATS_KEY = pytest.StashKey[ModelStats]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--scenarios",
        type=int,
        default=None,
        help=f"model-based scenarios per run (default {DEFAULT_SCENARIOS}, or PIPELINEJOBS_SCENARIOS)",
    )


def scenario_budget(config: pytest.Config) -> int:
    given = config.getoption("scenarios", default=None)
    if given is None:
        given = os.environ.get("PIPELINEJOBS_SCENARIOS") or DEFAULT_SCENARIOS
    return int(given)


@pytest.fixture(scope="session")
def model_stats(request: pytest.FixtureRequest) -> ModelStats:
    return request.config.stash.setdefault(STATS_KEY, ModelStats())


@pytest.fixture(scope="session")
def scenario_count(request: pytest.FixtureRequest) -> int:
    return scenario_budget(request.config)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    stats = terminalreporter.config.stash.get(STATS_KEY, None)
    if stats is None or not stats.scenarios:
        return
    write = terminalreporter.write_line
    terminalreporter.section("model-based scenarios")
    by_mode = ", ".join(f"{mode} {n}" for mode, n in sorted(stats.scenarios.items()))
    write(f"scenarios run: {sum(stats.scenarios.values())} ({by_mode}) in {stats.seconds:.0f} s")
    outcomes = ", ".join(f"{name} {n}" for name, n in sorted(stats.outcomes.items()))
    write(f"events sent: {stats.events_sent}; history entries checked: {outcomes}")
    kinds = Counter(key.rsplit(":", 1)[0] for key in stats.faults.elements())
    write(
        f"faults injected: {sum(stats.faults.values())} "
        f"({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))})"
    )
    write(f"divergences from the reference model: {stats.divergences}")
