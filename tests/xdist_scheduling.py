"""How pytest-xdist hands out this suite: a test file at a time (module-scoped local stacks and moto setups
are built once per file), except the reliability folder, which goes as one unit (its modules share one
local stack, a package fixture), and the model-based test, whose modes (minutes each) go as units of
their own, so that the cores share them. Units go out in collection order, which tests/conftest.py sets
under xdist: the longest first, so that none starts last and runs on alone.
"""

from __future__ import annotations

from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

RELIABILITY = "tests/reliability/"
MODEL = "tests/model/"


class SuiteScheduling(LoadScopeScheduling):
    def __init__(self, config: pytest.Config, log: Any = None) -> None:
        super().__init__(config, log)
        config.option.loadscopereorder = False  # keep the collection order (longest first), not test counts

    def _split_scope(self, nodeid: str) -> str:
        if nodeid.startswith(RELIABILITY):
            return RELIABILITY
        if nodeid.startswith(MODEL):
            return nodeid  # one mode of the model-based test
        return nodeid.split("::", 1)[0]
