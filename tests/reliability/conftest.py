"""The reliability suite: veil tried as a hostile tester would (issue 16).

Every bad input is built here, in the test, never copied from real data. Every test in this
folder is marked ``reliability``: ``pytest -m reliability`` runs just these.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.reliability)
