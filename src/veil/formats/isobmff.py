"""ISO base media file format boxes (ISO/IEC 14496-12), and HEIF/AVIF still images rewritten
with only the items and properties that draw the primary picture (ISO/IEC 23008-12, "HEIF").

`strip_heif` is an allowlist: it keeps the primary image item and what it is drawn from (grid
tiles, the alpha plane), with only the item properties a decoder uses, and rebuilds ``mdat``
and ``idat`` from those items alone, so the bytes of a dropped item (EXIF, XMP, any ``mime``
or ``uri`` item, thumbnails, depth maps, segmentation mattes, region annotations) are not in
the output at all. Whatever it cannot follow safely makes it return None: the caller then
re-encodes, so a file is never left half cleaned.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from ..errors import CorruptInput, UnsupportedFormat, VeilError
from .metadata import neutral_icc

# Item types that are pictures (23008-12 and its AVIF, JPEG, VVC, JPEG 2000 and uncompressed
# bindings). Any other item reached from the primary makes the rewrite give up.
_IMAGE_ITEMS = frozenset(
    {b"hvc1", b"av01", b"avc1", b"vvc1", b"jpeg", b"j2k1", b"unci", b"grid", b"iden", b"iovl"}
)
# References followed from a kept item to the items it is made from: derived-image inputs,
# the base of a tile item and of a predictively coded one.
_INPUT_REFERENCES = frozenset({b"dimg", b"tbas", b"base"})
# auxC types of an alpha plane (23008-12 6.5.8 for AVIF/CICP, 23008-2 table F.2 for HEVC):
# part of the picture, unlike depth maps, gain maps and mattes, which are dropped.
_ALPHA_TYPES = frozenset(
    {b"urn:mpeg:mpegB:cicp:systems:auxiliary:alpha", b"urn:mpeg:hevc:2015:auxid:1"}
)
# Item properties a decoder needs: codec configuration, size and geometry (crop, rotation,
# mirror, scaling), colour and HDR light levels, layer selection and the auxiliary type.
# Descriptive ones (udes: name and description; crtt/mdft: times; altt: text) are dropped.
_KEPT_PROPERTIES = frozenset(
    {
        b"hvcC",
        b"av1C",
        b"avcC",
        b"vvcC",
        b"jpgC",
        b"j2kH",
        b"uncC",
        b"cmpd",
        b"cmpC",
        b"icef",
        b"cpat",
        b"ispe",
        b"pasp",
        b"clap",
        b"irot",
        b"imir",
        b"rloc",
        b"iscl",
        b"colr",
        b"pixi",
        b"cloc",
        b"clli",
        b"mdcv",
        b"cclv",
        b"amve",
        b"a1op",
        b"a1lx",
        b"lsel",
        b"oinf",
        b"tols",
        b"auxC",
    }
)
_ICC_COLOUR_TYPES = (b"prof", b"rICC")
_U16, _U32 = 0xFFFF, 0xFFFF_FFFF


@dataclass(frozen=True)
class Box:
    """One box of ``data``: ``type`` is its four-character code; the body is data[body:end]."""

    type: bytes
    start: int
    body: int
    end: int


def boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[Box]:
    """The boxes laid end to end in data[start:end]; `CorruptInput` where one does not fit."""
    end = len(data) if end is None else end
    position = start
    while position < end:
        if position + 8 > end:
            raise CorruptInput("truncated box header")
        size = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8]
        body = position + 8
        if size == 1:  # a 64-bit size follows the type
            if body + 8 > end:
                raise CorruptInput("truncated box header")
            size = int.from_bytes(data[body : body + 8], "big")
            body += 8
        elif size == 0:  # the box runs to the end of its container
            size = end - position
        if kind == b"uuid":
            body += 16
        if size < body - position or position + size > end:
            raise CorruptInput(f"box {kind!r} does not fit in its container")
        yield Box(kind, position, body, position + size)
        position += size


def box(kind: bytes, body: bytes) -> bytes:
    """A box of ``kind`` around ``body``, with a 64-bit size only where 32 bits do not hold it."""
    if len(body) + 8 <= _U32:
        return (len(body) + 8).to_bytes(4, "big") + kind + body
    return (1).to_bytes(4, "big") + kind + (len(body) + 16).to_bytes(8, "big") + body


def full_box(kind: bytes, version: int, flags: int, body: bytes) -> bytes:
    return box(kind, bytes([version]) + flags.to_bytes(3, "big") + body)


class _Reader:
    """Big-endian fields read one after another; `CorruptInput` past the end."""

    def __init__(self, data: bytes, position: int = 0, end: int | None = None) -> None:
        self.data = data
        self.position = position
        self.end = len(data) if end is None else end

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def take(self, size: int) -> bytes:
        if self.position + size > self.end:
            raise CorruptInput("box ends inside a field")
        chunk = self.data[self.position : self.position + size]
        self.position += size
        return chunk

    def cstring(self) -> bytes:
        """A NUL-terminated string; writers that omit the last NUL end it at the box's end."""
        stop = self.data.find(b"\x00", self.position, self.end)
        stop = self.end if stop < 0 else stop
        text = self.data[self.position : stop]
        self.position = min(stop + 1, self.end)
        return text

    def full_box_header(self) -> tuple[int, int]:
        return self.uint(1), self.uint(3)


@dataclass
class _Item:
    id: int
    type: bytes
    flags: int
    protected: bool


@dataclass
class _Location:
    method: int  # 0: file offsets, 1: offsets into idat, 2: offsets into other items
    data_reference: int
    extents: list[tuple[int, int]]  # (offset, length), base_offset already added


@dataclass
class _Reference:
    type: bytes
    source: int
    targets: list[int]


@dataclass(frozen=True)
class _Property:
    type: bytes
    box: bytes  # the whole box, header included
    body: bytes


@dataclass
class _Meta:
    primary: int = -1
    items: dict[int, _Item] = field(default_factory=dict)
    locations: dict[int, _Location] = field(default_factory=dict)
    references: list[_Reference] = field(default_factory=list)
    properties: list[_Property] = field(default_factory=list)  # index 1 is [0]
    #: item id -> (essential, property index) in the order a decoder applies them
    associations: dict[int, list[tuple[bool, int]]] = field(default_factory=dict)
    idat: bytes = b""


#: The boxes of an image sequence's ``moov`` whose creation and modification times the
#: encoder sets to the moment it wrote the file (a time of day the output would reveal).
_TIMED = {b"mvhd", b"tkhd", b"mdhd"}
_TIMED_CONTAINERS = {b"moov", b"trak", b"mdia"}


def zero_times(data: bytes) -> bytes:
    """``data`` with the creation and modification times of its ``moov`` (the movie, each
    track, each track's media) set to 0, "unknown"; nothing else changes, not one size."""
    out = bytearray(data)

    def walk(start: int, end: int) -> None:
        for found in boxes(data, start, end):
            if found.type in _TIMED_CONTAINERS:
                walk(found.body, found.end)
            elif found.type in _TIMED and found.end - found.body >= 4:
                wide = data[found.body] == 1  # version 1: 64-bit times
                size = 16 if wide else 8
                if found.body + 4 + size <= found.end:
                    out[found.body + 4 : found.body + 4 + size] = bytes(size)

    top = list(boxes(data))
    for found in top:
        if found.type == b"moov":
            walk(found.body, found.end)
    return bytes(out)


def strip_heif(data: bytes) -> bytes | None:
    """A HEIF/AVIF still with only what draws its primary picture: ``ftyp``, a rebuilt ``meta``
    and one ``mdat`` holding the kept items' data. ICC profiles keep their colour data but
    lose their date.

    None when the file is outside what this walk follows safely (image sequences in ``moov``,
    items in other files or other items, protected items, an essential property it does not
    know, malformed boxes); the caller then re-encodes.
    """
    try:
        return _strip(data)
    except VeilError:
        return None


def _strip(data: bytes) -> bytes:
    top = list(boxes(data))
    if not top or top[0].type != b"ftyp" or top[0].end - top[0].body < 8:
        raise CorruptInput("no ftyp box first")
    if sum(b.type == b"ftyp" for b in top) > 1:
        raise CorruptInput("two ftyp boxes")
    if any(b.type == b"moov" for b in top):
        # An image sequence: a reader may show the track rather than the items.
        raise UnsupportedFormat("HEIF image sequences are re-encoded")
    metas = [b for b in top if b.type == b"meta"]
    if len(metas) != 1:
        raise CorruptInput(f"{len(metas)} meta boxes at the top level, expected 1")
    meta = _parse_meta(data, metas[0])
    kept = _kept_items(meta)
    _check_separate(meta, kept)
    ftyp = data[top[0].start : top[0].end]
    # iloc's fields have fixed sizes, so meta's size does not depend on the offsets written
    # into it: build it once to measure where mdat's data begins, then again with offsets.
    payloads = {i: _item_data(data, meta, i) for i in kept if i in meta.locations}
    mdat_items = [i for i in payloads if meta.locations[i].method == 0]
    mdat_body_size = sum(len(payloads[i]) for i in mdat_items)
    mdat_header = 8 if mdat_body_size + 8 <= _U32 else 16  # see `box`
    draft = _build_meta(meta, kept, payloads, 0)
    new_meta = _build_meta(meta, kept, payloads, len(ftyp) + len(draft) + mdat_header)
    if len(new_meta) != len(draft):
        raise UnsupportedFormat("offsets crossed 4 GiB between passes")
    mdat = box(b"mdat", b"".join(payloads[i] for i in mdat_items)) if mdat_items else b""
    return ftyp + new_meta + mdat


def _parse_meta(data: bytes, meta_box: Box) -> _Meta:
    meta = _Meta()
    seen: set[bytes] = set()
    for child in boxes(data, meta_box.body + 4, meta_box.end):  # +4: FullBox version, flags
        body = _Reader(data, child.body, child.end)
        if child.type in (b"hdlr", b"pitm", b"iloc", b"iinf", b"iref", b"iprp", b"idat"):
            if child.type in seen:
                raise CorruptInput(f"two {child.type!r} boxes in meta")
            seen.add(child.type)
        if child.type == b"hdlr":
            body.full_box_header()
            body.uint(4)  # pre_defined
            if body.take(4) != b"pict":
                raise UnsupportedFormat("meta box does not describe pictures")
        elif child.type == b"pitm":
            version, _ = body.full_box_header()
            meta.primary = body.uint(2 if version == 0 else 4)
        elif child.type == b"iloc":
            meta.locations = _parse_iloc(body)
        elif child.type == b"iinf":
            meta.items = _parse_iinf(data, body)
        elif child.type == b"iref":
            meta.references = _parse_iref(data, body)
        elif child.type == b"iprp":
            _parse_iprp(data, child, meta)
        elif child.type == b"idat":
            meta.idat = data[child.body : child.end]
        # Anything else (dinf is written afresh; grpl, udta, xml/bxml, free, ipro...) is
        # not needed to draw the primary picture and is dropped.
    if b"hdlr" not in seen or meta.primary not in meta.items:
        raise CorruptInput("meta box without a handler or a primary item")
    return meta


def _parse_iloc(body: _Reader) -> dict[int, _Location]:
    version, _ = body.full_box_header()
    if version > 2:
        raise UnsupportedFormat(f"iloc version {version}")
    sizes = body.uint(2)
    offset_size, length_size, base_size = sizes >> 12, (sizes >> 8) & 15, (sizes >> 4) & 15
    index_size = sizes & 15 if version else 0
    if not {offset_size, length_size, base_size, index_size} <= {0, 4, 8}:
        raise CorruptInput("iloc field size other than 0, 4 or 8 bytes")
    locations: dict[int, _Location] = {}
    for _ in range(body.uint(2 if version < 2 else 4)):
        item = body.uint(2 if version < 2 else 4)
        method = body.uint(2) & 15 if version else 0
        data_reference = body.uint(2)
        base = body.uint(base_size)
        extents = []
        for _ in range(body.uint(2)):
            body.uint(index_size)  # only meaningful for method 2, which is refused
            offset = body.uint(offset_size)
            extents.append((base + offset, body.uint(length_size)))
        if item in locations:
            raise CorruptInput(f"item {item} located twice")
        locations[item] = _Location(method, data_reference, extents)
    return locations


def _parse_iinf(data: bytes, body: _Reader) -> dict[int, _Item]:
    version, _ = body.full_box_header()
    body.uint(2 if version == 0 else 4)  # entry count; the boxes themselves are authoritative
    items: dict[int, _Item] = {}
    for entry in boxes(data, body.position, body.end):
        if entry.type != b"infe":
            continue
        infe = _Reader(data, entry.body, entry.end)
        infe_version, flags = infe.full_box_header()
        if infe_version < 2:  # versions 0 and 1 have no item type: not a HEIF file
            raise UnsupportedFormat(f"infe version {infe_version}")
        item = infe.uint(2 if infe_version == 2 else 4)
        if item in items:
            raise CorruptInput(f"item {item} described twice")
        protected = infe.uint(2) != 0
        items[item] = _Item(item, infe.take(4), flags, protected)
    return items


def _parse_iref(data: bytes, body: _Reader) -> list[_Reference]:
    version, _ = body.full_box_header()
    id_size = 2 if version == 0 else 4
    references = []
    for entry in boxes(data, body.position, body.end):
        fields = _Reader(data, entry.body, entry.end)
        source = fields.uint(id_size)
        targets = [fields.uint(id_size) for _ in range(fields.uint(2))]
        references.append(_Reference(entry.type, source, targets))
    return references


def _parse_iprp(data: bytes, iprp: Box, meta: _Meta) -> None:
    children = list(boxes(data, iprp.body, iprp.end))
    containers = [b for b in children if b.type == b"ipco"]
    if len(containers) != 1:
        raise CorruptInput(f"{len(containers)} ipco boxes, expected 1")
    meta.properties = [
        _Property(p.type, data[p.start : p.end], data[p.body : p.end])
        for p in boxes(data, containers[0].body, containers[0].end)
    ]
    for ipma in (b for b in children if b.type == b"ipma"):
        body = _Reader(data, ipma.body, ipma.end)
        version, flags = body.full_box_header()
        for _ in range(body.uint(4)):
            item = body.uint(2 if version < 1 else 4)
            if item in meta.associations:
                raise CorruptInput(f"item {item} has two property lists")
            entries = []
            for _ in range(body.uint(1)):
                if flags & 1:  # 15-bit property indices
                    value = body.uint(2)
                    entries.append((bool(value >> 15), value & 0x7FFF))
                else:
                    value = body.uint(1)
                    entries.append((bool(value >> 7), value & 0x7F))
            meta.associations[item] = entries


def _is_alpha(meta: _Meta, item: int) -> bool:
    for _, index in meta.associations.get(item, []):
        prop = _property(meta, index)
        if prop is not None and prop.type == b"auxC":
            fields = _Reader(prop.body)
            fields.full_box_header()
            return fields.cstring() in _ALPHA_TYPES
    return False


def _property(meta: _Meta, index: int) -> _Property | None:
    """Property ``index`` (1-based; 0 means none) of ipco."""
    if index == 0:
        return None
    if index > len(meta.properties):
        raise CorruptInput(f"property index {index} past the end of ipco")
    return meta.properties[index - 1]


def _kept_items(meta: _Meta) -> list[int]:
    """The primary item and everything it is drawn from, in the file's item order."""
    kept = {meta.primary}
    pending = [meta.primary]
    while pending:
        item = pending.pop()
        found = [
            target
            for ref in meta.references
            if ref.source == item and ref.type in _INPUT_REFERENCES
            for target in ref.targets
        ]
        found += [
            ref.source
            for ref in meta.references
            if ref.type == b"auxl" and item in ref.targets and _is_alpha(meta, ref.source)
        ]
        for new in found:
            if new not in kept:
                kept.add(new)
                pending.append(new)
    for item in kept:
        entry = meta.items.get(item)
        if entry is None:
            raise CorruptInput(f"item {item} is referenced but not described")
        if entry.type not in _IMAGE_ITEMS:
            raise UnsupportedFormat(f"picture drawn from a {entry.type!r} item")
        if entry.protected:
            raise UnsupportedFormat("protected (encrypted) item")
        location = meta.locations.get(item)
        if location is not None and (location.method not in (0, 1) or location.data_reference):
            raise UnsupportedFormat("item data in another item or another file")
        if location is not None and any(length == 0 for _, length in location.extents):
            raise UnsupportedFormat("extent of unstated length")
    return [i for i in meta.items if i in kept]


def _check_separate(meta: _Meta, kept: list[int]) -> None:
    """A kept item's bytes must not overlap a dropped item's (EXIF hidden inside image data)."""
    dropped = [
        (location.method, offset, length)
        for item, location in meta.locations.items()
        if item not in kept
        for offset, length in location.extents
    ]
    for item in kept:
        location = meta.locations.get(item)
        if location is None:
            continue
        for offset, length in location.extents:
            if any(
                method == location.method and offset < o + n and o < offset + length
                for method, o, n in dropped
            ):
                raise UnsupportedFormat(f"item {item} shares bytes with a dropped item")


def _item_data(data: bytes, meta: _Meta, item: int) -> bytes:
    location = meta.locations[item]
    source = data if location.method == 0 else meta.idat
    parts = []
    for offset, length in location.extents:
        if offset + length > len(source):
            raise CorruptInput(f"item {item} extends past the end of its data")
        parts.append(source[offset : offset + length])
    return b"".join(parts)


def _build_meta(meta: _Meta, kept: list[int], payloads: dict[int, bytes], mdat_at: int) -> bytes:
    wide = max(kept) > _U16  # 32-bit item ids need the later box versions
    properties, associations = _kept_properties(meta, kept)
    idat_items = [i for i in kept if i in payloads and meta.locations[i].method == 1]
    children = [
        # handler "pict" with an empty name (the name is free text)
        full_box(b"hdlr", 0, 0, bytes(4) + b"pict" + bytes(12) + b"\x00"),
        box(
            b"dinf", full_box(b"dref", 0, 0, (1).to_bytes(4, "big") + full_box(b"url ", 0, 1, b""))
        ),
        full_box(b"pitm", int(wide), 0, meta.primary.to_bytes(4 if wide else 2, "big")),
        _build_iloc(meta, kept, payloads, mdat_at, wide),
        _build_iinf(meta, kept),
        _build_iref(meta, kept, wide),
        box(b"iprp", box(b"ipco", b"".join(properties)) + _build_ipma(associations, wide)),
    ]
    if idat_items:
        children.append(box(b"idat", b"".join(payloads[i] for i in idat_items)))
    return full_box(b"meta", 0, 0, b"".join(children))


def _build_iloc(
    meta: _Meta, kept: list[int], payloads: dict[int, bytes], mdat_at: int, wide: bool
) -> bytes:
    """Version 1 (2 for 32-bit ids): each item's extents joined into one, in mdat or idat."""
    located = [i for i in kept if i in payloads]
    large = mdat_at + sum(len(p) for p in payloads.values()) > _U32
    size = 8 if large else 4
    entries = []
    position = {0: mdat_at, 1: 0}
    for item in located:
        method = meta.locations[item].method
        length = len(payloads[item])
        extents = b""
        if length:
            extents = (
                (1).to_bytes(2, "big")
                + position[method].to_bytes(size, "big")
                + length.to_bytes(size, "big")
            )
        entries.append(
            item.to_bytes(4 if wide else 2, "big")
            + method.to_bytes(2, "big")
            + bytes(2)  # data_reference_index 0: this file
            + (extents or bytes(2))  # extent_count 0 when the item has no data
        )
        position[method] += length
    sizes = (size << 12) | (size << 8)  # base_offset_size and index_size 0
    header = sizes.to_bytes(2, "big") + len(located).to_bytes(4 if wide else 2, "big")
    return full_box(b"iloc", 2 if wide else 1, 0, header + b"".join(entries))


def _build_iinf(meta: _Meta, kept: list[int]) -> bytes:
    entries = []
    for item in kept:
        entry = meta.items[item]
        wide = item > _U16
        # item_protection_index 0, type, and an empty name: names are free text.
        body = item.to_bytes(4 if wide else 2, "big") + bytes(2) + entry.type + b"\x00"
        entries.append(full_box(b"infe", 3 if wide else 2, entry.flags, body))
    many = len(kept) > _U16
    count = len(kept).to_bytes(4 if many else 2, "big")
    return full_box(b"iinf", int(many), 0, count + b"".join(entries))


def _build_iref(meta: _Meta, kept: list[int], wide: bool) -> bytes:
    """References among kept items only (thumbnail, EXIF and depth links go with their item)."""
    size = 4 if wide else 2
    entries = []
    for ref in meta.references:
        targets = [t for t in ref.targets if t in kept]
        if ref.source in kept and targets:
            body = ref.source.to_bytes(size, "big") + len(targets).to_bytes(2, "big")
            entries.append(box(ref.type, body + b"".join(t.to_bytes(size, "big") for t in targets)))
    return full_box(b"iref", int(wide), 0, b"".join(entries)) if entries else b""


def _kept_properties(
    meta: _Meta, kept: list[int]
) -> tuple[list[bytes], dict[int, list[tuple[bool, int]]]]:
    """The allowed properties of kept items, renumbered; associations keep their order
    (clap, irot and imir apply in the order listed)."""
    renumbered: dict[int, int] = {}
    properties: list[bytes] = []
    associations: dict[int, list[tuple[bool, int]]] = {}
    for item in sorted(kept):  # ipma lists items in increasing id order
        entries = []
        for essential, index in meta.associations.get(item, []):
            prop = _property(meta, index)
            if prop is None:
                continue
            if prop.type not in _KEPT_PROPERTIES:
                if essential:
                    raise UnsupportedFormat(f"essential property {prop.type!r}")
                continue
            if index not in renumbered:
                properties.append(_clean_property(prop))
                renumbered[index] = len(properties)
            entries.append((essential, renumbered[index]))
        associations[item] = entries
    return properties, associations


def _clean_property(prop: _Property) -> bytes:
    """An ICC profile in colr keeps its colour data but not its creation date."""
    if prop.type == b"colr" and prop.body[:4] in _ICC_COLOUR_TYPES:
        return box(b"colr", prop.body[:4] + neutral_icc(prop.body[4:]))
    return prop.box


def _build_ipma(associations: dict[int, list[tuple[bool, int]]], wide: bool) -> bytes:
    large = any(index > 0x7F for entries in associations.values() for _, index in entries)
    rows = []
    for item, entries in associations.items():
        row = item.to_bytes(4 if wide else 2, "big") + len(entries).to_bytes(1, "big")
        for essential, index in entries:
            if large:
                row += ((essential << 15) | index).to_bytes(2, "big")
            else:
                row += ((essential << 7) | index).to_bytes(1, "big")
        rows.append(row)
    body = len(rows).to_bytes(4, "big") + b"".join(rows)
    return full_box(b"ipma", int(wide), int(large), body)
