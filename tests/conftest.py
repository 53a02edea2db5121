"""Suite-wide order: the reliability suite runs last.

It shares one local stack between its modules for the whole session (a folder without `__init__.py`
gives pytest's "package" scope the session's lifetime), and a running local stack sets process-wide
environment (`AWS_ENDPOINT_URL`, Powertools' log level) and keeps worker threads polling. Run last, it
cannot reach the other suites' AWS endpoints, logs or call counts.
"""

from __future__ import annotations

import pytest

LAST = ("tests/reliability/",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    last = [item for item in items if item.nodeid.startswith(LAST)]
    if last:
        chosen = {id(item) for item in last}
        items[:] = [item for item in items if id(item) not in chosen] + last
