"""The report contract of METRICS.md and the CLI's exit codes.

One JSON line per input with exactly: input, output (null when nothing was written), status
(cleaned | unchanged | skipped | failed), error, faces ({box, region, score} in displayed
pixels), metadata_removed. Outputs mirror the input tree. Exit codes: 0 all good, 1 some file
failed, 2 usage error.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image

import veil
from helpers import backdrop, exif_block, file_hashes, leftovers, read_report, scene
from veil.result import STATUSES, Checked, Result, Verification

KEYS = {"input", "output", "status", "error", "faces", "metadata_removed"}


def _tree(root: Path) -> dict[str, Path]:
    """in/face.jpg, in/sub/noface.png, in/sub/deeper/face.webp, in/sub/notes.txt, in/broken.jpg"""
    files = {
        "face": root / "face.jpg",
        "noface": root / "sub" / "noface.png",
        "deep": root / "sub" / "deeper" / "face.webp",
        "text": root / "sub" / "notes.txt",
        "broken": root / "broken.jpg",
    }
    for path in files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(scene()).save(files["face"], "JPEG", quality=90, exif=exif_block())
    Image.fromarray(backdrop(120, 160)).save(files["noface"], "PNG")
    Image.fromarray(scene()).save(files["deep"], "WEBP", quality=90)
    files["text"].write_text("a shopping list\n")
    files["broken"].write_bytes(files["face"].read_bytes()[:3000])
    return files


def test_report_contract_and_mirrored_tree(tmp_path: Path, cli) -> None:
    files = _tree(tmp_path / "in")
    out, report = tmp_path / "out", tmp_path / "report.jsonl"

    run = cli("clean", tmp_path / "in", "-o", out, "--report", report)

    assert run.code == 1, "one input failed"
    rows = read_report(report)
    assert len(rows) == len(files), "one line per input file"
    by_input = {row["input"]: row for row in rows}
    assert set(by_input) == {str(p) for p in files.values()}
    for row in rows:
        assert set(row) == KEYS, f"keys must be exactly {sorted(KEYS)}"
        assert row["status"] in STATUSES
        assert isinstance(row["metadata_removed"], list)
        assert all(isinstance(name, str) for name in row["metadata_removed"])
        assert (row["output"] is None) == (row["status"] in ("skipped", "failed"))
        assert (row["error"] is None) == (row["status"] in ("cleaned", "unchanged"))
        if row["output"] is not None:
            assert Path(row["output"]).is_file()
        Result.from_dict(row)  # and the row reads back

    def row(key: str) -> dict:
        return by_input[str(files[key])]

    # Outputs mirror the input tree: same relative path and name.
    assert Path(row("face")["output"]) == out / "face.jpg"
    assert Path(row("noface")["output"]) == out / "sub" / "noface.png"
    assert Path(row("deep")["output"]) == out / "sub" / "deeper" / "face.webp"
    written = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert written == {"face.jpg", "sub/noface.png", "sub/deeper/face.webp"}

    assert row("face")["status"] == "cleaned"
    assert {"GPS", "BodySerialNumber", "Make"} <= set(row("face")["metadata_removed"])
    # No face and no metadata: the output is byte for byte the input, and says so.
    assert row("noface")["status"] == "unchanged" and row("noface")["faces"] == []
    assert Path(row("noface")["output"]).read_bytes() == files["noface"].read_bytes()
    assert row("text")["status"] == "skipped" and row("text")["output"] is None
    assert ".txt" in row("text")["error"]
    assert row("broken")["status"] == "failed" and row("broken")["output"] is None
    assert "truncated" in row("broken")["error"].lower()

    for key in ("face", "deep"):
        faces = row(key)["faces"]
        assert len(faces) == 1, faces
        for face in faces:
            assert set(face) == {"box", "region", "score"}
            box, region, score = face["box"], face["region"], face["score"]
            assert len(box) == 4 and len(region) == 4
            assert all(isinstance(v, int) for v in region)
            assert 0 <= region[0] <= box[0] < box[2] <= region[2] <= 768
            assert 0 <= region[1] <= box[1] < box[3] <= region[3] <= 512
            assert 0.2 <= score <= 1.0
    assert "5 files: 2 cleaned, 1 unchanged, 1 skipped, 1 failed" in run.err
    assert f"failed: {files['broken']}" in run.err
    assert not leftovers(tmp_path)


# A `--verify` row as written before verdicts could be `unconfirmed` (no `unjudged` key).
OLD_VERIFIED_ROW = {
    "input": "holiday/beach.jpg",
    "output": "holiday-clean/beach.jpg",
    "status": "cleaned",
    "error": None,
    "faces": [{"box": [181.8, 58.1, 269.7, 178.0], "region": [155, 4, 296, 202], "score": 0.93}],
    "metadata_removed": ["GPS"],
    "verification": {"verdict": "protected", "leaks": [], "faces_checked": 1, "recognizer_runs": 0},
}


def test_verified_rows_old_and_new_read_back() -> None:
    old = Result.from_dict(OLD_VERIFIED_ROW)
    assert old.verification == Verification("protected", [], 1, 0, unjudged=0)
    assert old.verification.summary() == ""
    new = Result(
        "a.jpg", "out/a.jpg", "cleaned", verification=Verification("unconfirmed", [], 9, 0, 7)
    )
    row = json.loads(new.to_json())
    assert row["verification"]["unjudged"] == 7
    assert Result.from_dict(row) == new
    assert new.verification is not None
    assert new.verification.summary().startswith("no leak found; 7 obscured faces are under")
    checked = json.loads(
        Checked("a.jpg", "out/a.jpg", "unconfirmed", None, new.verification).to_json()
    )
    assert checked["status"] == "unconfirmed" and checked["verification"]["unjudged"] == 7


def test_file_inputs_land_flat_in_outdir(tmp_path: Path, cli) -> None:
    a, b = tmp_path / "x" / "a.png", tmp_path / "y" / "z" / "b.png"
    for path in (a, b):
        path.parent.mkdir(parents=True)
        Image.fromarray(backdrop(50, 60)).save(path)
    report = tmp_path / "r.jsonl"
    assert cli("clean", a, b, "-o", tmp_path / "out", "--report", report).code == 0
    assert [Path(r["output"]) for r in read_report(report)] == [
        tmp_path / "out" / "a.png",
        tmp_path / "out" / "b.png",
    ]


def test_two_inputs_claiming_one_output(tmp_path: Path, cli) -> None:
    first, second = tmp_path / "x" / "same.png", tmp_path / "y" / "same.png"
    for path in (first, second):
        path.parent.mkdir()
        Image.fromarray(backdrop(50, 60)).save(path)
    report = tmp_path / "r.jsonl"
    run = cli("clean", first, second, "-o", tmp_path / "out", "--report", report)
    assert run.code == 1
    rows = read_report(report)
    assert [r["status"] for r in rows] == ["unchanged", "failed"]
    assert rows[1]["output"] is None and "already the output" in rows[1]["error"]


def test_api_on_a_folder_returns_one_result_per_file(tmp_path: Path) -> None:
    files = _tree(tmp_path / "in")
    results = veil.clean(tmp_path / "in", tmp_path / "out")
    assert isinstance(results, list) and len(results) == len(files)
    assert {r.input for r in results} == {str(p) for p in files.values()}
    assert sorted(r.status for r in results) == [
        "cleaned",
        "cleaned",
        "failed",
        "skipped",
        "unchanged",
    ]


# -- exit codes ------------------------------------------------------------------------------
@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(backdrop(60, 80)).save(folder / "a.png")
    return folder


USAGE_ERRORS = {
    "missing input": lambda d: ["clean", d / "nope.jpg", "-o", d.parent / "out"],
    "bad method": lambda d: ["clean", d, "-o", d.parent / "out", "--method", "swirl"],
    "bad mask": lambda d: ["clean", d, "-o", d.parent / "out", "--mask", "star"],
    "no output option": lambda d: ["clean", d],
    "output inside input": lambda d: ["clean", d, "-o", d / "cleaned"],
    "output is the input folder": lambda d: ["clean", d, "-o", d],
    "output is the file's folder": lambda d: ["clean", d / "a.png", "-o", d],
    "jobs 0": lambda d: ["clean", d, "-o", d.parent / "out", "--jobs", "0"],
    "threshold above 1": lambda d: ["clean", d, "-o", d.parent / "out", "--threshold", "1.5"],
    "report over an input": lambda d: ["clean", d, "-o", d.parent / "out", "--report", d / "a.png"],
    "scan of a missing file": lambda d: ["scan", d / "nope.jpg"],
    "no command": lambda d: [],
}


@pytest.mark.parametrize("case", USAGE_ERRORS, ids=list(USAGE_ERRORS))
def test_usage_errors_exit_2_and_write_nothing(case: str, photos: Path, cli) -> None:
    before = file_hashes(photos.parent)
    run = cli(*USAGE_ERRORS[case](photos))
    assert run.code == 2, run.err
    assert run.err.strip(), "a usage error says what is wrong"
    assert file_hashes(photos.parent) == before
    assert not (photos.parent / "out").exists() and not (photos / "cleaned").exists()


def test_output_folder_inside_input_is_named_in_the_error(photos: Path, cli) -> None:
    run = cli("clean", photos, "-o", photos / "cleaned")
    assert "inside input folder" in run.err


def test_exit_0_when_all_good_or_only_skipped(photos: Path, cli) -> None:
    (photos / "notes.txt").write_text("not a photo")
    assert cli("clean", photos, "-o", photos.parent / "out").code == 0
    assert cli("clean", photos / "notes.txt", "-o", photos.parent / "out2").code == 0


def test_exit_1_when_a_file_failed(photos: Path, cli) -> None:
    (photos / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    run = cli("clean", photos, "-o", photos.parent / "out")
    assert run.code == 1
    assert (photos.parent / "out" / "a.png").is_file(), "the good file is still cleaned"


def test_help_and_version(cli) -> None:
    run = cli("--version")
    assert run.code == 0 and run.out.startswith("veil ")
    run = cli("clean", "--help")
    assert run.code == 0 and "--report" in run.out and ".heic" in run.out


def test_report_folder_is_made_and_a_bad_report_path_is_a_usage_error(tmp_path: Path, cli) -> None:
    src = tmp_path / "in" / "a.png"
    src.parent.mkdir()
    Image.fromarray(scene()).save(src)
    report = tmp_path / "reports" / "today" / "r.jsonl"
    run = cli("clean", src, "-o", tmp_path / "out", "--report", report)
    assert run.code == 0, run.err
    assert len(report.read_text().splitlines()) == 1
    run = cli("clean", src, "-o", tmp_path / "out2", "--report", tmp_path / "in")
    assert run.code == 2
    assert "cannot read the report" in run.err and "Traceback" not in run.err


def test_outputs_get_ordinary_file_permissions(tmp_path: Path) -> None:
    """Not mkstemp's private 0600: an output is meant to be shared (e.g. served by a web server)."""
    src = tmp_path / "a.png"
    Image.fromarray(scene()).save(src)
    result = veil.clean(src, tmp_path / "out" / "a.png")
    umask = os.umask(0)
    os.umask(umask)
    assert (Path(result.output).stat().st_mode & 0o777) == 0o666 & ~umask


def test_counts_are_said_in_the_singular_for_one(tmp_path: Path, cli) -> None:
    """``1 file``, ``1 face obscured``, ``clean would remove it``: never ``1 files``."""
    src = tmp_path / "one.jpg"
    exif = Image.Exif()
    exif[0x013B] = "Jane Photographer"  # Artist: the one identifying field
    Image.fromarray(scene()).save(src, "JPEG", quality=90, exif=exif)

    scan = cli("scan", src)
    run = cli("clean", src, "-o", tmp_path / "out")

    assert scan.code == 0, scan.err
    assert "1 found, " in scan.out and "clean would remove it" in scan.out
    assert run.code == 0, run.err
    assert "1 file: 1 cleaned, 0 unchanged, 0 skipped, 0 failed; 1 face obscured" in run.err
