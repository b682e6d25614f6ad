"""HEIC/HEIF and AVIF stills whose pixels did not change are rewritten, not re-encoded.

`veil.formats.isobmff.strip_heif` keeps the primary image item and what draws it and drops
every metadata item; these tests check that the picture survives bit for bit (including its
rotation, alpha and colour profile), that exiftool finds nothing identifying, that the bytes of
the dropped EXIF and XMP items are gone, and that anything the walk cannot follow falls back to
re-encoding instead of leaving a half-cleaned file. Layout cases rebuild libheif's own output
with other ``iloc`` encodings (versions 0-2, field sizes 0/4/8, base offsets, extent indices,
split extents, data in ``idat``), checked first against libheif's decoder.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import veil
from helpers import (
    MAKER_SERIAL,
    SERIAL,
    decoded,
    exif_block,
    exiftool_read,
    identifying_tags,
    read_report,
    srgb_icc,
    textured,
    thumbnail_jpeg,
    xmp_packet,
)
from veil.formats.isobmff import box, boxes, full_box, strip_heif

XMP_MARKER = b"veil-xmp-marker-5f0c2e"
XMP_PACKET = xmp_packet(XMP_MARKER)
NAME_MARKER = b"veil-item-name-marker"
BOX_MARKER = b"veil-box-marker-91d3"
# Strings of the planted EXIF block (serials in the Exif IFD and in the maker note).
EXIF_MARKERS = (SERIAL.encode(), MAKER_SERIAL.encode(), thumbnail_jpeg()[-202:-2])
FORMATS = {"heic": "HEIF", "avif": "AVIF"}


def _save(path: Path, mode: str = "RGB", orientation: int | None = None) -> None:
    """A faceless picture with grain (so re-encoding would show), EXIF with GPS, XMP and ICC."""
    im = Image.fromarray(textured(72, 96)).convert(mode)
    exif = exif_block(orientation)
    im.save(path, FORMATS[path.suffix[1:]], quality=80, exif=exif, xmp=XMP_PACKET,
            icc_profile=srgb_icc())  # fmt: skip


def _same_picture(a: Path, b: Path) -> bool:
    return bool(np.array_equal(decoded(a, "RGBA"), decoded(b, "RGBA")))


@dataclass
class Cleaned:
    src: Path
    dst: Path
    status: str


@pytest.fixture(scope="module", params=sorted(FORMATS))
def cleaned(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Cleaned:
    root = tmp_path_factory.mktemp(request.param)
    src = root / f"photo.{request.param}"
    _save(src)
    result = veil.clean(src, root / "out" / src.name, faces=False)
    return Cleaned(src, root / "out" / src.name, result.status)


def test_pixels_identical(cleaned: Cleaned) -> None:
    assert cleaned.status == "cleaned"
    # Re-encoding the grain at any quality would change pixels: equality means no re-encode.
    assert _same_picture(cleaned.src, cleaned.dst)


def test_exiftool_finds_nothing_identifying(cleaned: Cleaned, exiftool: str) -> None:
    before, after = exiftool_read(cleaned.src, cleaned.dst)
    assert any(k.startswith("EXIF:GPS:") for k in before) and any(
        k.startswith("XMP") for k in before
    )
    assert identifying_tags(after) == [], {k: after[k] for k in identifying_tags(after)}


def test_removed_item_bytes_are_gone(cleaned: Cleaned) -> None:
    source, data = cleaned.src.read_bytes(), cleaned.dst.read_bytes()
    for marker in (XMP_MARKER, *EXIF_MARKERS):
        assert marker in source, "the fixture must carry the marker"
        assert marker not in data
    assert b"Exif\x00\x00" not in data and b"application/rdf+xml" not in data


def test_icc_profile_kept(cleaned: Cleaned) -> None:
    with Image.open(cleaned.dst) as im:
        kept = im.info.get("icc_profile")
    assert kept and kept[128:] == srgb_icc()[128:], "the colour data must be untouched"
    assert kept[24:36] == bytes(12), "the profile's creation date is zeroed"


@pytest.mark.parametrize("ext", sorted(FORMATS))
def test_rotation_kept(ext: str, tmp_path: Path) -> None:
    """The encoder turns EXIF orientation 6 into an irot box; the rewrite keeps it."""
    src = tmp_path / f"rot.{ext}"
    _save(src, orientation=6)
    assert b"irot" in src.read_bytes()
    result = veil.clean(src, tmp_path / "out" / src.name, faces=False)
    dst = tmp_path / "out" / src.name
    assert result.status == "cleaned" and b"irot" in dst.read_bytes()
    assert decoded(dst).shape[:2] == (96, 72), "shown a quarter turn, portrait"
    assert _same_picture(src, dst)


def test_alpha_plane_kept(tmp_path: Path) -> None:
    src = tmp_path / "alpha.heic"
    _save(src, mode="RGBA")
    stripped = strip_heif(src.read_bytes())
    assert stripped is not None
    dst = tmp_path / "out.heic"
    dst.write_bytes(stripped)
    with Image.open(dst) as im:
        assert im.mode == "RGBA"
    assert _same_picture(src, dst)


# -- other layouts of the same file --------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    id: str
    version: int
    offset_size: int
    length_size: int
    base_size: int
    index_size: int = 0
    #: the primary image's data split in two extents, stored in reverse order
    split: bool = True
    #: the primary image's data in idat (construction method 1)
    idat: bool = False


LAYOUTS = [
    Layout("v0-4-4", 0, 4, 4, 0),
    Layout("v0-8-8-base8", 0, 8, 8, 8),
    Layout("v0-offset0-base4", 0, 0, 4, 4, split=False),
    Layout("v1-4-4-base4-index4", 1, 4, 4, 4, 4),
    Layout("v1-8-4-index8-idat", 1, 8, 4, 0, 8, idat=True),
    Layout("v2-4-8-base4", 2, 4, 8, 4),
    Layout("v2-4-4-idat", 2, 4, 4, 0, idat=True),
]


def _iloc_v0(body: bytes) -> dict[int, list[tuple[int, int]]]:
    """Extents by item of the iloc libheif writes: version 0, 4-byte offsets, lengths, bases."""
    assert body[0] == 0 and body[4:6] == b"\x44\x40", "libheif's iloc layout changed"
    (count,) = struct.unpack_from(">H", body, 6)
    position, located = 8, {}
    for _ in range(count):
        item, _, base, extent_count = struct.unpack_from(">HHIH", body, position)
        position += 10
        extents = []
        for _ in range(extent_count):
            offset, length = struct.unpack_from(">II", body, position)
            extents.append((base + offset, length))
            position += 8
        located[item] = extents
    return located


def _relayout(
    data: bytes,
    layout: Layout,
    *,
    exif_inside_image: bool = False,
    meta_extra: bytes = b"",
    top_extra: bytes = b"",
    primary_name: bytes = b"",
) -> bytes:
    """``data`` (a libheif HEIC) with its item data moved and described by ``layout``."""
    top = {b.type: b for b in boxes(data)}
    meta = top[b"meta"]
    children = {c.type: c for c in boxes(data, meta.body + 4, meta.end)}
    pitm = children[b"pitm"]
    primary = int.from_bytes(data[pitm.body + 4 : pitm.body + 6], "big")
    iloc = children[b"iloc"]
    located = _iloc_v0(data[iloc.body : iloc.end])
    payloads = {i: b"".join(data[o : o + n] for o, n in ext) for i, ext in located.items()}
    image = payloads.pop(primary)
    half = len(image) // 2 if layout.split else len(image)
    head, tail = image[:half], image[half:]

    def build(mdat_at: int) -> tuple[bytes, bytes]:
        # mdat: tail | other items | head, so the primary's two extents are out of order.
        mdat = b"" if layout.idat else tail
        entries: list[tuple[int, int, list[tuple[int, int]]]] = []
        others = {}
        for item, payload in payloads.items():
            others[item] = (mdat_at + len(mdat), len(payload))
            mdat += payload
        if layout.idat:
            entries.append((primary, 1, [(0, len(image))]))
        else:
            head_at = mdat_at + len(mdat)
            mdat += head
            parts = [(head_at, len(head))] + ([(mdat_at, len(tail))] if tail else [])
            entries.append((primary, 0, parts))
        for item, (offset, length) in others.items():
            if exif_inside_image and item == min(others):
                offset, length = entries[0][2][0][0], 16
            entries.append((item, 0, [(offset, length)]))
        return _iloc(layout, entries, mdat_at), mdat

    def meta_box(new_iloc: bytes) -> bytes:
        parts = [
            new_iloc if c.type == b"iloc" else data[c.start : c.end] for c in children.values()
        ]
        if primary_name:
            parts = [_named(p, primary, primary_name) if p[4:8] == b"iinf" else p for p in parts]
        if layout.idat:
            parts.append(box(b"idat", image))
        return full_box(b"meta", 0, 0, b"".join(parts) + meta_extra)

    ftyp = data[top[b"ftyp"].start : top[b"ftyp"].end]
    draft_iloc, _ = build(0)
    mdat_at = len(ftyp) + len(meta_box(draft_iloc)) + 8
    new_iloc, mdat = build(mdat_at)
    return ftyp + meta_box(new_iloc) + box(b"mdat", mdat) + top_extra


def _iloc(
    layout: Layout, entries: list[tuple[int, int, list[tuple[int, int]]]], base: int
) -> bytes:
    """An iloc box; with a base offset field, extents are written relative to ``base``."""

    def uint(value: int, size: int) -> bytes:
        assert value < 256**size or (size == 0 and value == 0), (value, size)
        return value.to_bytes(size, "big")

    sizes = (layout.offset_size << 12) | (layout.length_size << 8) | (layout.base_size << 4)
    body = struct.pack(">H", sizes | layout.index_size)
    id_size = 2 if layout.version < 2 else 4
    body += uint(len(entries), id_size)
    for item, method, extents in entries:
        body += uint(item, id_size)
        if layout.version:
            body += struct.pack(">H", method)
        elif method:
            raise AssertionError("construction_method needs iloc version 1 or 2")
        relative_to = base if layout.base_size and method == 0 else 0
        if layout.offset_size == 0:  # no offset field: the base offset locates the one extent
            ((offset, _),) = extents
            relative_to = offset
        body += b"\x00\x00" + uint(relative_to, layout.base_size) + struct.pack(">H", len(extents))
        for offset, length in extents:
            body += uint(1, layout.index_size) if layout.index_size else b""
            body += uint(offset - relative_to, layout.offset_size) + uint(
                length, layout.length_size
            )
    return full_box(b"iloc", layout.version, 0, body)


def _named(iinf: bytes, item: int, name: bytes) -> bytes:
    """iinf with ``item``'s infe (version 2) carrying ``name``."""
    entries = []
    for entry in boxes(iinf, 14):  # 8 header, 4 version and flags, 2 entry count
        raw = iinf[entry.start : entry.end]
        if int.from_bytes(raw[12:14], "big") == item:
            raw = box(b"infe", raw[8:20] + name + b"\x00")
        entries.append(raw)
    return box(b"iinf", iinf[8:14] + b"".join(entries))


@pytest.fixture(scope="module")
def heic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("layout") / "photo.heic"
    _save(path)
    return path


def _decodes_as(data: bytes, reference: Path) -> bool:
    out = reference.with_name(f"check-{len(data)}.heic")
    out.write_bytes(data)
    return _same_picture(reference, out)


@pytest.mark.parametrize("layout", LAYOUTS, ids=[c.id for c in LAYOUTS])
def test_iloc_layouts(layout: Layout, heic: Path) -> None:
    moved = _relayout(heic.read_bytes(), layout)
    assert _decodes_as(moved, heic), "the test's own layout must be valid for libheif"
    stripped = strip_heif(moved)
    assert stripped is not None
    assert _decodes_as(stripped, heic)
    for marker in (XMP_MARKER, *EXIF_MARKERS):
        assert marker not in stripped


def test_names_and_extra_boxes_dropped(heic: Path) -> None:
    """Item names, meta-level and top-level boxes outside the allowlist can carry text."""
    note = box(b"udta", box(b"\xa9cmt", BOX_MARKER))
    moved = _relayout(
        heic.read_bytes(),
        LAYOUTS[0],
        meta_extra=note + box(b"free", BOX_MARKER),
        top_extra=box(b"uuid", bytes(16) + BOX_MARKER) + note,
        primary_name=NAME_MARKER,
    )
    assert _decodes_as(moved, heic)
    stripped = strip_heif(moved)
    assert stripped is not None and _decodes_as(stripped, heic)
    assert BOX_MARKER not in stripped and NAME_MARKER not in stripped


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda d: d[: len(d) // 3], id="truncated"),
        pytest.param(lambda d: b"\x00\x00\x00\x08ftyp" + d, id="two-ftyp"),
        pytest.param(lambda d: d + box(b"moov", b""), id="image-sequence"),
        pytest.param(lambda d: d.replace(b"hvcC", b"zzzz"), id="unknown-essential-property"),
        pytest.param(lambda d: d.replace(b"hvc1", b"zzzz", 1), id="unknown-item-type"),
        pytest.param(lambda d: d[:100] + b"\xff\xff\xff\xff" + d[104:], id="box-past-the-end"),
        pytest.param(lambda d: b"not a heif file at all", id="garbage"),
    ],
)
def test_unfollowable_files_fall_back(damage, heic: Path) -> None:
    assert strip_heif(damage(heic.read_bytes())) is None


def test_shared_bytes_fall_back(heic: Path) -> None:
    """An EXIF item pointing into the image data: dropping it cannot remove its bytes."""
    assert strip_heif(_relayout(heic.read_bytes(), LAYOUTS[0], exif_inside_image=True)) is None


def test_unknown_optional_property_dropped(heic: Path) -> None:
    """A property a decoder may ignore (here pixi renamed to udes, a user description)."""
    data = heic.read_bytes().replace(b"pixi", b"udes")
    stripped = strip_heif(data)
    assert stripped is not None and b"udes" not in stripped
    assert _decodes_as(stripped, heic)


def test_fallback_still_cleans(tmp_path: Path, exiftool: str) -> None:
    """A file the walk refuses (here: an image sequence box) is re-encoded, still clean."""
    src = tmp_path / "in" / "seq.heic"
    src.parent.mkdir()
    _save(src)
    src.write_bytes(src.read_bytes() + box(b"moov", b""))
    result = veil.clean(src, tmp_path / "out" / src.name, faces=False)
    assert result.status == "cleaned", result.error
    (after,) = exiftool_read(tmp_path / "out" / src.name)
    assert identifying_tags(after) == []


# -- real files ---------------------------------------------------------------------------
REAL = ("metadata-extractor/heic", "metadata-extractor/avif", "exiftool-t-images")


@pytest.mark.slow
@pytest.mark.realdata
def test_real_files(shared_data: Path, tmp_path: Path, cli, exiftool: str) -> None:
    """Every decodable real HEIC/AVIF is rewritten losslessly with nothing identifying left;
    the broken ones fail with a reason and leave no output."""
    root = shared_data / "metadata"
    inputs = tmp_path / "in"
    inputs.mkdir()
    for folder in REAL:
        for path in sorted((root / folder).glob("*")):
            if path.suffix.lower() in (".heic", ".heif", ".avif"):
                (inputs / path.name).write_bytes(path.read_bytes())
    if not any(inputs.iterdir()):
        pytest.skip("no HEIC/AVIF files in the shared metadata corpus")
    report = tmp_path / "report.jsonl"
    cli("clean", inputs, "-o", tmp_path / "out", "--faces", "off", "--report", report)
    rows = read_report(report)
    assert len(rows) == len(list(inputs.iterdir()))
    written = [r for r in rows if r["output"]]
    failed = [r for r in rows if not r["output"]]
    for row in failed:
        assert row["status"] == "failed" and "CorruptInput" in row["error"], row
        assert not (tmp_path / "out" / Path(row["input"]).name).exists()
    after = exiftool_read(*[Path(r["output"]) for r in written])
    problems = []
    for row, tags in zip(written, after, strict=True):
        src, dst = Path(row["input"]), Path(row["output"])
        if not _same_picture(src, dst):
            problems.append(f"{src.name}: pixels changed (re-encoded, not rewritten)")
        if identifying_tags(tags):
            problems.append(f"{src.name}: {identifying_tags(tags)}")
        with Image.open(src) as a, Image.open(dst) as b:
            if a.info.get("icc_profile") and not b.info.get("icc_profile"):
                problems.append(f"{src.name}: ICC profile lost")
            if b.info.get("thumbnails") or b.info.get("depth_images") or b.info.get("aux"):
                problems.append(f"{src.name}: a second picture survived")
    assert problems == []
    assert len(written) >= 10, f"only {len(written)} real files written"


def test_icc_profile_date_zeroed() -> None:
    """A colr/prof profile keeps its colour data; its creation date is zeroed."""
    dated = bytearray(srgb_icc())
    dated[24:36] = struct.pack(">6H", 2021, 6, 15, 13, 45, 10)
    buf = io.BytesIO()
    Image.fromarray(textured(32, 32)).save(buf, "HEIF", quality=80, icc_profile=bytes(dated))
    stripped = strip_heif(buf.getvalue())
    assert stripped is not None
    with Image.open(io.BytesIO(stripped)) as im:
        kept = im.info["icc_profile"]
    assert kept[24:36] == bytes(12) and kept[128:] == bytes(dated)[128:]


def test_an_image_sequence_beside_the_primary_picture_is_dropped_and_said(
    heic: Path, tmp_path: Path
) -> None:
    """pillow-heif decodes only the primary picture of a HEIF: a sequence track beside it (here
    a movie box with a marker, appended) cannot be searched, so it goes, and the report says
    so instead of keeping frames nobody looked at."""
    movie = box(b"moov", full_box(b"mvhd", 0, 0, bytes(96)) + box(b"udta", BOX_MARKER))
    src, dst = tmp_path / "sequence.heic", tmp_path / "out" / "sequence.heic"
    src.write_bytes(heic.read_bytes() + movie)

    result = veil.clean(src, dst, faces=False)

    assert result.status == "cleaned", result.error
    assert "ImageSequence" in result.metadata_removed
    out = dst.read_bytes()
    assert BOX_MARKER not in out and all(found.type != b"moov" for found in boxes(out))
    assert _same_picture(heic, dst)
