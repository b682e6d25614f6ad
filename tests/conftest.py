"""Shared fixtures: real data (skipped when absent), exiftool (skipped when absent), the CLI."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from helpers import CliRun, exiftool_path
from veil.cli import main

REPO = Path(__file__).resolve().parents[1]
#: Real data lives beside the repository (never inside it); VEIL_DATA points elsewhere.
DATA = Path(os.environ.get("VEIL_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """veil's cache folder (the int8 CenterFace it builds) for this session, so that tests
    never write into the user's own cache; subprocesses inherit it."""
    folder = Path(os.environ.setdefault("VEIL_CACHE_DIR", str(tmp_path_factory.mktemp("cache"))))
    return folder


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` from the repository root, or a skip that says what is missing."""
    if not DATA.is_dir():
        pytest.skip(
            f"real data not found at {DATA} (expected ../shared/data beside the repository, "
            "or set VEIL_DATA); these tests only run where the shared corpus is present"
        )
    return DATA


@pytest.fixture(scope="session")
def exiftool() -> str:
    """The exiftool executable: an independent metadata oracle, or a skip saying it is missing."""
    tool = exiftool_path()
    if tool is None:
        pytest.skip("exiftool is not installed: the independent metadata oracle is unavailable")
    return tool


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliRun]:
    """Run ``veil`` in-process; argparse usage errors (SystemExit) become an exit code too."""

    def run(*args: Any) -> CliRun:
        capsys.readouterr()
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return CliRun(code, captured.out, captured.err)

    return run


RELIABILITY = Path(__file__).parent / "reliability"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in tests/reliability/ (veil tried as a hostile tester would: bad inputs built
    in the test, faults and kills; issue 16) is marked ``reliability``, so ``pytest -m
    reliability`` runs just those. The marking lives here because a conftest.py in that folder
    would shadow this one for ``import conftest``."""
    for item in items:
        if RELIABILITY in item.path.parents:
            item.add_marker(pytest.mark.reliability)
