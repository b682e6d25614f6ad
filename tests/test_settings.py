"""`Settings` as a unit: defaults, validation, derived values. Every CLI flag and API keyword
lands here, so a bad value must be a `UsageError` naming it, never a late failure."""

from __future__ import annotations

import os

import pytest

from veil.detectors import PRESETS
from veil.errors import UsageError
from veil.obscurers import OBSCURERS
from veil.settings import METHODS, Settings


def test_defaults_are_strong() -> None:
    settings = Settings()
    assert (settings.method, settings.faces, settings.mask) == ("fill", True, "ellipse")
    assert settings.preset == "balanced" and settings.threshold is None
    assert not settings.verify and not settings.allow_leaks and not settings.overwrite
    assert settings.voice == "anonymize"  # voices name people as faces do


def test_methods_are_the_registry() -> None:
    assert tuple(OBSCURERS) == METHODS
    for method in METHODS:
        assert Settings(method=method).method == method


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"method": "smudge"}, "unknown method 'smudge'"),
        ({"mask": "star"}, "unknown mask"),
        ({"preset": "quick"}, "unknown preset"),
        ({"threshold": 0.0}, "threshold must be between 0 and 1"),
        ({"threshold": 1.5}, "threshold must be between 0 and 1"),
        ({"max_pixels": 0}, "max_pixels must be positive"),
        ({"hold": -1}, "hold must be 0 or more"),
        ({"jobs": 0}, "jobs must be at least 1"),
        ({"voice": "mute"}, "unknown voice 'mute'"),
        ({"verify": True, "faces": False}, "cannot run with faces off"),
    ],
)
def test_bad_values_are_usage_errors_that_name_them(change: dict, words: str) -> None:
    with pytest.raises(UsageError, match=words):
        Settings(**change)


def test_with_changes_fields_and_refuses_unknown_names() -> None:
    base = Settings()
    assert base.with_(method="blur").method == "blur"
    assert base.method == "fill", "frozen: the original is unchanged"
    with pytest.raises(UsageError, match="unknown setting"):
        base.with_(colour="red")
    with pytest.raises(UsageError, match="unknown method"):
        base.with_(method="smudge")  # checked again


def test_equal_settings_are_one_key() -> None:
    """The API keeps one loaded pipeline per distinct settings (`veil._PIPELINES`)."""
    assert Settings(method="blur") == Settings().with_(method="blur")
    assert len({Settings(), Settings(), Settings(preset="fast")}) == 2


@pytest.mark.parametrize("preset", list(PRESETS))
def test_threshold_moves_the_zoom_threshold_with_it(preset: str) -> None:
    chosen = PRESETS[preset]
    assert Settings(preset=preset).strategy == chosen
    moved = Settings(preset=preset, threshold=0.4).strategy
    assert moved.threshold == pytest.approx(0.4)
    ratio = chosen.zoom_threshold / chosen.threshold
    assert moved.zoom_threshold == pytest.approx(0.4 * ratio)
    assert moved.scales == chosen.scales


def test_workers_one_process_for_small_batches_one_per_core_for_large() -> None:
    cores = os.cpu_count() or 1
    assert Settings().workers(1) == 1
    assert Settings().workers(7) == 1
    assert Settings().workers(8) == min(cores, 8)
    assert Settings().workers(1000) == cores
    assert Settings(jobs=3).workers(2) == 2, "never more workers than files"
    assert Settings(jobs=3).workers(50) == 3


def test_every_field_is_in_exactly_one_focused_view() -> None:
    """Cleaning, Checking and Running split Settings without overlap or remainder, so a new
    field must be placed in one (a dataset run's fingerprint is Cleaning and Checking)."""
    from dataclasses import fields

    from veil.settings import Checking, Cleaning, Running

    views = [{f.name for f in fields(view)} for view in (Cleaning, Checking, Running)]
    every = [name for names in views for name in names]
    assert sorted(every) == sorted(f.name for f in fields(Settings))
    assert len(every) == len(set(every))
    settings = Settings(method="blur", verify=True, jobs=2, overwrite=True)
    assert settings.cleaning.method == "blur" and settings.checking.verify
    assert settings.running.jobs == 2 and settings.running.overwrite


def test_how_a_batch_runs_is_not_what_it_writes() -> None:
    busy = Settings(jobs=4, overwrite=True)
    assert (busy.cleaning, busy.checking) == (Settings().cleaning, Settings().checking)
    assert busy.running != Settings().running
