"""Dataset mode: every layout cleaned under a policy, every record in the manifest (also after
a kill and a resume), a bad record failing alone, and the Ray engine agreeing with the local one.

Records are made here: the astronaut (one face) or a faceless gradient, each with EXIF (GPS,
serial) and JSON fields (country, region, consent, an img2dataset-style ``exif`` text).
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("pyarrow", reason="dataset mode needs pip install 'veil[dataset]'")

import pyarrow as pa
import pyarrow.parquet as pq

from helpers import ASTRONAUT_FACE, astronaut, central, crop, exif_block, mean_abs_diff, textured
from veil.cli import main
from veil.dataset import run
from veil.dataset.manifest import MANIFEST
from veil.dataset.policy import Policy
from veil.errors import UsageError

REPO = Path(__file__).resolve().parents[2]
POLICY = Policy.from_text(
    """
[[rule]]
name = "gdpr"
action = "drop"
reason = "EU/EEA without consent"
when = { country = "@eu_eea" }
unless = { consent = true }

[[rule]]
name = "consented"
action = "keep"
reason = "the person consented to being shown"
when = { consent = true }
"""
)
# (country, consent, face?) per record, and what the policy above must make of it.
PEOPLE: list[tuple[str, bool, bool, str]] = [
    ("US", False, True, "cleaned"),
    ("DE", False, True, "dropped"),
    ("FR", True, True, "kept"),
    ("BR", False, False, "cleaned"),
    ("NO", False, False, "dropped"),
    ("US", True, True, "kept"),
]
FIELDS_OUT = {"exif"}


def jpeg(face: bool) -> bytes:
    pixels = astronaut() if face else textured(512, 512)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=92, exif=exif_block())
    return out.getvalue()


def fields(i: int) -> dict[str, Any]:
    country, consent, _, _ = PEOPLE[i % len(PEOPLE)]
    return {"country": country, "consent": consent, "exif": '{"GPS": "52.37 N"}', "n": i}


def expected(i: int) -> str:
    return PEOPLE[i % len(PEOPLE)][3]


def make_webdataset(root: Path, shards: int = 2, per: int = 6) -> None:
    root.mkdir(parents=True)
    for s in range(shards):
        with tarfile.open(root / f"{s:06d}.tar", "w") as tar:
            for j in range(per):
                i = s * per + j
                members = [
                    (f"{i:06d}.jpg", jpeg(PEOPLE[i % len(PEOPLE)][2])),
                    (f"{i:06d}.json", json.dumps(fields(i)).encode()),
                    (f"{i:06d}.txt", f"caption {i}".encode()),
                ]
                for name, data in members:
                    info = tarfile.TarInfo(name)
                    info.size, info.uname, info.mtime = len(data), "alice", 1_700_000_000
                    tar.addfile(info, io.BytesIO(data))


def make_parquet(root: Path, count: int = 6) -> None:
    root.mkdir(parents=True)
    rows = [
        {"key": f"{i:06d}", "jpg": jpeg(PEOPLE[i][2]), "caption": f"c{i}", **fields(i)}
        for i in range(count)
    ]
    pq.write_table(pa.Table.from_pylist(rows), root / "00000.parquet")


def make_folder(root: Path, count: int = 6) -> None:
    (root / "sub").mkdir(parents=True)
    for i in range(count):
        (root / "sub" / f"p{i}.jpg").write_bytes(jpeg(PEOPLE[i][2]))
        (root / "sub" / f"p{i}.json").write_text(json.dumps(fields(i)))
        (root / "sub" / f"p{i}.txt").write_text(f"caption {i}")
    (root / "sub" / "p0.xmp").write_text("<x:xmpmeta>GPS 52.37 N</x:xmpmeta>")


def manifest_of(out: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = pq.read_table(out / MANIFEST).to_pylist()
    return rows


def read(data: bytes) -> tuple[np.ndarray[Any, Any], Image.Exif]:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB")), im.getexif()


def check_image(data: bytes, status: str, face: bool) -> None:
    """No metadata left; a faceless or kept picture's pixels exactly the input's (only the
    metadata was rewritten); an obscured face gone."""
    pixels, exif = read(data)
    assert not exif, "EXIF left in the output"
    original, _ = read(jpeg(face))
    if status == "cleaned" and face:
        box = central(ASTRONAUT_FACE)
        assert mean_abs_diff(crop(pixels, box), crop(original, box)) > 30
    else:
        assert np.array_equal(pixels, original)


@pytest.mark.parametrize("workers", [1, 2])
def test_webdataset_shards_are_cleaned_under_the_policy(tmp_path: Path, workers: int) -> None:
    make_webdataset(tmp_path / "in")
    summary = run(tmp_path / "in", tmp_path / "out", POLICY, workers=workers, progress=False)
    rows = manifest_of(tmp_path / "out")
    assert summary.complete and summary.expected == len(rows) == 12
    assert [r["id"] for r in rows] == [f"{i:06d}" for i in range(12)]
    for i, row in enumerate(rows):
        assert row["status"] == expected(i), row
        assert row["rule"] == {"dropped": "gdpr", "kept": "consented"}.get(row["status"])
        if row["status"] == "cleaned" and PEOPLE[i % 6][2]:
            assert row["faces"] >= 1 and len(row["boxes"]) == row["faces"]
        if row["status"] in ("cleaned", "kept"):
            assert "GPS" in row["metadata_removed"] and row["fields_removed"] == ["exif"]
            assert row["bytes_out"] > 0 and row["bytes_in"] > 0
    assert summary.totals["dropped_by_rule"] == {"gdpr": 4}
    for s in range(2):
        with tarfile.open(tmp_path / "out" / f"{s:06d}.tar") as tar:
            members = tar.getmembers()
            assert all((m.uname, m.gname, m.mtime, m.uid) == ("", "", 0, 0) for m in members)
            names = [m.name for m in members]
            for j in range(6):
                i = s * 6 + j
                written = f"{i:06d}.jpg" in names
                assert written == (expected(i) != "dropped")
                if written:
                    check_image(
                        tar.extractfile(f"{i:06d}.jpg").read(), expected(i), PEOPLE[i % 6][2]
                    )  # type: ignore[union-attr]
                    kept = json.loads(tar.extractfile(f"{i:06d}.json").read())  # type: ignore[union-attr]
                    assert kept == {k: v for k, v in fields(i).items() if k not in FIELDS_OUT}
                    assert tar.extractfile(f"{i:06d}.txt").read() == f"caption {i}".encode()  # type: ignore[union-attr]


def test_parquet_keeps_its_columns_and_drops_rows_and_fields(tmp_path: Path) -> None:
    make_parquet(tmp_path / "in")
    summary = run(tmp_path / "in", tmp_path / "out", POLICY, workers=1, progress=False)
    assert summary.complete and summary.layout == "parquet"
    table = pq.read_table(tmp_path / "out" / "00000.parquet")
    assert table.column_names == ["key", "jpg", "caption", "country", "consent", "n"]
    written = [i for i in range(6) if expected(i) != "dropped"]
    assert table.column("key").to_pylist() == [f"{i:06d}" for i in written]
    for i, data in zip(written, table.column("jpg").to_pylist(), strict=True):
        check_image(data, expected(i), PEOPLE[i][2])
    assert [r["status"] for r in manifest_of(tmp_path / "out")] == [expected(i) for i in range(6)]


def test_folder_tree_keeps_siblings_and_leaves_out_other_files(tmp_path: Path) -> None:
    make_folder(tmp_path / "in")
    summary = run(tmp_path / "in", tmp_path / "out", POLICY, shard_size=4, progress=False)
    assert summary.complete and summary.shards_total == 2
    assert summary.left_out == ["sub/p0.xmp"]
    out = tmp_path / "out" / "sub"
    for i in range(6):
        assert (out / f"p{i}.jpg").exists() == (expected(i) != "dropped")
        assert (out / f"p{i}.json").exists() == (expected(i) != "dropped")
        if expected(i) != "dropped":
            check_image((out / f"p{i}.jpg").read_bytes(), expected(i), PEOPLE[i][2])
            assert "exif" not in json.loads((out / f"p{i}.json").read_text())
            assert (out / f"p{i}.txt").read_text() == f"caption {i}"
    assert not (out / "p0.xmp").exists()


def _truncated_tar(root: Path) -> None:
    make_webdataset(root, shards=1, per=4)
    data = (root / "000000.tar").read_bytes()
    (root / "000000.tar").write_bytes(data[: len(data) * 2 // 3])


@pytest.mark.parametrize(
    ("damage", "failed"),
    [
        ("corrupt jpeg", ["000002"]),
        ("bad json", ["000002"]),
        ("truncated shard", None),
    ],
)
def test_a_bad_record_fails_alone(tmp_path: Path, damage: str, failed: list[str] | None) -> None:
    source = tmp_path / "in"
    if damage == "truncated shard":
        _truncated_tar(source)
    else:
        source.mkdir()
        with tarfile.open(source / "000000.tar", "w") as tar:
            for i in range(4):
                image, meta = jpeg(False), json.dumps({"country": "US"}).encode()
                if i == 2 and damage == "corrupt jpeg":
                    image = image[:200]
                if i == 2 and damage == "bad json":
                    meta = b"{not json"
                for name, data in ((f"{i:06d}.jpg", image), (f"{i:06d}.json", meta)):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    summary = run(source, tmp_path / "out", POLICY, progress=False)
    rows = manifest_of(tmp_path / "out")
    assert summary.complete, (summary.expected, rows)
    bad = [r for r in rows if r["status"] == "failed"]
    assert all(r["error"] for r in bad)
    if failed is not None:
        assert [r["id"] for r in bad] == failed
        assert [r["status"] for r in rows].count("cleaned") == 3
    else:  # the samples before the damage are cleaned; the damage is accounted for
        assert rows[-1]["id"] == "000000.tar#unreadable" and rows[0]["status"] == "cleaned"
    with tarfile.open(tmp_path / "out" / "000000.tar") as tar:
        names = tar.getnames()
    assert all(not n.startswith(tuple(r["id"] for r in bad)) for n in names)


def test_rerun_redoes_nothing_and_writes_the_same_manifest(tmp_path: Path) -> None:
    make_webdataset(tmp_path / "in")
    run(tmp_path / "in", tmp_path / "out", POLICY, progress=False)
    first = (tmp_path / "out" / MANIFEST).read_bytes()
    parts = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*.parquet")}
    again = run(tmp_path / "in", tmp_path / "out", POLICY, progress=False)
    assert again.shards_run == 0 and again.complete
    assert (tmp_path / "out" / MANIFEST).read_bytes() == first
    assert all(p.stat().st_mtime_ns == t for p, t in parts.items() if p.name != MANIFEST)


def test_resuming_with_another_policy_is_refused(tmp_path: Path) -> None:
    make_webdataset(tmp_path / "in", shards=1)
    run(tmp_path / "in", tmp_path / "out", POLICY, progress=False)
    with pytest.raises(UsageError, match="policy"):
        run(tmp_path / "in", tmp_path / "out", Policy(), progress=False)


def test_resuming_after_the_input_changed_is_refused(tmp_path: Path) -> None:
    make_folder(tmp_path / "in", count=3)
    run(tmp_path / "in", tmp_path / "out", POLICY, progress=False)
    (tmp_path / "in" / "sub" / "p9.jpg").write_bytes(jpeg(False))
    with pytest.raises(UsageError, match="input files"):
        run(tmp_path / "in", tmp_path / "out", POLICY, progress=False)


def test_killed_run_resumes_without_redoing_or_duplicating(tmp_path: Path) -> None:
    make_folder(tmp_path / "in", count=6)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "veil", "dataset", str(tmp_path / "in"), str(out)]
    command += ["--shard-size", "1", "--workers", "1", "--progress", "off"]
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    parts = out / ".veil-dataset" / "parts"
    deadline = time.monotonic() + 120
    while len(list(parts.glob("*.parquet")) if parts.is_dir() else []) < 2:
        assert child.poll() is None, child.stderr.read() if child.stderr else ""
        assert time.monotonic() < deadline, "the run did not get going"
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    if child.stderr:
        child.stderr.close()
    done = {p: p.stat().st_mtime_ns for p in parts.glob("*.parquet")}
    assert 2 <= len(done) < 6 and not (out / MANIFEST).exists()
    summary = run(tmp_path / "in", out, shard_size=1, progress=False)
    rows = manifest_of(out)
    assert summary.complete and len(rows) == 6 == len({r["id"] for r in rows})
    assert summary.shards_run == 6 - len(done)
    assert all(p.stat().st_mtime_ns == t for p, t in done.items())  # not redone
    assert not list(out.rglob("*.veil-tmp"))


def test_cli_prints_totals_and_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_webdataset(tmp_path / "in", shards=1)
    policy = REPO / "examples" / "policies" / "gdpr-and-bipa.toml"
    code = main(
        [
            "dataset",
            str(tmp_path / "in"),
            str(tmp_path / "out"),
            "--policy",
            str(policy),
            "--progress",
            "off",
        ]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    assert "6 records" in err and "dropped by policy" in err and "manifest:" in err


@pytest.mark.ray
def test_ray_engine_gives_the_local_engine_s_manifest(tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="the Ray engine needs pip install 'veil[ray]'")
    make_webdataset(tmp_path / "in", shards=3, per=4)
    local = run(tmp_path / "in", tmp_path / "local", POLICY, workers=1, progress=False)
    on_ray = run(tmp_path / "in", tmp_path / "ray", POLICY, engine="ray", workers=2, progress=False)
    assert on_ray.complete and on_ray.totals == local.totals
    keep = ("id", "status", "rule", "faces", "fields_removed")
    assert [{k: r[k] for k in keep} for r in manifest_of(tmp_path / "ray")] == [
        {k: r[k] for k in keep} for r in manifest_of(tmp_path / "local")
    ]


def _talk_wav(path: Path) -> bytes:
    """A tagged WAV recording of speech-like sound; its samples."""
    pytest.importorskip("scipy", reason="the test speech is made with scipy's filters")
    from voice_helpers import tagged_wav

    return tagged_wav(path)


def test_a_folder_s_recordings_get_new_voices_and_say_so(tmp_path: Path) -> None:
    """A recording in a folder dataset: tags stripped, speech given a new voice, and the
    manifest's speech and voice columns say so (--voice keep: kept, samples unchanged)."""
    import pyarrow.parquet as pq

    from veil.cli import main

    src = tmp_path / "in" / "talk.wav"
    src.parent.mkdir()
    pcm = _talk_wav(src)
    for voice in ("anonymize", "keep"):
        dst = tmp_path / voice
        assert main(["dataset", str(src.parent), str(dst), "--voice", voice]) == 0
        [row] = pq.read_table(dst / "manifest.parquet").to_pylist()
        assert row["status"] == "cleaned" and "Artist" in row["metadata_removed"]
        assert row["voice"] == {"anonymize": "anonymized", "keep": "kept"}[voice]
        assert row["speech"] > 0.5
        same = (dst / "talk.wav").read_bytes()[-len(pcm) :] == pcm
        assert same == (voice == "keep")


def test_a_webdataset_sample_s_recording_is_cleaned_not_passed_through(tmp_path: Path) -> None:
    """A WebDataset member that is a recording was once copied as it came, tags and voice; it
    is cleaned like the sample's image, and the manifest says what was done to the voice."""
    import io
    import tarfile

    import pyarrow.parquet as pq

    from veil.cli import main

    pcm = _talk_wav(tmp_path / "talk.wav")
    (tmp_path / "in").mkdir()
    with tarfile.open(tmp_path / "in" / "000000.tar", "w") as tar:
        for name, data in (
            ("000000.wav", (tmp_path / "talk.wav").read_bytes()),
            ("000000.txt", b"a caption"),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert main(["dataset", str(tmp_path / "in"), str(tmp_path / "out")]) == 0
    [row] = pq.read_table(tmp_path / "out" / "manifest.parquet").to_pylist()
    assert row["status"] == "cleaned" and row["voice"] == "anonymized", row
    assert "Artist" in row["metadata_removed"]
    with tarfile.open(tmp_path / "out" / "000000.tar") as tar:
        written = tar.extractfile("000000.wav").read()  # type: ignore[union-attr]
    assert b"Jane Doe" not in written and written[-len(pcm) :] != pcm


def test_a_parquet_sound_column_is_cleaned_beside_the_images(tmp_path: Path) -> None:
    """A byte column of recordings (a speech dataset's "audio") beside the image column is
    cleaned cell by cell, not copied; byte cells of no known kind stay as they were."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from veil.cli import main

    pcm = _talk_wav(tmp_path / "talk.wav")
    wav = (tmp_path / "talk.wav").read_bytes()
    (tmp_path / "in").mkdir()
    rows = [
        {"key": "a", "jpg": jpeg(False), "audio": wav, "blob": b"\x00\x01 not media"},
        {"key": "b", "jpg": jpeg(False), "audio": None, "blob": None},
    ]
    hf = {"bytes": wav, "path": "talk.wav"}  # Hugging Face's Audio feature
    rows[0]["speech"], rows[1]["speech"] = hf, hf
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in" / "00000.parquet")
    assert main(["dataset", str(tmp_path / "in"), str(tmp_path / "out")]) == 0
    manifest = {
        r["id"]: r for r in pq.read_table(tmp_path / "out" / "manifest.parquet").to_pylist()
    }
    assert manifest["a"]["voice"] == "anonymized"
    out = {r["key"]: r for r in pq.read_table(tmp_path / "out" / "00000.parquet").to_pylist()}
    assert b"Jane Doe" not in out["a"]["audio"] and out["a"]["audio"][-len(pcm) :] != pcm
    assert out["a"]["blob"] == b"\x00\x01 not media" and out["b"]["audio"] is None
    for key in "ab":
        assert b"Jane Doe" not in out[key]["speech"]["bytes"]
        assert out[key]["speech"]["path"] == "talk.wav"
    assert manifest["b"]["voice"] == "anonymized"
