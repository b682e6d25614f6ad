"""SVG drawings: parsed without DTD entities (defusedxml), rebuilt by an allowlist, drawn by
resvg to look for faces.

An SVG names people in ways a picture's pixels do not: RDF/Dublin Core ``<metadata>``
(creator, rights, dates), ``<title>`` and ``<desc>``, comments, editors' own namespaces
(``sodipodi:docname``, ``inkscape:export-filename="/home/jane/..."``, Adobe Illustrator's
``i:``/``x:`` data), links to other files or URLs (a path names its user; a URL is fetched
when the drawing is shown, a tracking beacon) and embedded raster pictures, which carry their
own EXIF and can show faces. So the output is not the input with parts removed but a new
document holding only SVG 1.1/2 drawing elements and their geometry and presentation
attributes (`_ELEMENTS`, `_ATTRIBUTES`); everything left out is listed as a `MetaField`.

Kept, because they are the drawing: shapes, text, gradients, filters, ``style`` (with every
``url(...)`` that is not a ``#fragment`` of the document replaced by ``none``), ``id`` and
``class``, ``href``\\ s to ``#fragments``. Embedded pictures (``data:`` URIs of ``<image>``
and ``<feImage>``) become `Raster` slots that the pipeline cleans as images and fills back
in (`Drawing.write`). Left out, besides metadata: scripts and ``on*`` handlers,
``foreignObject`` (HTML, anything), animation (veil checks the drawing as it first shows; an
animation could bring a hidden face into view), SVG fonts and colour profiles (they link
files).

A face drawn in the vectors themselves (a traced photo) is no part of any picture veil can
obscure, so the pipeline draws the document without its pictures (`render`) and refuses it
when a face shows. ``.svgz`` (gzip) is not registered: a gzip signature would claim every
other gzip file, and its decompression needs a bomb guard of its own.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element

import numpy as np

from ..errors import CorruptInput, TooLarge, UnsupportedFormat
from ..extras import install_command
from ..fields import DEVICE, OTHER, PERSON, TEXT, TIME, MetaField

if TYPE_CHECKING:
    from ..pixels import Pixels

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
XML_NS = "http://www.w3.org/XML/1998/namespace"
_RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
#: Namespaces read back with the prefix people know them by, whatever a file declares.
_PREFIXES = {
    "http://www.inkscape.org/namespaces/inkscape": "inkscape",
    "http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd": "sodipodi",
    "http://ns.adobe.com/AdobeIllustrator/10.0/": "i",
    "http://ns.adobe.com/Extensibility/1.0/": "x",
    "http://ns.adobe.com/Graphs/1.0/": "graph",
    "http://ns.adobe.com/AdobeSVGViewerExtensions/3.0/": "a",
    "http://www.bohemiancoding.com/sketch/ns": "sketch",
    "http://www.serif.com/": "serif",
    _RDF_NS: "rdf",
    "http://purl.org/dc/elements/1.1/": "dc",
    "http://creativecommons.org/ns#": "cc",
    "http://web.resource.org/cc/": "cc",
    XLINK_NS: "xlink",
    XML_NS: "xml",
}


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# SVG 1.1 and SVG 2 elements that draw, or define what is drawn. Not here, so left out with
# what they hold: metadata, title, desc, script, foreignObject, animate*, set, mpath,
# discard, font*, glyph*, color-profile, cursor, and any other namespace's elements.
_ELEMENTS = _words(
    """a circle clipPath defs ellipse feBlend feColorMatrix feComponentTransfer feComposite
    feConvolveMatrix feDiffuseLighting feDisplacementMap feDistantLight feDropShadow feFlood
    feFuncA feFuncB feFuncG feFuncR feGaussianBlur feImage feMerge feMergeNode feMorphology
    feOffset fePointLight feSpecularLighting feSpotLight feTile feTurbulence filter g image
    line linearGradient marker mask path pattern polygon polyline radialGradient rect solidcolor
    stop style svg switch symbol text textPath tspan use view"""
)
# Geometry, structure and presentation attributes (no namespace). Not here: event handlers
# (on*), and whatever editors and exporters add (data-name, ...), which can name people.
_ATTRIBUTES = _words(
    """id class style transform viewBox preserveAspectRatio width height x y x1 y1 x2 y2 cx cy
    r rx ry fx fy fr d points pathLength offset gradientUnits gradientTransform spreadMethod
    patternUnits patternContentUnits patternTransform clipPathUnits maskUnits
    maskContentUnits markerUnits markerWidth markerHeight refX refY orient filterUnits
    primitiveUnits dx dy rotate textLength lengthAdjust startOffset method spacing side path
    in in2 result stdDeviation mode operator k1 k2 k3 k4 values type tableValues slope
    intercept amplitude exponent order kernelMatrix divisor bias targetX targetY edgeMode
    kernelUnitLength preserveAlpha surfaceScale diffuseConstant specularConstant
    specularExponent scale xChannelSelector yChannelSelector azimuth elevation z pointsAtX
    pointsAtY pointsAtZ limitingConeAngle radius baseFrequency numOctaves seed stitchTiles
    requiredFeatures requiredExtensions systemLanguage media version baseProfile
    zoomAndPan href
    alignment-baseline baseline-shift clip clip-path clip-rule color color-interpolation
    color-interpolation-filters color-rendering direction display dominant-baseline
    enable-background fill fill-opacity fill-rule filter flood-color flood-opacity font
    font-family font-size font-size-adjust font-stretch font-style font-variant font-weight
    glyph-orientation-horizontal glyph-orientation-vertical image-rendering isolation
    kerning letter-spacing lighting-color marker marker-end marker-mid marker-start mask
    mask-type mix-blend-mode opacity overflow paint-order pointer-events shape-rendering
    solid-color solid-opacity stop-color stop-opacity stroke stroke-dasharray
    stroke-dashoffset stroke-linecap stroke-linejoin stroke-miterlimit stroke-opacity
    stroke-width text-anchor text-decoration text-rendering transform-origin unicode-bidi
    vector-effect visibility white-space word-spacing writing-mode"""
)
#: Elements whose ``href`` may hold an embedded picture (`Raster`).
_PICTURE_ELEMENTS = frozenset({"image", "feImage"})
#: Elements left out that say what they are better than their name does.
_ANIMATION = (OTHER, "animation", "animation (the drawing is checked as it first shows)")
_DROPPED_AS = {
    "script": (OTHER, "script", "a script (it would run when the drawing is opened)"),
    "foreignObject": (OTHER, "foreignObject", "foreign content (HTML) inside the drawing"),
    "animate": _ANIMATION,
    "animateMotion": _ANIMATION,
    "animateTransform": _ANIMATION,
    "set": _ANIMATION,
}
# CSS that cannot be judged by the patterns below is left out whole: escapes spell url( in
# other ways (``u\72l(``), and image-set() and @import take plain strings as addresses.
_CSS_UNCHECKABLE = re.compile(r"\\|image-set\s*\(|@import|/\*(?!.*?\*/)", re.IGNORECASE | re.S)
_CSS_COMMENT = re.compile(r"/\*(.*?)\*/", re.S)
_CSS_URL = re.compile(r"url\(\s*(?:'([^']*)'|\"([^\"]*)\"|([^)'\"]*?))\s*\)", re.IGNORECASE)
_DATA_URI = re.compile(r"data:([^,;]*)((?:;[^,;]*)*),(.*)", re.IGNORECASE | re.S)
# A path of a person's home folder names them ("/home/jane/", "C:\Users\jane\").
_HOME = re.compile(r"(^|[/\\])(home|users|documents and settings)[/\\][^/\\]+", re.IGNORECASE)
_UNITS = {"": 1.0, "px": 1.0, "pt": 4 / 3, "pc": 16.0, "mm": 96 / 25.4, "cm": 96 / 2.54,
          "in": 96.0}  # fmt: skip
_LENGTH = re.compile(r"\s*([0-9.eE+-]+)\s*([a-z]*)\s*$")
#: How long a drawing is rendered, long side, px: enough for a drawn face a twentieth of it
#: tall to be found (50 px), at most `_RENDER_MAX` even for a drawing that says it is larger.
_RENDER_MIN, _RENDER_MAX = 1024, 4096
_VALUE_CHARS = 100


def available() -> bool:
    """Whether the ``svg`` extra is installed: defusedxml parses, resvg_py draws."""
    try:
        # No type stubs ship with defusedxml (types-defusedxml is a package of its own).
        import defusedxml.ElementTree  # type: ignore[import-untyped]  # noqa: F401
        import resvg_py  # noqa: F401
    except ImportError:
        return False
    return True


def _needs_extra() -> UnsupportedFormat:
    return UnsupportedFormat(
        f"SVG needs the svg extra (defusedxml, resvg_py): {install_command('svg')}"
    )


@dataclass
class Raster:
    """A picture embedded in the drawing as a ``data:`` URI, in document order."""

    mime: str
    data: bytes
    #: Where it sits: the rebuilt element and the attribute that holds it.
    element: Element = field(repr=False)
    attribute: str = "href"


@dataclass
class Drawing:
    """An SVG rebuilt by the allowlist: what it showed, without what it revealed."""

    root: Element
    #: What was left out, each item once (`_Findings`), for `veil scan` and the report.
    findings: list[MetaField]
    rasters: list[Raster]
    #: The size it asks to be shown at, in CSS px (its width and height, else its viewBox).
    width: float
    height: float

    def write(
        self,
        pictures: list[bytes] | None = None,
        *,
        drawn_only: bool = False,
        size: tuple[int, int] | None = None,
    ) -> bytes:
        """The document as UTF-8 XML, its embedded pictures replaced by ``pictures`` (the
        cleaned ones, in `rasters` order; None: as read). ``drawn_only``: without its
        pictures at all, the vectors alone (`render` looks there for drawn faces).
        ``size``: to be drawn at that many pixels (`render`), not at the size it says."""
        if pictures is not None and len(pictures) != len(self.rasters):
            raise ValueError("one picture per embedded raster")
        uris: dict[tuple[int, str], str] = {}
        for index, raster in enumerate(self.rasters):
            data = raster.data if pictures is None else pictures[index]
            uris[id(raster.element), raster.attribute] = _data_uri(raster.mime, data)
        root = self.root
        if size is not None:  # a new root over the same children (copy.copy would share
            # the attribute dictionary, and so resize the document itself)
            root = Element(self.root.tag, dict(self.root.attrib))
            root.text = self.root.text
            root.extend(list(self.root))
            root.set("viewBox", root.get("viewBox") or f"0 0 {self.width} {self.height}")
            root.set("width", str(size[0]))
            root.set("height", str(size[1]))
        out = ['<?xml version="1.0" encoding="UTF-8"?>\n']
        try:
            _emit(root, out, uris, drawn_only, root=True)
        except RecursionError as exc:  # parsing went as deep; kept for a smaller stack
            raise CorruptInput("the SVG's elements are nested too deeply") from exc
        return "".join(out).encode("utf-8")

    def render(self, max_pixels: int, *, drawn_only: bool = False) -> Pixels:
        """The drawing as it shows (``drawn_only``: its vectors alone), at `render_size`,
        drawn by resvg on white, as RGB. resvg is given the size in the document rather than
        as an option: it refuses sizes in mm and the like when asked to scale them."""
        width, height = self.render_size(max_pixels)
        return _resvg(self.write(drawn_only=drawn_only, size=(width, height)), width, height)

    def render_size(self, max_pixels: int) -> tuple[int, int]:
        """Width and height to draw it at: its own size, brought into `_RENDER_MIN` to
        `_RENDER_MAX` on the long side and within ``max_pixels``."""
        long_side = max(self.width, self.height)
        target = min(max(long_side, _RENDER_MIN), _RENDER_MAX)
        scale = target / long_side
        width, height = max(1, round(self.width * scale)), max(1, round(self.height * scale))
        if width * height > max_pixels:
            shrink = (max_pixels / (width * height)) ** 0.5
            width, height = max(1, int(width * shrink)), max(1, int(height * shrink))
        return width, height


class SvgHandler:
    """SVG documents. Not a `FormatHandler`: an SVG is no grid of pixels but a text that
    draws, cleaned as a document (`parse`, `Drawing.write`) whose embedded pictures the
    pipeline cleans as images."""

    name = "SVG"
    extensions: tuple[str, ...] = (".svg",)

    def accept(self, prefix: bytes) -> bool:
        """Whether ``prefix`` starts an SVG document: after an optional byte-order mark,
        white space, the XML declaration, comments, processing instructions and a doctype,
        the first element is ``<svg`` (or the prefix ends before any element: the parse
        decides). Other XML whose first element shows (RSS, XMP, HTML) is not claimed."""
        text = prefix.removeprefix(b"\xef\xbb\xbf").lstrip()
        if not text.startswith(b"<"):
            return False
        while text.startswith((b"<?", b"<!")):
            if text.startswith(b"<!--"):
                end = text.find(b"-->")
                close = 3
            elif text[2:9].upper() == b"DOCTYPE":
                if text[9:].lstrip()[:3].lower() == b"svg":
                    return True
                end, close = text.find(b">"), 1
            else:
                end, close = text.find(b"?>" if text.startswith(b"<?") else b">"), 2
            if end < 0:
                return True  # still in the prolog where the prefix ends
            text = text[end + close :].lstrip()
        return re.match(rb"<(?:[A-Za-z_][\w.-]*:)?svg(?:[\s>/]|$)", text) is not None

    def parse(self, data: bytes) -> Drawing:
        """The document rebuilt by the allowlist; `CorruptInput` for what is not a readable
        SVG (damaged or cut-off XML, another root) or declares entities (billion laughs,
        external entities: never expanded, never fetched), `UnsupportedFormat` without the
        ``svg`` extra."""
        if not available():
            raise _needs_extra()
        return _Builder().build(_parse_xml(data))

    def reread(self, data: bytes, expected: Drawing) -> Drawing:
        """Parse a written document again: it must reveal nothing, link nothing and hold
        the same embedded pictures, else `VerificationFailed`."""
        from ..errors import VerificationFailed

        again = self.parse(data)
        if again.findings:
            names = ", ".join(sorted({f.name for f in again.findings}))
            raise VerificationFailed(f"the written SVG still reveals: {names}")
        if len(again.rasters) != len(expected.rasters):
            raise VerificationFailed(
                f"the written SVG holds {len(again.rasters)} embedded pictures, not "
                f"{len(expected.rasters)}"
            )
        return again


def _resvg(document: bytes, width: int, height: int) -> Pixels:
    """``document`` (veil's own rebuilt SVG: no links to follow), which says it is ``width``
    x ``height``, drawn by resvg on white, as RGB. No system fonts: text cannot be a face,
    and loading them is slow. No ``resources_dir``: nothing is read from disk."""
    try:
        import resvg_py
    except ImportError as exc:
        raise _needs_extra() from exc
    from PIL import Image

    try:
        png = resvg_py.svg_to_bytes(
            svg_string=document.decode("utf-8"), background="#ffffff", skip_system_fonts=True
        )
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # a Rust panic arrives as pyo3's PanicException
        raise CorruptInput(f"the SVG could not be drawn ({_short(str(exc))})") from exc
    with Image.open(io.BytesIO(bytes(png))) as im:
        if im.width * im.height > 2 * width * height:  # resvg sized it otherwise: no bomb
            raise TooLarge(f"the SVG draws at {im.width}x{im.height}, larger than asked")
        return np.asarray(im.convert("RGB"))


# -- parsing -------------------------------------------------------------------------------
class _Target:
    """An ElementTree builder that also keeps what the tree does not: comments (those
    before the root too), processing instructions and the prefixes the file declared."""

    def __init__(self) -> None:
        from xml.etree.ElementTree import TreeBuilder

        self.builder = TreeBuilder()
        self.comments: list[str] = []
        self.instructions: list[str] = []
        self.prefixes: dict[str, str] = {}

    def start(self, tag: str, attrs: dict[str, str]) -> Element:
        return self.builder.start(tag, attrs)

    def end(self, tag: str) -> Element:
        return self.builder.end(tag)

    def data(self, text: str) -> None:
        self.builder.data(text)

    def comment(self, text: str) -> None:
        self.comments.append(text)

    def pi(self, target: str, text: str | None = None) -> None:
        self.instructions.append(f"{target} {text or ''}".strip())

    def start_ns(self, prefix: str, uri: str) -> None:
        self.prefixes.setdefault(uri, prefix)

    def close(self) -> Element:
        return self.builder.close()


def _parse_xml(data: bytes) -> tuple[Element, _Target]:
    from xml.etree.ElementTree import ParseError

    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import DefusedXMLParser

    target = _Target()
    # A doctype alone is common and harmless (the W3C's public SVG 1.1 one); entities and
    # external references are what attacks are made of, and are never expanded or fetched.
    parser = DefusedXMLParser(
        target=target, forbid_dtd=False, forbid_entities=True, forbid_external=True
    )
    try:
        parser.feed(data)
        root = parser.close()
    except DefusedXmlException as exc:
        raise CorruptInput(
            "the SVG declares XML entities or external references, which veil never expands "
            f"or fetches ({_short(str(exc))}): a billion-laughs or external-entity attack, "
            "or an Adobe Illustrator file; save it as plain SVG"
        ) from exc
    except ParseError as exc:
        cut = re.search(r"no element found|unclosed token", str(exc)) is not None
        where = "cut short" if cut else "not well-formed XML"
        raise CorruptInput(f"the SVG file is {where} ({_short(str(exc))})") from exc
    except (ValueError, UnicodeError, RecursionError) as exc:
        raise CorruptInput(f"the SVG file cannot be read as XML ({_short(str(exc))})") from exc
    namespace, local = _split(root.tag)
    if local != "svg" or namespace not in ("", SVG_NS):
        raise CorruptInput(f"not an SVG document: its root element is <{local}>")
    return root, target


def _split(tag: str) -> tuple[str, str]:
    """``{uri}local`` as (uri, local); a name without a namespace as ("", name)."""
    if tag.startswith("{"):
        uri, _, local = tag[1:].partition("}")
        return uri, local
    return "", tag


class _Findings:
    """What was left out, one `MetaField` per name: an editor's attribute on a thousand
    paths is one finding, its first value shown and the others counted."""

    def __init__(self) -> None:
        self._first: dict[str, tuple[str, str]] = {}
        self._count: dict[str, int] = {}

    def add(self, name: str, value: str, category: str | None = None) -> None:
        value = " ".join(value.split())
        if name not in self._first:
            self._first[name] = (category or _category(name, value), _short(value))
            self._count[name] = 0
        self._count[name] += 1

    def fields(self) -> list[MetaField]:
        out = []
        for name, (category, value) in self._first.items():
            more = self._count[name] - 1
            out.append(MetaField(category, name, value + (f" (and {more} more)" if more else "")))
        return out


def _category(name: str, value: str) -> str:
    """What a left-out item reveals, by its name and value (`veil.fields`)."""
    local = name.rpartition(":")[2].lower()
    if _HOME.search(value):
        return PERSON
    if local in ("creator", "rights", "publisher", "contributor", "author", "owner"):
        return PERSON
    if "date" in local or "time" in local:
        return TIME
    if local.endswith("version") or local in ("generator", "software"):
        return DEVICE
    if local in ("title", "desc", "description", "subject", "docname", "label", "comment"):
        return TEXT
    return OTHER


class _Builder:
    """Walks a parsed document and builds the allowlisted one beside it."""

    def __init__(self) -> None:
        self.findings = _Findings()
        self.rasters: list[Raster] = []
        self.prefixes: dict[str, str] = {}

    def build(self, parsed: tuple[Element, _Target]) -> Drawing:
        root, target = parsed
        self.prefixes = {**target.prefixes, **_PREFIXES}
        for text in target.comments:
            self.findings.add("comment", text, TEXT)
        for text in target.instructions:
            self._instruction(text)
        try:
            rebuilt = self._element(root)
        except RecursionError as exc:
            raise CorruptInput("the SVG's elements are nested too deeply") from exc
        assert rebuilt is not None  # the root is an svg element, always kept
        width, height = _size(rebuilt)
        return Drawing(rebuilt, self.findings.fields(), self.rasters, width, height)

    def _instruction(self, text: str) -> None:
        # <?xml-stylesheet href="https://..."?> is fetched when the drawing is shown.
        link = re.search(r"""href\s*=\s*["']([^"']*)""", text)
        if link:
            self.findings.add("ExternalReference", link.group(1))
        else:
            self.findings.add("ProcessingInstruction", text)

    def _qname(self, tag: str) -> str:
        uri, local = _split(tag)
        if not uri:
            return local
        return f"{self.prefixes.get(uri, uri)}:{local}"

    def _element(self, element: Element) -> Element | None:
        uri, local = _split(element.tag)
        if uri not in ("", SVG_NS) or local not in _ELEMENTS:
            self._left_out(element, uri, local)
            return None
        rebuilt = Element(local)
        for name, value in element.attrib.items():
            self._attribute(rebuilt, local, name, value)
        text = element.text
        if local == "style" and text:
            text = self._css(text)
        rebuilt.text = text
        for child in element:
            kept = self._element(child)
            if kept is not None:
                kept.tail = child.tail
                rebuilt.append(kept)
            elif child.tail:  # the text after a left-out element still belongs here
                if len(rebuilt):
                    rebuilt[-1].tail = (rebuilt[-1].tail or "") + child.tail
                else:
                    rebuilt.text = (rebuilt.text or "") + child.tail
        return rebuilt

    def _left_out(self, element: Element, uri: str, local: str) -> None:
        if local == "metadata" and uri in ("", SVG_NS):
            self._metadata(element)
            return
        if local in ("title", "desc") and uri in ("", SVG_NS):
            self.findings.add(local, "".join(element.itertext()), TEXT)
            return
        if local in _DROPPED_AS and uri in ("", SVG_NS):
            category, name, value = _DROPPED_AS[local]
            self.findings.add(name, value, category)
            return
        name = self._qname(element.tag)
        shown = "".join(element.itertext()).strip()
        if not shown:
            shown = " ".join(f"{self._qname(k)}={v}" for k, v in element.attrib.items())
        self.findings.add(name, shown or "(element)")
        # Editors keep their settings in their own namespace, on their own elements as well
        # as the drawing's (inkscape:export-filename): each one listed, wherever it is.
        for node in element.iter():
            for key, value in node.attrib.items():
                if key.startswith("{"):
                    self.findings.add(self._qname(key), value)

    def _metadata(self, element: Element) -> None:
        """RDF/Dublin Core: each statement under the name of its property (dc:creator),
        however deep its value is (dc:creator/cc:Agent/dc:title)."""
        containers = {"rdf:RDF", "cc:Work", "rdf:Description", "rdf:Bag", "rdf:Seq", "rdf:Alt",
                      "rdf:li", "cc:Agent"}  # fmt: skip
        found = False

        def walk(node: Element, property_name: str | None) -> None:
            nonlocal found
            name = self._qname(node.tag)
            if property_name is None and name not in containers:
                property_name = name
            values = [node.text or ""] + [
                v for k, v in node.attrib.items() if k == f"{{{_RDF_NS}}}resource"
            ]
            for value in values:
                if value.strip():
                    self.findings.add(property_name or name, value)
                    found = True
            for child in node:
                walk(child, property_name)

        for child in element:
            walk(child, None)
        if not found:
            self.findings.add("metadata", "a metadata block", OTHER)

    def _attribute(self, rebuilt: Element, element: str, name: str, value: str) -> None:
        uri, local = _split(name)
        if uri == XLINK_NS and local == "href":
            self._href(rebuilt, element, "xlink:href", value)
            return
        if uri == XML_NS and local == "space":
            rebuilt.set("xml:space", value)
            return
        if uri or local not in _ATTRIBUTES:
            if local.lower().startswith("on") and not uri:
                self.findings.add("script", f"{local} handler: {value}", OTHER)
            else:
                self.findings.add(self._qname(name), value)
            return
        if local == "href":
            self._href(rebuilt, element, "href", value)
            return
        if local == "style":
            value = self._css(value)
        elif "\\" in value or ("url(" in value.lower() and self._css(value) != value):
            # A paint, filter, clip or marker from another file: the attribute goes whole
            # (its fallback colour, if any, with it); `_css` has listed the address.
            return
        rebuilt.set(local, value)

    def _href(self, rebuilt: Element, element: str, name: str, value: str) -> None:
        address = value.strip()
        if address.startswith("#"):
            rebuilt.set(name, address)
            return
        found = _DATA_URI.match(address)
        if found is None:
            self.findings.add("ExternalReference", address)
            return
        mime = found.group(1).strip().lower() or "text/plain"
        if element not in _PICTURE_ELEMENTS:
            self.findings.add("EmbeddedData", f"{mime} data in <{element}>", OTHER)
            return
        number = len(self.rasters) + 1
        rebuilt.set(name, "")  # filled in by `Drawing.write`
        self.rasters.append(Raster(mime, _data_bytes(found, number), rebuilt, name))

    def _css(self, css: str) -> str:
        """``css`` without comments and with every ``url()`` that is not a ``#fragment``
        replaced by ``none`` (each listed); empty when it cannot be judged."""
        for comment in _CSS_COMMENT.findall(css):
            if comment.strip():
                self.findings.add("comment", comment, TEXT)
        css = _CSS_COMMENT.sub(" ", css)
        if _CSS_UNCHECKABLE.search(css):
            self.findings.add("style", "CSS with @import, image-set() or escapes", OTHER)
            return ""

        def local_only(found: re.Match[str]) -> str:
            address = next(g for g in found.groups() if g is not None).strip()
            if address.startswith("#"):
                return f"url({address})"
            if address.lower().startswith("data:"):
                self.findings.add("EmbeddedData", f"{address[:40]}... in a style", OTHER)
            else:
                self.findings.add("ExternalReference", address)
            return "none"

        return _CSS_URL.sub(local_only, css)


def _data_bytes(found: re.Match[str], number: int) -> bytes:
    """The bytes of a ``data:`` URI (base64, or percent-encoded)."""
    params, payload = found.group(2).lower(), found.group(3)
    if ";base64" in params:
        try:
            return base64.b64decode("".join(payload.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CorruptInput(f"embedded picture {number}: its base64 data is damaged") from exc
    return urllib.parse.unquote_to_bytes(payload)


def _data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _size(root: Element) -> tuple[float, float]:
    """The size the drawing asks for, as resvg reads it: width and height in absolute
    units, else its viewBox's, else 100 x 100."""
    box = [v for v in re.split(r"[\s,]+", root.get("viewBox", "").strip()) if v]
    view = None
    if len(box) == 4:
        try:
            view = (float(box[2]), float(box[3]))
        except ValueError:
            view = None
    if view is not None and not (view[0] > 0 and view[1] > 0):
        view = None
    width, height = _length(root.get("width")), _length(root.get("height"))
    if width is not None and height is not None:
        return width, height
    if view is not None:
        if width is not None:
            return width, width * view[1] / view[0]
        if height is not None:
            return height * view[0] / view[1], height
        return view
    return width or 100.0, height or 100.0


def _length(value: str | None) -> float | None:
    if value is None:
        return None
    found = _LENGTH.match(value)
    if found is None or found.group(2) not in _UNITS:
        return None
    try:
        length = float(found.group(1)) * _UNITS[found.group(2)]
    except ValueError:
        return None
    return length if 0 < length < 1e9 else None


# -- writing -------------------------------------------------------------------------------
def _emit(
    element: Element,
    out: list[str],
    uris: dict[tuple[int, str], str],
    drawn_only: bool,
    root: bool,
) -> None:
    slots = {name for name in ("href", "xlink:href") if (id(element), name) in uris}
    if drawn_only and slots:
        return
    out.append(f"<{element.tag}")
    if root:
        out.append(f' xmlns="{SVG_NS}" xmlns:xlink="{XLINK_NS}"')
    for name, value in element.attrib.items():
        if name in slots:
            value = uris[id(element), name]
        out.append(f' {name}="{_escape(value, attribute=True)}"')
    if element.text or len(element):
        out.append(">")
        out.append(_escape(element.text or ""))
        for child in element:
            _emit(child, out, uris, drawn_only, root=False)
            out.append(_escape(child.tail or ""))
        out.append(f"</{element.tag}>")
    else:
        out.append("/>")


def _escape(text: str, attribute: bool = False) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if attribute:  # kept exactly: a parser turns raw line breaks in attributes into spaces
        text = text.replace('"', "&quot;").replace("\n", "&#10;").replace("\r", "&#13;")
        text = text.replace("\t", "&#9;")
    return text.replace("\r", "&#13;")


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _VALUE_CHARS else text[: _VALUE_CHARS - 3] + "..."


__all__ = ["Drawing", "Raster", "SvgHandler", "available"]
