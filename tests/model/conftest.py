"""Model-based tests: the scenario budget (`--scenarios`, registered in tests/conftest.py, or
PIPELINEJOBS_SCENARIOS), one moto stack per module, and the figures printed at the end of the run
(through tests/summaries.py, so that they are printed under pytest-xdist too).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

import pytest

from tests import summaries

DEFAULT_SCENARIOS = 1000


@dataclass
class ModelStats:
    scenarios: Counter[str] = field(default_factory=Counter)  # by mode
    events_sent: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)  # applied / rejected / ignored
    faults: Counter[str] = field(default_factory=Counter)  # kind:where:call
    producers: Counter[str] = field(default_factory=Counter)  # what the producer side did (Producers)
    divergences: int = 0
    seconds: float = 0.0


STATS_KEY = pytest.StashKey[ModelStats]()


def scenario_budget(config: pytest.Config) -> int:
    given = config.getoption("scenarios", default=None)
    if given is None:
        given = os.environ.get("PIPELINEJOBS_SCENARIOS") or DEFAULT_SCENARIOS
    return int(given)


@pytest.fixture(scope="session")
def model_stats(request: pytest.FixtureRequest) -> ModelStats:
    stats = request.config.stash.setdefault(STATS_KEY, ModelStats())
    summaries.register(request.config, "model-based scenarios", lambda: summary_lines(stats))
    return stats


@pytest.fixture(scope="session")
def scenario_count(request: pytest.FixtureRequest) -> int:
    return scenario_budget(request.config)


def summary_lines(stats: ModelStats) -> list[str]:
    if not stats.scenarios:
        return []
    by_mode = ", ".join(f"{mode} {n}" for mode, n in sorted(stats.scenarios.items()))
    outcomes = ", ".join(f"{name} {n}" for name, n in sorted(stats.outcomes.items()))
    kinds = Counter(key.rsplit(":", 1)[0] for key in stats.faults.elements())
    p = stats.producers
    return [
        f"scenarios run: {sum(stats.scenarios.values())} ({by_mode}) in {stats.seconds:.0f} s",
        f"events sent: {stats.events_sent}; history entries checked: {outcomes}",
        f"faults injected: {sum(stats.faults.values())} "
        f"({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))})",
        f"producers: {p['accepted']} 202s checked applied or ignored once ({p['revoked']} revoked by a reset "
        f"or delete straight on the queue); {p['stale_uses']} accepted with a stale or shared token; "
        f"{p['retries']} retries ({p['keyed_retries']} with the same Idempotency-Key, {p['key_reused']} "
        f"keys reused for another request: 422); {p['unknown_ids']} unknown event ids: 404",
        *(
            [
                f"producer keys: {p['key_accepted']} 202s with a key ({p['key_revoked']} rejected: revoked "
                f"before the worker applied them, {p['key_followers']} after a revoked key's event; "
                f"{p['key_expired_applied']} applied after the key expired); {p['revocations']} revocations "
                f"({p['revocations_racing']} racing the worker); {p['key_refused']} refused (401), "
                f"{p['key_foreign']} on another owner's job (404); {p['key_queue']} straight on the queue"
            ]
            if p["key_accepted"] or p["revocations"]
            else []
        ),
        *(
            [
                f"deadlines: {p['sweeps']} sweeps queued {p['fails_queued']} system fails: {p['fails_applied']} "
                f"applied, {p['fails_dropped']} dropped (the job had moved on), {p['fails_waited']} went "
                f"behind accepted events still queued; {p['late_ignored']} later events refused (409) and "
                "recorded as ignored"
            ]
            if p["sweeps"]
            else []
        ),
        *([f"indexer: {p['indexed']} index runs ended by the system's indexed"] if p["indexed"] else []),
        f"divergences from the reference model: {stats.divergences}",
    ]
