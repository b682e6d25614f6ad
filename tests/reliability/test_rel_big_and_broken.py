"""Huge pictures in bounded memory, and damaged files refused in plain words (issue 16, items
10 and 11).

A 196 MP PNG the size limit admits took 6.2 GB: Pillow's whole-frame conversions, the
detector's two memory arenas kept full, a mask and labels the size of the picture for the zoom
areas. Damaged files were refused in the libraries' words ("decoder error -2", "could not
create decoder object", "Invalid data found when processing input") while libtiff printed its
own complaints on the console. Every file here is made in the test.
"""

from __future__ import annotations

import errno
import io
import re
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from helpers import ASTRONAUT_FACE, astronaut, backdrop, read_report, scene
from veil.cli import main
from veil.detectors import Strategy
from veil.detectors import centerface as cf
from veil.faces import Faces

# Library words a person should not have to read (the same list as benchmarks/fuzz.py, plus
# Python's own): a decoder's status code, an errno, an object, FFmpeg's "Invalid argument".
JARGON = re.compile(
    r"errno|decoder|object|invalid argument|invalid data found|-\d\b|\b0x[0-9a-f]+|Traceback",
    re.IGNORECASE,
)
# What libtiff and Pillow's logger print on stderr about a damaged TIFF when left to.
LIBRARY_STDERR = re.compile(r"TIFF\w*:|LZWDecode|JPEGLib|samples per pixel|code not yet in table")


# -- damaged files -------------------------------------------------------------------------
def _saved(fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(scene()[::2, ::2]).save(buf, fmt, **options)
    return buf.getvalue()


def _cut(data: bytes, share: float) -> bytes:
    return data[: int(len(data) * share)]


def _tiff_entry(data: bytes, tag: int, count: int) -> bytes:
    """A little-endian TIFF with the count of one tag of its first IFD changed, as a damaged
    or careless writer leaves it (libtiff then complains on stderr)."""
    (ifd,) = struct.unpack_from("<I", data, 4)
    (entries,) = struct.unpack_from("<H", data, ifd)
    for at in range(ifd + 2, ifd + 2 + 12 * entries, 12):
        if struct.unpack_from("<H", data, at)[0] == tag:
            return data[: at + 4] + struct.pack("<I", count) + data[at + 8 :]
    raise AssertionError(f"tag {tag} not in the first IFD")


def _renamed_tag(data: bytes, tag: int, new: int) -> bytes:
    (ifd,) = struct.unpack_from("<I", data, 4)
    (entries,) = struct.unpack_from("<H", data, ifd)
    for at in range(ifd + 2, ifd + 2 + 12 * entries, 12):
        if struct.unpack_from("<H", data, at)[0] == tag:
            return data[:at] + struct.pack("<H", new) + data[at + 2 :]
    raise AssertionError(f"tag {tag} not in the first IFD")


def _flipped(data: bytes, start: int, stop: int, every: int = 97) -> bytes:
    damaged = bytearray(data)
    for at in range(start, min(stop, len(data)), every):
        damaged[at] ^= 0xA5
    return bytes(damaged)


def _first_obu_damaged(avif: bytes) -> bytes:
    """The AVIF with the first header byte of its AV1 data flipped ("Decoding of color planes
    failed"); AV1 shrugs off flips further into the data."""
    at = avif.index(b"mdat") + 4
    return avif[:at] + bytes([avif[at] ^ 0xFF]) + avif[at + 1 :]


def _clip() -> bytes:
    import tempfile

    from clips import make_clip

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        make_clip(path, frames=3)
        return path.read_bytes()


_ROWS_PER_STRIP, _STRIP_OFFSETS, _JPEG_TABLES = 278, 273, 347


@dataclass(frozen=True)
class Broken:
    name: str
    content: Callable[[], bytes]
    #: what the plain message must say (regex)
    says: str


BROKEN = [
    Broken("cut.png", lambda: _cut(_saved("PNG"), 0.5), r"PNG file is truncated"),
    Broken("cut.jpg", lambda: _cut(_saved("JPEG"), 0.5), r"JPEG file is truncated"),
    Broken("cut.webp", lambda: _cut(_saved("WEBP"), 0.6), r"WebP"),
    Broken("cut.gif", lambda: _cut(_saved("GIF"), 0.6), r"GIF file is truncated"),
    Broken("cut.bmp", lambda: _cut(_saved("BMP"), 0.6), r"BMP file is truncated"),
    Broken("cut.heic", lambda: _cut(_saved("HEIF", quality=50), 0.6), r"HEIF file is truncated"),
    Broken("obu.avif", lambda: _first_obu_damaged(_saved("AVIF", quality=50)), r"AVIF image data"),
    Broken("cut_lzw.tif", lambda: _cut(_saved("TIFF", compression="tiff_lzw"), 0.6), r"TIFF"),
    # libtiff: 'TIFFFetchNormalTag: Incorrect count for "RowsPerStrip"' (was "decoder error -2")
    Broken(
        "rows.tif",
        lambda: _tiff_entry(_saved("TIFF", compression="tiff_lzw"), _ROWS_PER_STRIP, 0),
        r"TIFF image data is damaged",
    ),
    # libtiff: "Using code not yet in table" (LZW data read from the wrong place)
    Broken(
        "offsets.tif",
        lambda: _tiff_entry(_saved("TIFF", compression="tiff_lzw"), _STRIP_OFFSETS, 0),
        r"TIFF image data is damaged",
    ),
    # libtiff: "JPEGLib: Quantization table 0x00 was not defined"
    Broken(
        "tables.tif",
        lambda: _renamed_tag(_saved("TIFF", compression="jpeg"), _JPEG_TABLES, 65000),
        r"TIFF image data is damaged",
    ),
    Broken("header.png", lambda: _flipped(_saved("PNG"), 12, 40, 3), r"not a readable PNG"),
    Broken("cut.mp4", lambda: _cut(_clip(), 0.5), r"cannot read MP4: the file is damaged"),
]


@pytest.fixture
def broken_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for case in BROKEN:
        (folder / case.name).write_bytes(case.content())
    return folder


@pytest.mark.video
def test_damaged_files_are_refused_in_plain_words(
    broken_folder: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Every damaged file fails as CorruptInput with a sentence about the file, and nothing of
    libtiff's or Pillow's own complaints reaches the console (fd 2, where libtiff writes)."""
    report = tmp_path / "report.jsonl"

    code = main(["clean", str(broken_folder), "-o", str(tmp_path / "out"), "--report", str(report)])

    assert code == 1
    rows = {Path(row["input"]).name: row for row in read_report(report)}
    for case in BROKEN:
        row = rows[case.name]
        assert row["status"] == "failed", (case.name, row)
        assert row["error"].startswith("CorruptInput: "), (case.name, row["error"])
        assert re.search(case.says, row["error"]), (case.name, row["error"])
        assert not JARGON.search(row["error"]), (case.name, row["error"])
    err = capfd.readouterr().err
    assert not LIBRARY_STDERR.search(err), err


def test_plain_reason_keeps_useful_detail_and_drops_jargon() -> None:
    from veil.formats.base import plain_reason

    damaged = "the TIFF image data is damaged or in a form veil cannot read"
    assert plain_reason(OSError("decoder error -2"), "TIFF") == damaged
    assert plain_reason(OSError("could not create decoder object"), "TIFF") == damaged
    assert plain_reason(KeyError(274), "TIFF") == damaged
    assert "(Unsupported BMP compression (3))" in plain_reason(
        OSError("Unsupported BMP compression (3)"), "BMP"
    )
    cut = plain_reason(ValueError("Invalid input: Unexpected end of file\n"), "HEIF")
    assert cut == "the HEIF file is truncated (part of its image data is missing)"
    assert "truncated" in plain_reason(struct.error("unpack requires a buffer of 4 bytes"), "PNG")


@pytest.mark.parametrize(
    ("code", "says"),
    [
        (-errno.EINVAL, "the data is damaged"),  # PyAV: "Invalid argument"
        (-0x41444E49, "the data is damaged"),  # AVERROR_INVALIDDATA ("INDA")
        (-0x20464F45, "the file ends early (truncated)"),  # AVERROR_EOF ("EOF ")
        (-errno.ENOSPC, "No space left on device"),  # the system's words are plain already
    ],
)
def test_ffmpeg_refusals_in_plain_words(code: int, says: str) -> None:
    import av

    from veil.formats.video import reason

    with pytest.raises(av.FFmpegError) as raised:
        av.error.err_check(code)
    assert reason(raised.value) == says


# -- huge pictures -------------------------------------------------------------------------
def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads /proc (Linux)")
def test_detector_hands_its_memory_back_after_a_huge_picture(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a picture over the huge-picture size, the detector's memory arena is handed back
    (the encoder needs several copies of such a picture next); below it, it is kept for speed."""
    detector = cf.CenterFace(Strategy(scales=(1.0,)), threads=2)
    image = np.ascontiguousarray(backdrop(1500, 2000))
    detector.detect(image)  # the arena grows to what a 2000x1500 pass needs, and stays
    kept = _rss()
    monkeypatch.setattr(cf, "_HUGE_PIXELS", 1_000_000)

    detector.detect(image)

    handed_back = kept - _rss()
    assert handed_back > 200_000_000, f"only {handed_back / 1e6:.0f} MB handed back"


def test_a_face_on_a_huge_pictures_tile_seam_is_found_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Huge pictures are searched in smaller tiles; a face cut by a tile edge is whole in the
    neighbouring tile (they overlap) and comes out once, not twice."""
    monkeypatch.setattr(cf, "_HUGE_PIXELS", 1_000_000)
    sizes: list[int] = []
    tiles = cf._tiles

    def spy(rgb: np.ndarray, tile: int = cf._TILE) -> Iterator[tuple[int, int, np.ndarray]]:
        sizes.append(tile)
        return tiles(rgb, tile)

    monkeypatch.setattr(cf, "_tiles", spy)
    image = np.full((640, 2200, 3), 90, np.uint8)
    left = cf._HUGE_TILE - 235  # the face (x 181-270 in the astronaut) straddles the edge
    image[64:576, left : left + 512] = astronaut()

    faces = cf.CenterFace(Strategy(scales=(1.0,), threshold=0.3)).detect(image)

    assert sizes and set(sizes) == {cf._HUGE_TILE}
    x1, y1, x2, y2 = ASTRONAUT_FACE
    truth = np.array([x1 + left, y1 + 64, x2 + left, y2 + 64], np.float32)
    overlap = [_iou(box, truth) for box in faces.xyxy]
    assert sum(o > 0.3 for o in overlap) == 1, faces.xyxy


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    return float(inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))


def _mask_areas(height: int, width: int, candidates: Faces) -> list[tuple[int, int, int, int]]:
    """The zoom areas as they were found before: a mask the size of the picture, labelled."""
    mask = np.zeros((height, width), np.uint8)
    for x1, y1, x2, y2 in candidates.xyxy.tolist():
        margin = max(cf._ZOOM_MARGIN_PX, cf._ZOOM_MARGIN_HEIGHTS * (y2 - y1))
        top, left = max(int(y1 - margin), 0), max(int(x1 - margin), 0)
        mask[top : int(y2 + margin) + 1, left : int(x2 + margin) + 1] = 1
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    return [(int(x), int(y), int(w), int(h)) for x, y, w, h, _ in stats[1:count]]


def test_zoom_areas_without_a_picture_sized_mask_are_the_same() -> None:
    """The zoom areas (candidates joined where they touch) are found on the grid of their own
    edges; the areas, and their order, are those the picture-sized mask gave."""
    rng = np.random.default_rng(16)
    for _ in range(300):
        height, width = (int(v) for v in rng.integers(40, 400, 2))
        count = int(rng.integers(1, 30))
        x1 = rng.uniform(-10, width, count)
        y1 = rng.uniform(-10, height, count)
        tall = rng.uniform(2, 30, count)
        boxes = np.stack([x1, y1, x1 + tall * 0.8, y1 + tall], axis=1)
        candidates = Faces(boxes, np.full(count, 0.1))
        rgb = np.zeros((height, width, 3), np.uint8)
        found = [(x, y, a.shape[1], a.shape[0]) for x, y, a in cf._zoom_areas(rgb, candidates)]
        expected = _mask_areas(height, width, candidates)
        if sum(w * h for *_, w, h in expected) > cf._ZOOM_WHOLE_SHARE * width * height:
            expected = [(0, 0, width, height)]
        assert found == expected


_PEAK = """
import sys
from pathlib import Path
from veil.cli import main

def status(key):
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(key))
    return int(line.split()[1]) * 1024

Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) starts again from here
before = status("VmRSS:")
main(["clean", sys.argv[1], "-o", sys.argv[2], "--faces", "off", "--report", sys.argv[3]])
print(status("VmHWM:") - before)
"""


def _growth(src: Path, out: Path) -> int:
    """How far a `veil clean --faces off` of ``src`` raises its process's peak memory."""
    run = subprocess.run(
        [sys.executable, "-c", _PEAK, str(src), str(out), str(out.with_suffix(".jsonl"))],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows = read_report(out.with_suffix(".jsonl"))
    assert [row["status"] for row in rows] == ["unchanged"], rows
    return int(run.stdout.split()[-1])


@pytest.mark.skipif(
    not Path("/proc/self/clear_refs").exists(), reason="resets the peak through /proc (Linux)"
)
def test_a_large_picture_is_read_and_written_in_few_bytes_per_pixel(tmp_path: Path) -> None:
    """A 36 MP PNG (flat, so it is small on disk) is read, checked and rewritten in about
    7 bytes of memory per pixel: the frame itself (3) and Pillow's copy while it decodes (4),
    the rest a band of a few MB at a time (8.6 measured). The whole-frame turn, conversion
    and comparisons took 24."""
    side = 6000
    pixels = np.full((side, side, 3), 200, np.uint8)
    pixels[::7, :, 1] = 90
    large = tmp_path / "large.png"
    Image.fromarray(pixels).save(large, compress_level=1)
    del pixels

    per_pixel = _growth(large, tmp_path / "out") / side**2

    assert per_pixel < 10, f"{per_pixel:.1f} bytes per pixel"
