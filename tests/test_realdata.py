"""Real photos from ../shared/data (skipped when the corpus is absent).

- faces/: street and crowd photos with VOC face boxes; a sample is cleaned and scored with
  the protection rule of METRICS.md.
- metadata/: real camera and phone files and ExifTool's test images; every still image of a
  supported format is cleaned and the outputs are read back with exiftool.
"""

from __future__ import annotations

import re
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from helpers import central, crop, decoded, exiftool_read, identifying_tags, read_report, ssim_grey

pytestmark = pytest.mark.realdata

FACE_SAMPLE = 15
STILL_EXTENSIONS = {
    ".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".heic", ".heif", ".avif", ".gif", ".bmp"
}  # fmt: skip
METADATA_CORPORA = ("metadata-extractor", "exiftool-t-images")
VOC_KEYS = ("xmin", "ymin", "xmax", "ymax")


def _voc_boxes(xml: Path) -> list[tuple[int, int, int, int]]:
    root = ET.parse(xml).getroot()
    boxes = []
    for obj in root.iter("object"):
        bb = obj.find("bndbox")
        assert bb is not None
        x1, y1, x2, y2 = (round(float(bb.findtext(k, "0"))) for k in VOC_KEYS)
        boxes.append((x1, y1, x2, y2))
    return boxes


@pytest.fixture(scope="module")
def face_sample(shared_data: Path) -> list[Path]:
    images = shared_data / "faces" / "images"
    if not images.is_dir():
        pytest.skip(f"{images} is missing from the shared data")
    ordered = sorted(images.glob("*.jpg"), key=lambda p: int(re.sub(r"\D", "", p.stem) or 0))
    return ordered[:FACE_SAMPLE]


def test_real_faces_found_and_obscured(face_sample: list[Path], tmp_path: Path, cli) -> None:
    report = tmp_path / "report.jsonl"
    run = cli("clean", *face_sample, "-o", tmp_path / "out", "--report", report)
    assert run.code == 0, run.err

    rows = {Path(r["input"]).name: r for r in read_report(report)}
    assert sorted(rows) == sorted(p.name for p in face_sample), "one line per input"
    protected = judged = 0
    outside_psnr = []
    for src in face_sample:
        row = rows[src.name]
        assert row["status"] == "cleaned", row["error"]
        truth = _voc_boxes(src.parent.parent / "annotations" / f"{src.stem}.xml")
        if any(y2 - y1 >= 16 for _, y1, _, y2 in truth):
            assert row["faces"], f"no face found in {src.name}"
        before, after = decoded(src), decoded(Path(row["output"]))
        covered = np.zeros(before.shape[:2], bool)
        for face in row["faces"]:
            x1, y1, x2, y2 = face["region"]
            covered[y1:y2, x1:x2] = True
            if x2 - x1 >= 10:  # METRICS.md: regions really obscured
                inner = central((x1, y1, x2, y2))
                assert ssim_grey(crop(before, inner), crop(after, inner)) < 0.6, (src.name, face)
        for x1, y1, x2, y2 in truth:
            if y2 - y1 >= 16 and x2 > x1:
                judged += 1
                protected += covered[y1:y2, x1:x2].mean() >= 0.7
        if (~covered).any():
            err = np.mean((before[~covered].astype(float) - after[~covered]) ** 2)
            outside_psnr.append(99.0 if err == 0 else 10 * np.log10(255**2 / err))
    assert judged >= 30, "the sample should hold enough faces >= 16 px to judge"
    assert protected / judged >= 0.9, f"only {protected}/{judged} faces >= 16 px protected"
    assert np.median(outside_psnr) >= 40, "pixels away from faces must stay as they were"


# -- metadata corpus -----------------------------------------------------------------------
def _stills(shared_data: Path) -> list[Path]:
    root = shared_data / "metadata"
    files = [
        p
        for corpus in METADATA_CORPORA
        for p in sorted((root / corpus).rglob("*"))
        if p.is_file() and p.suffix.lower() in STILL_EXTENSIONS
    ]
    if not files:
        pytest.skip(f"no still images under {root}/{{{','.join(METADATA_CORPORA)}}}")
    return files


def _mirror(files: list[Path], root: Path, into: Path) -> None:
    """Link the chosen files into ``into`` with their relative paths (the folders also hold
    videos, RAW and sidecar files, which are not what these tests are about)."""
    for path in files:
        link = into / path.relative_to(root)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(path)


def _pillow_decodes(path: Path) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                for i in range(getattr(im, "n_frames", 1)):
                    im.seek(i)
                    im.load()
        return True
    except Exception:
        return False


@pytest.fixture(scope="module")
def cleaned_corpus(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    """Every still of the two corpora, cleaned once with ``--faces off`` (metadata is what is
    judged here; face detection on 12 MP phone photos would only add minutes)."""
    from veil.cli import main

    files = _stills(shared_data)
    work = tmp_path_factory.mktemp("corpus")
    _mirror(files, shared_data / "metadata", work / "in")
    report = work / "report.jsonl"
    code = main(
        ["clean", str(work / "in"), "-o", str(work / "out"), "--report", str(report),
         "--faces", "off", "--jobs", "2"]
    )  # fmt: skip
    rows = read_report(report)
    return files, work, rows, code


@pytest.mark.slow
def test_corpus_every_file_accounted_for(cleaned_corpus) -> None:
    files, work, rows, code = cleaned_corpus
    assert code in (0, 1), "a batch ends with a summary, never a crash"
    assert len(rows) == len(files)
    assert {Path(r["input"]).resolve() for r in rows} == {p.resolve() for p in files}
    for row in rows:
        assert row["status"] in ("cleaned", "unchanged", "failed"), row
        if row["status"] == "failed":
            assert row["output"] is None and row["error"]
            assert not re.search(r"object at 0x|Traceback", row["error"]), row["error"]
    written = [r for r in rows if r["status"] in ("cleaned", "unchanged")]
    assert len(written) >= 0.9 * len(rows)
    assert not list((work / "out").rglob("*.veil-tmp"))


@pytest.mark.slow
def test_corpus_refuses_only_broken_files(cleaned_corpus) -> None:
    """A file that Pillow decodes in full is a real picture: veil must clean it, not refuse it."""
    _, _, rows, _ = cleaned_corpus
    wrongly_refused = [
        f"{Path(r['input']).name}: {r['error']}"
        for r in rows
        if r["status"] == "failed" and _pillow_decodes(Path(r["input"]).resolve())
    ]
    assert wrongly_refused == []


@pytest.mark.slow
def test_corpus_outputs_carry_nothing_identifying(cleaned_corpus, exiftool: str) -> None:
    _, _, rows, _ = cleaned_corpus
    outputs = [Path(r["output"]) for r in rows if r["output"]]
    leaks = {}
    for row in exiftool_read(*outputs):
        left = identifying_tags(row)
        if left:
            leaks[row["SourceFile"]] = {k: str(row[k])[:60] for k in left}
    assert leaks == {}
    # The corpus is worth testing: many inputs did carry GPS, serials, maker notes, XMP...
    inputs = [Path(r["input"]).resolve() for r in rows if r["output"]]
    carried = [identifying_tags(row) for row in exiftool_read(*inputs)]
    keys = {k for tags in carried for k in tags}
    assert sum(1 for tags in carried if tags) >= 0.5 * len(inputs)
    for pattern in (r"GPS", r"Serial", r"^MakerNotes:", r"^XMP", r"^IPTC", r"Artist"):
        assert any(re.search(pattern, k) for k in keys), f"no {pattern} in the corpus inputs"


@pytest.mark.slow
def test_corpus_outputs_keep_size_orientation_and_colour(cleaned_corpus) -> None:
    """Outputs show the picture the same way up and at the same size, with its ICC profile,
    and hold no second picture (thumbnail, depth map, MPF preview) of the original."""
    _, _, rows, _ = cleaned_corpus
    problems = []
    for row in rows:
        if row["output"] is None:
            continue
        src, dst = Path(row["input"]).resolve(), Path(row["output"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(src) as a, Image.open(dst) as b:
                shown = ImageOps.exif_transpose(a).size if a.format != "TIFF" else a.size
                shown_out = ImageOps.exif_transpose(b).size if b.format != "TIFF" else b.size
                icc_in, icc_out = a.info.get("icc_profile"), b.info.get("icc_profile")
                if shown_out != shown:
                    problems.append(f"{src.name}: displayed {shown_out}, input {shown}")
                if icc_in and (not icc_out or icc_out[128:] != icc_in[128:]):
                    problems.append(f"{src.name}: ICC profile lost or altered")
                for key in ("thumbnails", "depth_images", "aux", "mp", "mpoffset"):
                    if b.info.get(key):  # HEIF thumbnails/depth maps, JPEG MPF previews
                        problems.append(f"{src.name}: output still holds {key}")
    assert problems == []
