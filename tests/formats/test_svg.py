"""SVG drawings (`veil.formats.svg`): what an SVG reveals is listed and left out, embedded
pictures are cleaned as images, a face drawn in the vectors is refused, and hostile XML is
refused without being expanded or fetched.

Every SVG is made here: one as Inkscape writes it, one embedding the astronaut as a JPEG
with identifying EXIF, one linking files and URLs, one drawing the astronaut's face as
48 x 60 coloured squares (a traced photo), and hostile or broken ones.
"""

from __future__ import annotations

import base64
import io
import json
import re
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("defusedxml", reason="the svg extra is not installed")
pytest.importorskip("resvg_py", reason="the svg extra is not installed")

import resvg_py

from helpers import (
    ASTRONAUT_FACE,
    OWNER,
    SERIAL,
    astronaut,
    central,
    crop,
    exif_block,
    exiftool_path,
    exiftool_read,
    identifying_tags,
    ssim_grey,
)
from veil.cli import main
from veil.errors import CorruptInput, UnsupportedFormat
from veil.formats import DOCUMENT_HANDLERS, HANDLERS, SvgHandler, handler_for, handler_for_bytes
from veil.pipeline import Pipeline
from veil.settings import Settings

SVG = DOCUMENT_HANDLERS[0]

INKSCAPE = b"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<!-- Created with Inkscape (http://www.inkscape.org/) by Jane Doe -->

<svg
   width="120mm"
   height="80mm"
   viewBox="0 0 120 80"
   version="1.1"
   id="svg1"
   inkscape:version="1.3.2 (091e20e, 2023-11-25)"
   sodipodi:docname="jane-doe-birthday.svg"
   inkscape:export-filename="/home/janedoe/Pictures/birthday.png"
   inkscape:export-xdpi="96"
   xmlns:inkscape="http://www.inkscape.org/namespaces/inkscape"
   xmlns:sodipodi="http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd"
   xmlns="http://www.w3.org/2000/svg"
   xmlns:svg="http://www.w3.org/2000/svg"
   xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
   xmlns:cc="http://creativecommons.org/ns#"
   xmlns:dc="http://purl.org/dc/elements/1.1/">
  <title id="title1">Birthday card for Jane Doe</title>
  <desc id="desc1">Drawn at 12 Elm Street</desc>
  <sodipodi:namedview id="namedview1" pagecolor="#ffffff" inkscape:zoom="1.2"
     inkscape:window-width="1920" inkscape:current-layer="layer1" />
  <metadata id="metadata1">
    <rdf:RDF>
      <cc:Work rdf:about="">
        <dc:creator><cc:Agent><dc:title>Jane Doe</dc:title></cc:Agent></dc:creator>
        <dc:date>2024-05-01</dc:date>
        <dc:rights><cc:Agent><dc:title>Jane Doe, all rights reserved</dc:title></cc:Agent>
        </dc:rights>
      </cc:Work>
    </rdf:RDF>
  </metadata>
  <defs id="defs1">
    <linearGradient id="sky"><stop offset="0" stop-color="#3366cc"/>
      <stop offset="1" stop-color="#99ccff"/></linearGradient>
  </defs>
  <g inkscape:label="Layer 1" inkscape:groupmode="layer" id="layer1">
    <!-- the cake -->
    <rect style="fill:url(#sky);stroke:#000000;stroke-width:0.5" width="120" height="40"
       x="0" y="0" id="rect1" sodipodi:nodetypes="cccc" />
    <circle cx="60" cy="55" r="15" fill="#cc3333" id="circle1" />
    <path d="M 10,70 L 110,70" stroke="#333333" stroke-width="2" id="path1" />
  </g>
</svg>
"""
#: What the Inkscape drawing reveals, each a string that must be gone from the output.
SECRETS = (b"Jane", b"janedoe", b"Elm Street", b"2024-05-01", b"Inkscape", b"1920")


def _jpeg(pixels: np.ndarray[Any, Any], exif: bytes | None = None) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=92, **({"exif": exif} if exif else {}))
    return out.getvalue()


def _embedding(picture: bytes, mime: str = "image/jpeg", attribute: str = "xlink:href") -> bytes:
    """A drawing with a frame and ``picture`` placed in it (scaled 0.8, moved)."""
    uri = f"data:{mime};base64,{base64.b64encode(picture).decode()}"
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        'width="480" height="480" viewBox="0 0 480 480">'
        '<rect width="480" height="480" fill="#eeeeee"/>'
        f'<image x="20" y="30" width="409.6" height="409.6" {attribute}="{uri}"/>'
        "</svg>"
    ).encode()


def _pictures(svg: bytes) -> list[bytes]:
    """The embedded pictures of ``svg``, in order, as bytes."""
    found = re.findall(rb'href="data:[^;,"]*;base64,([^"]*)"', svg)
    return [base64.b64decode(b) for b in found]


def _drawn_face(columns: int = 48) -> bytes:
    """The astronaut's head drawn as coloured squares: a face in vectors, no picture."""
    x1, y1, x2, y2 = 140, 10, 310, 230
    rows = round(columns * (y2 - y1) / (x2 - x1))
    head = Image.fromarray(astronaut()[y1:y2, x1:x2]).resize((columns, rows), Image.BILINEAR)
    small = np.asarray(head)
    squares = "".join(
        f'<rect x="{c}" y="{r}" width="1.05" height="1.05" '
        f'fill="#{small[r, c, 0]:02x}{small[r, c, 1]:02x}{small[r, c, 2]:02x}"/>'
        for r in range(rows)
        for c in range(columns)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{columns * 8}" height="{rows * 8}" '
        f'viewBox="0 0 {columns} {rows}">{squares}</svg>'
    ).encode()


def _render(svg: bytes) -> np.ndarray[Any, Any]:
    """An SVG drawn by resvg as it is (the tests' own eyes), RGB; sizes in mm (which
    resvg_py refuses) as four pixels a millimetre, the same for an input and its output."""
    svg = re.sub(
        rb'(width|height)="([0-9.]+)mm"',
        lambda m: b'%s="%d"' % (m[1], 4 * float(m[2])),
        svg,
        count=2,
    )
    png = resvg_py.svg_to_bytes(svg_string=svg.decode(), background="#ffffff")
    return np.asarray(Image.open(io.BytesIO(bytes(png))).convert("RGB"))


@pytest.fixture(scope="module")
def pipe() -> Pipeline:
    return Pipeline()


# -- what an SVG reveals ----------------------------------------------------------------------
def test_scan_lists_what_an_inkscape_drawing_reveals(pipe: Pipeline, tmp_path: Path) -> None:
    src = tmp_path / "card.svg"
    src.write_bytes(INKSCAPE)
    report = pipe.scan(src)
    assert report.error is None and report.format == "SVG"
    assert (report.width, report.height) == (454, 302)  # 120 x 80 mm at 96 dpi
    found = {f.name: f for f in report.metadata}
    assert found["dc:creator"].value == "Jane Doe" and found["dc:creator"].category == "person"
    assert found["dc:rights"].category == "person"
    assert found["dc:date"].category == "time"
    assert found["inkscape:export-filename"].category == "person"  # a home folder names
    assert found["sodipodi:docname"].value == "jane-doe-birthday.svg"
    assert found["inkscape:version"].category == "device"
    assert found["title"].value == "Birthday card for Jane Doe"
    assert found["desc"].value == "Drawn at 12 Elm Street"
    assert "by Jane Doe" in found["comment"].value and "(and 1 more)" in found["comment"].value
    assert {"sodipodi:namedview", "inkscape:label", "sodipodi:nodetypes"} <= set(found)
    assert not report.faces and report.refused is None


def test_clean_leaves_out_what_it_listed_and_draws_the_same(pipe: Pipeline, tmp_path: Path) -> None:
    src, dst = tmp_path / "card.svg", tmp_path / "out" / "card.svg"
    src.write_bytes(INKSCAPE)
    result = pipe.run(src, dst)
    assert result.status == "cleaned", result.error
    assert {"dc:creator", "inkscape:export-filename", "title", "comment"} <= set(
        result.metadata_removed
    )
    out = dst.read_bytes()
    for secret in SECRETS:
        assert secret not in out, secret
    assert b"<!--" not in out and b"metadata" not in out
    assert src.read_bytes() == INKSCAPE  # the input is never changed
    again = SVG.parse(out)
    assert again.findings == [] and again.rasters == []
    # Nothing visible was removed: the drawing looks the same, gradient included.
    before, after = _render(INKSCAPE), _render(out)
    assert before.shape == after.shape
    assert np.abs(before.astype(int) - after.astype(int)).max() <= 1


@pytest.mark.skipif(exiftool_path() is None, reason="exiftool is not installed")
def test_exiftool_finds_nothing_identifying_in_the_output(pipe: Pipeline, tmp_path: Path) -> None:
    src, dst = tmp_path / "card.svg", tmp_path / "out" / "card.svg"
    src.write_bytes(INKSCAPE)
    assert pipe.run(src, dst).status == "cleaned"
    before, after = exiftool_read(src, dst)
    assert identifying_tags(before), before  # the oracle sees the creator, title, ...
    assert identifying_tags(after) == [], after
    assert "Jane" not in json.dumps(after)


# -- embedded pictures -------------------------------------------------------------------------
def test_an_embedded_photo_is_cleaned_at_its_own_resolution(pipe: Pipeline, tmp_path: Path) -> None:
    original = _jpeg(astronaut(), exif_block())
    src, dst = tmp_path / "poster.svg", tmp_path / "out" / "poster.svg"
    src.write_bytes(_embedding(original))
    result = pipe.run(src, dst)
    assert result.status == "cleaned", result.error
    [face] = result.faces
    assert face.image == 1  # in the embedded picture's own pixels
    fx1, fy1, fx2, fy2 = face.box
    assert fx1 < ASTRONAUT_FACE[2] and fx2 > ASTRONAUT_FACE[0]
    assert fy1 < ASTRONAUT_FACE[3] and fy2 > ASTRONAUT_FACE[1]
    assert {"image1:GPS", "image1:BodySerialNumber", "image1:CameraOwnerName"} <= set(
        result.metadata_removed
    )
    row = json.loads(result.to_json())
    assert row["faces"][0]["image"] == 1
    [picture] = _pictures(dst.read_bytes())
    assert picture[:3] == b"\xff\xd8\xff"  # JPEG, as it was embedded
    assert b'href="data:image/jpeg;base64,' in dst.read_bytes()
    with Image.open(io.BytesIO(picture)) as im:
        assert not im.getexif() and "exif" not in im.info
        cleaned = np.asarray(im.convert("RGB"))
    assert SERIAL.encode() not in picture and OWNER.encode() not in picture
    face_area = central(ASTRONAUT_FACE)
    assert ssim_grey(crop(cleaned, face_area), crop(astronaut(), face_area)) < 0.6


def test_scan_lists_the_embedded_pictures_faces_and_metadata(
    pipe: Pipeline, tmp_path: Path
) -> None:
    src = tmp_path / "poster.svg"
    src.write_bytes(_embedding(_jpeg(astronaut(), exif_block()), attribute="href"))
    report = pipe.scan(src)
    assert report.error is None
    [face] = report.faces
    assert face.image == 1 and face.seen == "visible"
    names = {f.name for f in report.metadata}
    assert {"image1:GPS", "image1:BodySerialNumber"} <= names


def test_an_embedded_picture_veil_cannot_clean_stops_the_drawing(
    pipe: Pipeline, tmp_path: Path
) -> None:
    inner = b'<svg xmlns="http://www.w3.org/2000/svg"><circle r="5"/></svg>'
    damaged = _jpeg(astronaut())[:400]
    for name, svg, status in (
        ("nested.svg", _embedding(inner, "image/svg+xml"), "skipped"),
        ("damaged.svg", _embedding(damaged), "failed"),
    ):
        src, dst = tmp_path / name, tmp_path / "out" / name
        src.write_bytes(svg)
        result = pipe.run(src, dst)
        assert result.status == status and "embedded picture 1" in str(result.error), result
        assert not dst.exists()


# -- links and hostile XML ---------------------------------------------------------------------
LINKING = b"""<?xml version="1.0"?>
<?xml-stylesheet type="text/css" href="https://tracker.example/style.css"?>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"
     width="100" height="100">
  <style>rect { fill: url(https://tracker.example/paint.svg#p) } circle { fill: url(#g) }</style>
  <defs><radialGradient id="g"><stop offset="0" stop-color="red"/></radialGradient></defs>
  <image width="10" height="10" href="https://tracker.example/pixel.png?user=jane"/>
  <use xlink:href="file:///home/janedoe/shapes.svg#star"/>
  <a href="https://janedoe.example/"><rect width="50" height="50"
     filter="url(/home/janedoe/filters.svg#blur)"/></a>
  <circle cx="70" cy="70" r="20"/>
  <script>fetch("https://tracker.example/opened")</script>
  <foreignObject width="10" height="10"><div xmlns="http://www.w3.org/1999/xhtml">Jane</div>
  </foreignObject>
</svg>
"""


def test_links_are_removed_and_reported_and_nothing_is_fetched(
    pipe: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tried: list[object] = []

    def refuse(self: socket.socket, address: object) -> None:
        tried.append(address)
        raise OSError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    src, dst = tmp_path / "links.svg", tmp_path / "out" / "links.svg"
    src.write_bytes(LINKING)
    report = pipe.scan(src)
    links = [f.value for f in report.metadata if f.name == "ExternalReference"]
    assert any("tracker.example/style.css" in v for v in links), report.metadata
    assert {"script", "foreignObject"} <= {f.name for f in report.metadata}
    result = pipe.run(src, dst)
    assert result.status == "cleaned", result.error
    assert "ExternalReference" in result.metadata_removed
    out = dst.read_bytes()
    for gone in (b"tracker", b"janedoe", b"file:", b"script", b"Jane", b"foreignObject"):
        assert gone not in out, gone
    assert b"url(#g)" in out  # a reference inside the document stays
    assert tried == []


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE svg [
  <!ENTITY a "ha">
  <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
  <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
  <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
]>
<svg xmlns="http://www.w3.org/2000/svg"><text>&d;</text></svg>
"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE svg [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<svg xmlns="http://www.w3.org/2000/svg"><text>&secret;</text></svg>
"""


@pytest.mark.parametrize(
    ("svg", "says"),
    [
        (BILLION_LAUGHS, "entities"),
        (EXTERNAL_ENTITY, "entities"),
        (INKSCAPE[: len(INKSCAPE) // 2], "not well-formed|cut short"),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"><rect', "cut short"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'><rect></svg>", "not well-formed"),
        (b'<?xml version="1.0"?>\n<!-- a note -->\n<html><body/></html>', "root element"),
    ],
    ids=["billion-laughs", "external-entity", "truncated", "cut-short", "mismatched", "html"],
)
def test_hostile_or_broken_xml_is_refused_in_words(
    pipe: Pipeline, tmp_path: Path, svg: bytes, says: str
) -> None:
    with pytest.raises(CorruptInput, match=says):
        SVG.parse(svg)
    src, dst = tmp_path / "bad.svg", tmp_path / "out" / "bad.svg"
    src.write_bytes(svg)
    result = pipe.run(src, dst)
    assert result.status == "failed" and result.error is not None
    assert result.error.startswith("CorruptInput:") and "ha" * 10 not in result.error
    assert not dst.exists()
    assert pipe.scan(src).error is not None


def test_content_not_svg_is_not_claimed() -> None:
    assert SVG.accept(INKSCAPE[:64]) and SVG.accept(b"\xef\xbb\xbf  <svg width='1'>")
    assert SVG.accept(b'<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.')
    for other in (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0">',
        b"<!DOCTYPE html><html><body><svg>",
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/">',
        b"<svgfoo/>",
        b"svg but not XML",
    ):
        assert not SVG.accept(other), other
    with pytest.raises(CorruptInput):
        handler_for_bytes(b"this is not a drawing at all" * 3, ".svg")
    # No still handler claims an SVG, and SVG claims no still's content.
    assert not any(h.accept(INKSCAPE[:64]) for h in HANDLERS)


def test_an_svg_named_as_another_kind_is_cleaned_as_svg(pipe: Pipeline, tmp_path: Path) -> None:
    src, dst = tmp_path / "card.png", tmp_path / "out" / "card.png"
    src.write_bytes(INKSCAPE)
    assert isinstance(handler_for(src), SvgHandler)
    result = pipe.run(src, dst)
    assert result.status == "cleaned"
    assert result.content == "the content is SVG, the extension says PNG: cleaned as SVG"


# -- faces drawn in the vectors ----------------------------------------------------------------
def test_a_face_drawn_in_vectors_is_refused_and_nothing_written(
    pipe: Pipeline, tmp_path: Path
) -> None:
    src, dst = tmp_path / "portrait.svg", tmp_path / "out" / "portrait.svg"
    src.write_bytes(_drawn_face())
    result = pipe.run(src, dst)
    assert result.status == "skipped", result
    assert "face is drawn in the SVG's vector shapes" in str(result.error)
    assert "export a PNG and clean that" in str(result.error)
    assert not dst.exists()
    report = pipe.scan(src)
    assert report.error is None and report.refused is not None
    assert "vector shapes" in report.refused
    # An embedded face beside the drawing's own shapes is the picture's, not a drawn one.
    src.write_bytes(_embedding(_jpeg(astronaut())))
    assert pipe.run(src, dst).status == "cleaned"


def test_with_faces_off_a_drawn_face_is_not_looked_for(tmp_path: Path) -> None:
    src, dst = tmp_path / "portrait.svg", tmp_path / "out" / "portrait.svg"
    src.write_bytes(_drawn_face())
    assert Pipeline(Settings(faces=False)).run(src, dst).status == "cleaned"


# -- the doors ---------------------------------------------------------------------------------
def test_without_the_extra_an_svg_is_skipped_with_the_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("veil.formats.svg.available", lambda: False)
    src, dst = tmp_path / "card.svg", tmp_path / "out" / "card.svg"
    src.write_bytes(INKSCAPE)
    result = Pipeline(Settings(faces=False)).run(src, dst)
    assert result.status == "skipped" and "svg extra" in str(result.error)
    assert "install" in str(result.error) and not dst.exists()


def test_clean_bytes_cleans_an_svg_member_as_the_dataset_does(pipe: Pipeline) -> None:
    encoded = pipe.clean_bytes(_embedding(_jpeg(astronaut(), exif_block())), ".svg", "0001.svg")
    assert [f.image for f in encoded.faces] == [1]
    assert not encoded.unchanged and b"Jane" not in encoded.data
    [picture] = _pictures(encoded.data)
    with Image.open(io.BytesIO(picture)) as im:
        assert not im.getexif()


def test_cli_scan_and_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in" / "card.svg"
    src.parent.mkdir()
    src.write_bytes(INKSCAPE)
    (tmp_path / "in" / "portrait.svg").write_bytes(_drawn_face())
    assert main(["scan", str(src.parent)]) == 0
    shown = capsys.readouterr().out
    assert "dc:creator" in shown and "Jane Doe" in shown
    assert "refused" in shown and "vector shapes" in shown
    report = tmp_path / "report.jsonl"
    code = main(["clean", str(src.parent), "-o", str(tmp_path / "out"), "--report", str(report)])
    assert code == 0  # a skipped file, with its reason, is no failure
    rows = {Path(r["input"]).name: r for r in map(json.loads, report.read_text().splitlines())}
    assert rows["card.svg"]["status"] == "cleaned"
    assert rows["portrait.svg"]["status"] == "skipped"
    assert (tmp_path / "out" / "card.svg").exists()
    assert not (tmp_path / "out" / "portrait.svg").exists()


def test_unsupported_embedded_data_elsewhere_is_left_out(pipe: Pipeline) -> None:
    svg = (
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
        b'<a href="data:text/html;base64,PGgxPkphbmU8L2gxPg=="><rect width="5" height="5"/></a>'
        b'<style>@import url("https://tracker.example/x.css"); rect { fill: red }</style>'
        b'<rect width="5" height="5" style="fill:u\\72l(https://tracker.example/y)"/>'
        b"</svg>"
    )
    drawing = SVG.parse(svg)
    names = {f.name for f in drawing.findings}
    assert {"EmbeddedData", "style"} <= names
    out = drawing.write()
    assert b"tracker" not in out and b"data:" not in out
    assert SVG.parse(out).findings == []


def test_without_resvg_the_drawing_cannot_be_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("veil.formats.svg.available", lambda: False)
    with pytest.raises(UnsupportedFormat, match="svg extra"):
        SVG.parse(INKSCAPE)


# -- verification ------------------------------------------------------------------------------
def test_verify_checks_the_drawing_and_each_embedded_picture(tmp_path: Path) -> None:
    pytest.importorskip("dlib", reason="the verify extra (dlib-bin) is not installed")
    pipe = Pipeline(Settings(verify=True))
    src, dst = tmp_path / "poster.svg", tmp_path / "out" / "poster.svg"
    src.write_bytes(_embedding(_jpeg(astronaut(), exif_block())))
    result = pipe.run(src, dst)
    assert result.status == "cleaned", result.error
    assert result.verification is not None and result.verification.verdict == "protected"
    assert result.verification.faces_checked >= 1
    checked = pipe.verify_file(src, dst)
    assert checked.status == "protected", checked
    # An output that still holds the original picture (faces, EXIF) is a leak, and the leak
    # says which picture it is in.
    leaking = tmp_path / "leaking.svg"
    leaking.write_bytes(src.read_bytes().replace(b"<rect", b'<rect id="x"'))
    checked = pipe.verify_file(src, leaking)
    assert checked.status == "leak" and checked.verification is not None
    details = [leak.detail for leak in checked.verification.leaks]
    assert any(d.startswith("embedded picture 1:") for d in details), details
