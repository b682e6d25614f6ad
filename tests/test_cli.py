"""The command line as a unit, in process: options to `Settings`, usage errors to exit code 2,
and the console's wording. The end-to-end runs (spawned `veil`) are in the feature tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from veil.cli import (
    EXIT_USAGE,
    SKIPPED_NAMED,
    _count,
    _settings,
    _skipped_lines,
    build_parser,
    format_scan,
    main,
)
from veil.pipeline import ScanReport
from veil.settings import METHODS, Settings


def test_clean_options_become_settings() -> None:
    args = build_parser().parse_args(
        ["clean", "in", "-o", "out", "--preset", "fast", "--threshold", "0.3",
         "--max-megapixels", "0.5", "--faces", "off"]
    )  # fmt: skip
    settings = _settings(args)
    assert settings == Settings(preset="fast", threshold=0.3, max_pixels=500_000, faces=False)


@pytest.mark.parametrize(
    "command",
    [["clean", "in", "-o", "out"], ["serve"], ["dataset", "in", "out"]],
    ids=["clean", "serve", "dataset"],
)
def test_voice_is_a_choice_of_every_door_that_cleans(command: list[str]) -> None:
    parser = build_parser()
    assert parser.parse_args(command).voice == "anonymize"
    assert parser.parse_args([*command, "--voice", "keep"]).voice == "keep"
    with pytest.raises(SystemExit) as stop:
        parser.parse_args([*command, "--voice", "mute"])
    assert stop.value.code == EXIT_USAGE


def test_every_method_is_a_choice_and_only_those() -> None:
    parser = build_parser()
    for method in METHODS:
        assert parser.parse_args(["clean", "in", "-o", "out", "--method", method]).method == method
    with pytest.raises(SystemExit) as stop:
        parser.parse_args(["clean", "in", "-o", "out", "--method", "smudge"])
    assert stop.value.code == EXIT_USAGE


def test_a_bad_value_is_a_usage_error_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.jpg").write_bytes(b"")
    with pytest.raises(SystemExit) as stop:
        main(["clean", str(tmp_path / "a.jpg"), "-o", str(tmp_path / "out"), "--threshold", "2"])
    assert stop.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert "veil: error: threshold must be between 0 and 1" in err and "Traceback" not in err


def test_counts_and_skip_reasons_read_as_sentences() -> None:
    assert (_count(1, "file"), _count(0, "file"), _count(3, "file")) == (
        "1 file",
        "0 files",
        "3 files",
    )
    many = [(f"f{i}.jpg", f"output exists: out/f{i}.jpg (use --overwrite)") for i in range(5)]
    lines = _skipped_lines([("a.txt", "unsupported file type .txt"), *many])
    assert lines[0] == "skipped: a.txt: unsupported file type .txt"
    assert lines[1].startswith("skipped 5 files: output exists (use --overwrite to replace it)")
    assert lines[1].endswith(f"and {5 - SKIPPED_NAMED} more")


def test_scan_of_an_unreadable_file_says_why() -> None:
    text = format_scan(ScanReport(path="x.jpg", error="CorruptInput: empty file (0 bytes)"))
    assert "x.jpg" in text and "empty file (0 bytes)" in text
