"""Identifying metadata is stripped from every format, the colour profile survives, and
`veil scan` names what it finds in plain words.

Each test file carries as much as its container can hold: EXIF with a GPS position,
BodySerialNumber, CameraOwnerName, Artist, Make/Model, a (Nikon) MakerNote with its own serial
and an IFD1 thumbnail of the face; XMP; IPTC (APP13 in JPEG, the IPTC tag in TIFF); a JPEG COM
or GIF comment; PNG tEXt/zTXt/iTXt chunks; an sRGB ICC profile. Outputs are checked with veil's
own reader, with a raw byte search for the planted strings, and with exiftool.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

import veil
from helpers import (
    ARTIST,
    COMMENT,
    MAKE,
    MAKER_SERIAL,
    MODEL,
    OWNER,
    SERIAL,
    XMP,
    backdrop,
    exif_block,
    exiftool_read,
    file_hashes,
    identifying_tags,
    iptc_block,
    jpeg_with_segments,
    save_png_with_text,
    scene,
    srgb_icc,
    thumbnail_jpeg,
)
from veil.formats.metadata import read_fields
from veil.result import Result

EXIF_NAMES = {
    "GPS",
    "BodySerialNumber",
    "CameraOwnerName",
    "Artist",
    "Make",
    "Model",
    "MakerNote",
}
SECRETS = [SERIAL, OWNER, ARTIST, MAKE, MODEL, MAKER_SERIAL, COMMENT, "Amsterdam"]


def _jpeg(path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(scene()).save(
        buf, "JPEG", quality=90, exif=exif_block(), xmp=XMP, comment=COMMENT, icc_profile=srgb_icc()
    )
    path.write_bytes(jpeg_with_segments(buf.getvalue(), [(0xED, iptc_block())]))


def _png(path: Path) -> None:
    save_png_with_text(Image.fromarray(scene()), path, exif=exif_block(), icc_profile=srgb_icc())


def _webp(lossless: bool):
    def save(path: Path) -> None:
        Image.fromarray(scene()).save(
            path,
            "WEBP",
            lossless=lossless,
            quality=90,
            exif=exif_block(),
            xmp=XMP,
            icc_profile=srgb_icc(),
        )

    return save


def _tiff(path: Path) -> None:
    # Pillow merges an EXIF block into the TIFF's own IFD0 (Exif and GPS IFDs as sub-IFDs).
    exif = Image.Exif()
    exif.load(exif_block(header=False, thumbnail=False))
    iptc = iptc_block()
    exif[0x02BC] = XMP  # XMP tag
    exif[0x83BB] = iptc[iptc.index(b"\x1c") :]  # IPTC-NAA record
    exif[0x010E] = "Jane in her garden, Amsterdam"  # ImageDescription
    Image.fromarray(scene()).save(path, "TIFF", exif=exif, icc_profile=srgb_icc())


def _heif_like(fmt: str):
    def save(path: Path) -> None:
        Image.fromarray(scene()).save(
            path, fmt, quality=85, exif=exif_block(), xmp=XMP, icc_profile=srgb_icc()
        )

    return save


def _gif(path: Path) -> None:
    Image.fromarray(scene()).quantize(256).save(path, "GIF", comment=COMMENT)


@dataclass(frozen=True)
class Planted:
    id: str
    ext: str
    save: object
    #: names veil must report (scan, metadata_removed) for the input
    names: frozenset[str]
    #: exiftool keys (regex) that must be present in the input, absent from the output
    oracle: tuple[str, ...]
    icc: bool = True


_EXIF_ORACLE = (
    r"^EXIF:GPS:GPSLatitude$",
    r"^EXIF:ExifIFD:SerialNumber$",
    r"^EXIF:ExifIFD:OwnerName$",
    r"^EXIF:IFD0:Artist$",
    r"^EXIF:IFD0:Make$",
    r"^EXIF:IFD0:Model$",
    r"^MakerNotes:",
)
_THUMB = (r"^EXIF:IFD1:ThumbnailImage$",)
_XMP = (r"^XMP:",)

CASES = [
    Planted(
        "jpeg",
        ".jpg",
        _jpeg,
        frozenset(EXIF_NAMES | {"Thumbnail", "XMP", "IPTC", "Comment"}),
        _EXIF_ORACLE + _THUMB + _XMP + (r"^IPTC:", r"^File:Comment$"),
    ),
    Planted(
        "png",
        ".png",
        _png,
        frozenset(EXIF_NAMES | {"Thumbnail", "XMP", "Text:Author", "Text:Comment"}),
        _EXIF_ORACLE + _THUMB + _XMP + (r"^PNG:Author$", r"^PNG:Comment$", r"^PNG:Location$"),
    ),
    Planted(
        "webp-lossy",
        ".webp",
        _webp(False),
        frozenset(EXIF_NAMES | {"Thumbnail", "XMP"}),
        _EXIF_ORACLE + _THUMB + _XMP,
    ),
    Planted(
        "webp-lossless",
        ".webp",
        _webp(True),
        frozenset(EXIF_NAMES | {"Thumbnail", "XMP"}),
        _EXIF_ORACLE + _THUMB + _XMP,
    ),
    Planted(
        "tiff",
        ".tif",
        _tiff,
        frozenset(EXIF_NAMES | {"XMP", "IPTC", "ImageDescription"}),
        _EXIF_ORACLE + _XMP + (r"^IPTC:", r"^EXIF:IFD0:ImageDescription$"),
    ),
    Planted(
        "heic",
        ".heic",
        _heif_like("HEIF"),
        frozenset(EXIF_NAMES | {"Thumbnail", "XMP"}),
        _EXIF_ORACLE + _THUMB + _XMP,
    ),
    Planted(
        "avif",
        ".avif",
        _heif_like("AVIF"),
        frozenset(EXIF_NAMES | {"Thumbnail", "XMP"}),
        _EXIF_ORACLE + _THUMB + _XMP,
    ),
    Planted("gif", ".gif", _gif, frozenset({"Comment"}), (r"^File:Comment$",), icc=False),
]
IDS = [c.id for c in CASES]


@dataclass
class Cleaned:
    src: Path
    dst: Path
    result: Result


_CACHE: dict[tuple[str, bool], Cleaned] = {}
# Two paths through every format: a face obscured (re-encoded from pixels) and nothing
# obscured (`--faces off`: the container is rewritten around the untouched image data).
PATHS = [True, False]
PATH_IDS = ["reencoded", "rewritten"]


@pytest.fixture(scope="module")
def cleaned(tmp_path_factory: pytest.TempPathFactory):
    """Build each planted file once per module and clean it once per path (HEIC/AVIF encode
    slowly)."""

    def get(case: Planted, faces: bool = True) -> Cleaned:
        if (case.id, faces) not in _CACHE:
            root = tmp_path_factory.mktemp(case.id)
            src = root / "in" / f"photo{case.ext}"
            src.parent.mkdir()
            case.save(src)
            result = veil.clean(src, root / "out" / src.name, faces=faces)
            _CACHE[case.id, faces] = Cleaned(src, root / "out" / src.name, result)
        return _CACHE[case.id, faces]

    yield get
    _CACHE.clear()


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_fixture_really_carries_the_metadata(case: Planted, cleaned) -> None:
    """Guards the tests below: veil's reader sees every planted item in the input."""
    with Image.open(cleaned(case).src) as im:
        names = {f.name for f in read_fields(im)}
    assert case.names <= names, f"not seen in input: {sorted(case.names - names)}"


@pytest.mark.parametrize("faces", PATHS, ids=PATH_IDS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_clean_strips_identifying_metadata(case: Planted, faces: bool, cleaned) -> None:
    c = cleaned(case, faces)
    assert c.result.status == "cleaned", c.result.error
    assert case.names <= set(c.result.metadata_removed)
    with Image.open(c.dst) as im:
        assert read_fields(im) == []
        exif = im.getexif()
        assert 0x8825 not in exif and 0x927C not in exif.get_ifd(0x8769)
        assert not {"xmp", "comment", "photoshop", "XML:com.adobe.xmp"} & set(im.info)
    data = c.dst.read_bytes()
    for secret in SECRETS:
        assert secret.encode() not in data, f"{secret!r} is still in the output bytes"
    assert thumbnail_jpeg()[-202:-2] not in data, "the EXIF thumbnail survived"
    assert b"ns.adobe.com/xap" not in data and b"adobe:ns:meta" not in data


@pytest.mark.parametrize("faces", PATHS, ids=PATH_IDS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_exiftool_finds_nothing_identifying(
    case: Planted, faces: bool, cleaned, exiftool: str
) -> None:
    c = cleaned(case, faces)
    before = exiftool_read(c.src)[0]
    for pattern in case.oracle:  # the oracle sees what was planted...
        assert any(re.search(pattern, key) for key in before), f"{pattern} not in input"
    assert c.result.status == "cleaned", c.result.error
    after = exiftool_read(c.dst)[0]
    left = identifying_tags(after)
    assert left == [], f"identifying tags survive: { {k: after[k] for k in left} }"
    for pattern in case.oracle:  # ...and none of it after cleaning
        assert not any(re.search(pattern, key) for key in after)
    assert not [k for k in after if re.search(r"GPS|Serial|Owner|MakerNote|^XMP|^IPTC", k)]


@pytest.mark.parametrize("faces", PATHS, ids=PATH_IDS)
@pytest.mark.parametrize("case", [c for c in CASES if c.icc], ids=[c.id for c in CASES if c.icc])
def test_icc_profile_survives(case: Planted, faces: bool, cleaned) -> None:
    c = cleaned(case, faces)
    assert c.result.status == "cleaned", c.result.error
    original = srgb_icc()
    with Image.open(c.dst) as im:
        kept = im.info.get("icc_profile")
    assert kept, "the colour profile was dropped"
    # Colour data (the tag table and tags) unchanged; only the header's creation date and the
    # profile ID that hashes it may be neutralised.
    assert kept[128:] == original[128:]
    assert kept[:24] == original[:24] and kept[36:84] == original[36:84]
    profile = ImageCms.ImageCmsProfile(io.BytesIO(kept))
    assert ImageCms.getProfileDescription(profile).strip() == "sRGB built-in"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_nothing_obscured_keeps_every_pixel(case: Planted, cleaned) -> None:
    """METRICS.md fidelity: with no face obscured, every frame decodes exactly as before."""
    c = cleaned(case, faces=False)
    assert c.result.status == "cleaned", c.result.error
    assert not c.result.faces
    with Image.open(c.src) as a, Image.open(c.dst) as b:
        assert getattr(a, "n_frames", 1) == getattr(b, "n_frames", 1)
        for index in range(getattr(a, "n_frames", 1)):
            a.seek(index)
            b.seek(index)
            before = np.asarray(ImageOps.exif_transpose(a).convert("RGBA"))
            after = np.asarray(ImageOps.exif_transpose(b).convert("RGBA"))
            np.testing.assert_array_equal(after, before)


def test_faces_off_still_strips_metadata(tmp_path: Path, cli) -> None:
    src = tmp_path / "in" / "a.jpg"
    src.parent.mkdir()
    _jpeg(src)
    run = cli("clean", src, "-o", tmp_path / "out", "--faces", "off")
    assert run.code == 0, run.err
    with Image.open(tmp_path / "out" / "a.jpg") as im:
        assert read_fields(im) == []
    # and the face is left alone
    assert "0 faces obscured" in run.err


# -- veil scan -----------------------------------------------------------------------------
def test_scan_names_place_device_and_serial(tmp_path: Path, cli) -> None:
    src = tmp_path / "a.jpg"
    _jpeg(src)
    before = file_hashes(tmp_path)

    run = cli("scan", src)

    assert run.code == 0, run.err
    text = run.out
    # GPS position in plain words, not tag soup.
    assert re.search(r"52\.373\d*° N, 4\.892\d*° E", text), text
    for value in (MAKE, MODEL, SERIAL, OWNER, ARTIST):
        assert value in text
    lines = {line.split()[0] for line in text.splitlines()[1:] if line.strip()}
    assert {"place", "device", "serial", "person"} <= lines
    faces_line = r"faces\s+1 found, \d+ px tall, detector score 0\.\d\d: would be obscured"
    assert re.search(faces_line, text)
    assert "Thumbnail" in text and "MakerNote" in text
    assert file_hashes(tmp_path) == before, "scan must not write anything"


def test_scan_json_lists_fields(tmp_path: Path, cli) -> None:
    src = tmp_path / "a.jpg"
    _jpeg(src)
    run = cli("scan", "--json", "--faces", "off", src)
    assert run.code == 0, run.err
    (report,) = json.loads(run.out)
    assert report["path"] == str(src)
    assert (report["format"], report["width"], report["height"]) == ("JPEG", 768, 512)
    fields = {f["name"]: f for f in report["metadata"]}
    assert EXIF_NAMES | {"Thumbnail", "XMP", "IPTC", "Comment"} <= set(fields)
    assert fields["GPS"]["category"] == "place"
    assert fields["BodySerialNumber"]["category"] == "serial"
    assert fields["BodySerialNumber"]["value"] == SERIAL
    assert report["faces"] == []  # --faces off


def test_scan_api_agrees_with_clean(tmp_path: Path) -> None:
    src = tmp_path / "a.png"
    _png(src)
    report = veil.scan(src, faces=False)
    result = veil.clean(src, tmp_path / "out" / "a.png", faces=False)
    assert sorted({f.name for f in report.metadata}) == result.metadata_removed


def test_scan_of_cleaned_output_finds_nothing(tmp_path: Path, cli) -> None:
    src = tmp_path / "in" / "a.jpg"
    src.parent.mkdir()
    _jpeg(src)
    assert cli("clean", src, "-o", tmp_path / "out").code == 0
    run = cli("scan", tmp_path / "out" / "a.jpg")
    assert run.code == 0
    assert "nothing identifying found" in run.out


def test_scan_folder_reports_each_file(tmp_path: Path, cli) -> None:
    (tmp_path / "sub").mkdir()
    _jpeg(tmp_path / "a.jpg")
    _png(tmp_path / "sub" / "b.png")
    (tmp_path / "sub" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    run = cli("scan", "--json", "--faces", "off", tmp_path)
    assert run.code == 1, "a file that cannot be read makes scan exit 1"
    reports = {Path(r["path"]).name: r for r in json.loads(run.out)}
    assert set(reports) == {"a.jpg", "b.png", "broken.png"}
    assert reports["broken.png"]["error"] and not reports["a.jpg"]["error"]
    assert "GPS" in {f["name"] for f in reports["b.png"]["metadata"]}
    listed = veil.scan(tmp_path, faces=False)
    assert isinstance(listed, list) and len(listed) == 3


def test_scan_lists_a_jpeg_xmp_packet_once(tmp_path: Path) -> None:
    """Pillow exposes JPEG XMP both as info["xmp"] and as the raw APP1 segment: one finding."""
    src = tmp_path / "x.jpg"
    Image.fromarray(backdrop(60, 80)).save(src, "JPEG", xmp=XMP)
    report = veil.scan(src, faces=False)
    assert isinstance(report, veil.ScanReport)
    assert [f.name for f in report.metadata].count("XMP") == 1
