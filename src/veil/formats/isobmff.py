"""ISO base media file format boxes (ISO/IEC 14496-12), and HEIF/AVIF still images rewritten
with only the items and properties that draw the primary picture (ISO/IEC 23008-12, "HEIF").

`strip_heif` is an allowlist: it keeps the primary image item and what it is drawn from (grid
tiles, the alpha plane), with only the item properties a decoder uses, and rebuilds ``mdat``
and ``idat`` from those items alone, so the bytes of a dropped item (EXIF, XMP, any ``mime``
or ``uri`` item, thumbnails, depth maps, segmentation mattes, region annotations) are not in
the output at all. Whatever it cannot follow safely makes it return None: the caller then
re-encodes, so a file is never left half cleaned.

An image sequence (an animated AVIF: a ``moov`` with a track of coded frames, ISO/IEC
14496-12) is kept the same way when the caller decoded and will compare every frame: the
shown track and its alpha track keep the boxes a player needs (sample description, timing,
sample tables), with dates zeroed, handler and compressor names emptied, and ``udta``/``meta``
(GPS, names, EXIF, XMP) and every other track dropped. ``mdat`` holds only the bytes of the
kept samples and items, in their source order, and every chunk and item offset is rewritten.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterator
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


def strip_heif(
    data: bytes, sequence_frames: int | None = None, drop_sequence: bool = False
) -> bytes | None:
    """A HEIF/AVIF still with only what draws its primary picture: ``ftyp``, a rebuilt ``meta``
    and one ``mdat`` holding the kept items' data. ICC profiles keep their colour data but
    lose their date.

    ``sequence_frames``: how many frames the caller decoded and will compare with the output.
    An image sequence (``moov``) is kept only when its shown track has exactly that many
    samples and the still primary item is that track's first frame, so that no picture goes
    out unchecked; with None (a reader that shows only the primary item, as pillow-heif does
    for HEIF) an image sequence is refused, or with ``drop_sequence`` left out: the output is
    the primary picture alone, which the caller decoded and compares.

    None when the file is outside what this walk follows safely (image sequences it cannot
    check, items in other files or other items, protected items, an essential property it does
    not know, malformed boxes); the caller then re-encodes.
    """
    try:
        return _strip(data, sequence_frames, drop_sequence)
    except VeilError:
        return None


def _strip(data: bytes, sequence_frames: int | None, drop_sequence: bool = False) -> bytes:
    top = list(boxes(data))
    if not top or top[0].type != b"ftyp" or top[0].end - top[0].body < 8:
        raise CorruptInput("no ftyp box first")
    if sum(b.type == b"ftyp" for b in top) > 1:
        raise CorruptInput("two ftyp boxes")
    moovs = [b for b in top if b.type == b"moov"]
    if moovs and sequence_frames is None:
        # An image sequence whose frames the caller did not decode: they would go unchecked.
        if not drop_sequence:
            raise UnsupportedFormat("HEIF image sequences are re-encoded")
        moovs = []
    if len(moovs) > 1 or (moovs and any(b.type in (b"moof", b"mfra") for b in top)):
        raise UnsupportedFormat("two movies or a fragmented movie")
    metas = [b for b in top if b.type == b"meta"]
    if len(metas) != 1:
        raise CorruptInput(f"{len(metas)} meta boxes at the top level, expected 1")
    meta = _parse_meta(data, metas[0])
    kept = _kept_items(meta)
    _check_separate(meta, kept)
    payloads = {i: _item_data(data, meta, i) for i in kept if i in meta.locations}
    ranges = [
        extent
        for i in kept
        if i in meta.locations and meta.locations[i].method == 0
        for extent in meta.locations[i].extents
    ]
    sequence = None
    if moovs and sequence_frames is not None:
        sequence = _parse_sequence(data, moovs[0], meta, kept, sequence_frames)
        _check_items_are_frames(data, sequence, payloads)
        ranges += [chunk for track in sequence.tracks for chunk in track.chunks]
    spans = _Spans(data, ranges)
    if sequence is not None and any(spans.overlaps(o, n) for o, n in sequence.dropped):
        raise UnsupportedFormat("a dropped track or item shares bytes with a kept frame")
    ftyp = data[top[0].start : top[0].end]

    def head(mdat_at: int) -> bytes:
        def move(offset: int, length: int) -> int:
            return mdat_at + spans.moved(offset, length)

        built = _build_meta(meta, kept, payloads, move)
        return built + (_build_moov(data, sequence, move) if sequence else b"")

    # Offset fields have fixed sizes, so the boxes before mdat do not change size with the
    # offsets written into them: build them once to measure where mdat's data begins, then
    # again with offsets.
    mdat_header = 8 if spans.size + 8 <= _U32 else 16  # see `box`
    draft = head(0)
    final = head(len(ftyp) + len(draft) + mdat_header)
    if len(final) != len(draft):
        raise UnsupportedFormat("offsets crossed 4 GiB between passes")
    mdat = box(b"mdat", spans.joined()) if spans.size else b""
    # The movie, its tracks and their media keep the encoder's clock time otherwise.
    return zero_times(ftyp + final + mdat) if sequence else ftyp + final + mdat


class _Spans:
    """The byte ranges of the source that the output keeps, merged where they overlap or
    touch (an AVIF's primary item is often the very bytes of its first frame), laid end to
    end in source order as the new ``mdat``; bytes between them are left behind."""

    def __init__(self, data: bytes, ranges: list[tuple[int, int]]) -> None:
        merged: list[list[int]] = []
        for offset, length in sorted(ranges):
            if offset + length > len(data):
                raise CorruptInput("data extends past the end of the file")
            if merged and offset <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], offset + length)
            else:
                merged.append([offset, offset + length])
        self._data = data
        self._starts = [start for start, _ in merged]
        self._ends = [end for _, end in merged]
        self._at: list[int] = []
        self.size = 0
        for start, end in merged:
            self._at.append(self.size)
            self.size += end - start

    def joined(self) -> bytes:
        return b"".join(self._data[a:b] for a, b in zip(self._starts, self._ends, strict=True))

    def _index(self, offset: int) -> int:
        return bisect_right(self._starts, offset) - 1

    def moved(self, offset: int, length: int) -> int:
        """Where the kept range at ``offset`` lies in the new mdat's data."""
        index = self._index(offset)
        if index < 0 or offset + length > self._ends[index]:  # every kept range is in a span
            raise CorruptInput("internal: a kept range outside the kept bytes")
        return self._at[index] + offset - self._starts[index]

    def overlaps(self, offset: int, length: int) -> bool:
        index = self._index(offset + length - 1) if length else -1
        return index >= 0 and self._ends[index] > offset


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


def _build_meta(
    meta: _Meta, kept: list[int], payloads: dict[int, bytes], move: Callable[[int, int], int]
) -> bytes:
    wide = max(kept) > _U16  # 32-bit item ids need the later box versions
    properties, associations = _kept_properties(meta, kept)
    idat_items = [i for i in kept if i in payloads and meta.locations[i].method == 1]
    children = [
        # handler "pict" with an empty name (the name is free text)
        _hdlr(b"pict"),
        _dinf(1),
        full_box(b"pitm", int(wide), 0, meta.primary.to_bytes(4 if wide else 2, "big")),
        _build_iloc(meta, kept, payloads, move, wide),
        _build_iinf(meta, kept),
        _build_iref(meta, kept, wide),
        box(b"iprp", box(b"ipco", b"".join(properties)) + _build_ipma(associations, wide)),
    ]
    if idat_items:
        children.append(box(b"idat", b"".join(payloads[i] for i in idat_items)))
    return full_box(b"meta", 0, 0, b"".join(children))


def _hdlr(handler: bytes) -> bytes:
    """A handler box with an empty name: the name is free text (often the writing software),
    and no decoder reads it."""
    return full_box(b"hdlr", 0, 0, bytes(4) + handler + bytes(12) + b"\x00")


def _dinf(count: int) -> bytes:
    """``count`` data references, each "in this file" (flag 1, no location string)."""
    entries = full_box(b"url ", 0, 1, b"") * count
    return box(b"dinf", full_box(b"dref", 0, 0, count.to_bytes(4, "big") + entries))


def _build_iloc(
    meta: _Meta,
    kept: list[int],
    payloads: dict[int, bytes],
    move: Callable[[int, int], int],
    wide: bool,
) -> bytes:
    """Version 1 (2 for 32-bit ids): mdat items keep their extents, moved to where their bytes
    now lie; an idat item's extents are joined into one, idat being rebuilt item after item."""
    located = [i for i in kept if i in payloads]
    extents: dict[int, list[tuple[int, int]]] = {}
    idat_at = 0
    for item in located:
        location = meta.locations[item]
        if location.method == 0:
            extents[item] = [(move(offset, length), length) for offset, length in location.extents]
        else:
            length = len(payloads[item])
            extents[item] = [(idat_at, length)] if length else []
            idat_at += length
    large = any(offset + length > _U32 for e in extents.values() for offset, length in e)
    size = 8 if large else 4
    entries = []
    for item in located:
        entries.append(
            item.to_bytes(4 if wide else 2, "big")
            + meta.locations[item].method.to_bytes(2, "big")
            + bytes(2)  # data_reference_index 0: this file
            + len(extents[item]).to_bytes(2, "big")  # 0 when the item has no data
            + b"".join(o.to_bytes(size, "big") + n.to_bytes(size, "big") for o, n in extents[item])
        )
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


# -- image sequences (ISO/IEC 14496-12 tracks; 23008-12 section 7) -------------------------
# The boxes kept in each container of an image sequence's movie: what a player needs to show
# the frames at their times. Dropped: udta and meta (names, GPS, EXIF, XMP, cover art), track
# groups and selection, sub-sample and auxiliary (encryption) information, free space.
_MOVIE_BOXES = {
    b"moov": frozenset({b"mvhd", b"trak"}),
    b"trak": frozenset({b"tkhd", b"tref", b"edts", b"mdia"}),
    b"edts": frozenset({b"elst"}),
    b"mdia": frozenset({b"mdhd", b"hdlr", b"minf"}),
    b"minf": frozenset({b"vmhd", b"dinf", b"stbl"}),
    b"stbl": frozenset(
        {
            b"stsd",
            b"stts",
            b"ctts",
            b"cslg",
            b"stss",
            b"sdtp",
            b"stsc",
            b"stsz",
            b"stco",
            b"co64",
            b"sgpd",
            b"sbgp",
        }
    ),
}
# Sample entries of coded pictures; encrypted (encv) and restricted (resv) ones are refused.
_SEQUENCE_CODECS = frozenset({b"av01", b"hvc1", b"hev1", b"avc1", b"avc3", b"vvc1", b"vvi1"})
_PICTURE_HANDLERS = frozenset({b"pict", b"vide"})
# Boxes of a visual sample entry a decoder uses: codec configuration, aspect, crop, colour, HDR
# light levels, bit rate, coding constraints, the auxiliary (alpha) type.
_ENTRY_BOXES = frozenset(
    {
        b"av1C",
        b"hvcC",
        b"avcC",
        b"vvcC",
        b"colr",
        b"pasp",
        b"clap",
        b"btrt",
        b"ccst",
        b"auxi",
        b"clli",
        b"mdcv",
        b"cclv",
        b"amve",
        b"fiel",
    }
)
# VisualSampleEntry (14496-12 12.1.3): its fixed fields, then boxes; compressorname is free
# text, usually the encoder's name.
_VISUAL_FIELDS = 78
_COMPRESSOR_NAME = slice(42, 74)


@dataclass
class _Track:
    box: Box
    id: int
    handler: bytes
    references: dict[bytes, list[int]]
    codecs: set[bytes]
    alpha: bool
    chunks: list[tuple[int, int]]  # (file offset, length) of each chunk, in order
    first_sample: tuple[int, int]  # (file offset, size)
    samples: int


@dataclass
class _Sequence:
    moov: Box
    tracks: list[_Track]  # the shown track, then its alpha track if it has one
    #: (offset, length) of bytes that must not be kept: dropped tracks' and items' data
    dropped: list[tuple[int, int]]


def _children(data: bytes, parent: Box, skip: int = 0) -> dict[bytes, list[Box]]:
    found: dict[bytes, list[Box]] = {}
    for child in boxes(data, parent.body + skip, parent.end):
        found.setdefault(child.type, []).append(child)
    return found


def _only(found: dict[bytes, list[Box]], *kinds: bytes) -> Box:
    """The one box of any of ``kinds``; `CorruptInput` when there is none or more than one."""
    matches = [b for kind in kinds for b in found.get(kind, [])]
    if len(matches) != 1:
        raise CorruptInput(f"{len(matches)} {kinds[0]!r} boxes, expected 1")
    return matches[0]


def _parse_sequence(data: bytes, moov: Box, meta: _Meta, kept: list[int], frames: int) -> _Sequence:
    """The track a reader shows (the first picture track that is not auxiliary, as libavif
    picks it) and its alpha track; `UnsupportedFormat` unless it has exactly ``frames``
    samples, so every kept frame is one the caller compares."""
    parts = _children(data, moov)
    tracks = [_parse_track(data, trak) for trak in parts.get(b"trak", [])]
    shown = next(
        (
            t
            for t in tracks
            if t.handler in _PICTURE_HANDLERS and b"auxl" not in t.references and _coded(t)
        ),
        None,
    )
    if shown is None:
        raise UnsupportedFormat("no picture track")
    if shown.samples != frames:
        raise UnsupportedFormat(f"track of {shown.samples} frames, {frames} decoded")
    kept_tracks = [shown]
    alpha = next(
        (t for t in tracks if t.alpha and shown.id in t.references.get(b"auxl", []) and _coded(t)),
        None,
    )
    if alpha is not None:
        if alpha.samples != shown.samples:
            raise UnsupportedFormat("alpha track and picture track differ in length")
        kept_tracks.append(alpha)
    for track in kept_tracks:
        _check_self_contained(data, track)
    dropped = [c for t in tracks if all(t is not k for k in kept_tracks) for c in t.chunks]
    dropped += [
        extent
        for item, location in meta.locations.items()
        if item not in kept and location.method == 0
        for extent in location.extents
    ]
    # Metadata items of the movie or a track (libavif repeats EXIF and XMP in each track).
    for holder in [moov, *parts.get(b"trak", [])]:
        for inner in _children(data, holder).get(b"meta", []):
            ilocs = _children(data, inner, 4).get(b"iloc", [])  # 4: FullBox version, flags
            for iloc in ilocs:
                for location in _parse_iloc(_Reader(data, iloc.body, iloc.end)).values():
                    if location.method == 0 and not location.data_reference:
                        dropped += location.extents
    return _Sequence(moov, kept_tracks, dropped)


def _coded(track: _Track) -> bool:
    """Whether every sample description of ``track`` is of coded pictures this walk keeps."""
    return bool(track.codecs) and track.codecs <= _SEQUENCE_CODECS


def _parse_track(data: bytes, trak: Box) -> _Track:
    parts = _children(data, trak)
    tkhd = _only(parts, b"tkhd")
    header = _Reader(data, tkhd.body, tkhd.end)
    version, _ = header.full_box_header()
    header.take(16 if version == 1 else 8)  # creation and modification times
    track_id = header.uint(4)
    references: dict[bytes, list[int]] = {}
    for tref in parts.get(b"tref", []):
        for ref in boxes(data, tref.body, tref.end):
            ids = _Reader(data, ref.body, ref.end)
            references.setdefault(ref.type, []).extend(
                ids.uint(4) for _ in range((ref.end - ref.body) // 4)
            )
    media = _children(data, _only(parts, b"mdia"))
    hdlr = _only(media, b"hdlr")
    handler = _Reader(data, hdlr.body, hdlr.end)
    handler.full_box_header()
    handler.uint(4)  # pre_defined
    kind = handler.take(4)
    table = _children(data, _only(_children(data, _only(media, b"minf")), b"stbl"))
    entries = _sample_entries(data, _only(table, b"stsd"))
    codecs = {e.type for e in entries}
    alpha = any(_entry_is_alpha(data, e) for e in entries if e.type in _SEQUENCE_CODECS)
    chunks, first, samples = _chunks(data, table)
    return _Track(trak, track_id, kind, references, codecs, alpha, chunks, first, samples)


def _sample_entries(data: bytes, stsd: Box) -> list[Box]:
    fields = _Reader(data, stsd.body, stsd.end)
    fields.full_box_header()
    count = fields.uint(4)
    entries = list(boxes(data, fields.position, stsd.end))
    if len(entries) != count:
        raise CorruptInput("sample description count does not match its entries")
    return entries


def _entry_is_alpha(data: bytes, entry: Box) -> bool:
    if entry.end - entry.body < _VISUAL_FIELDS:
        raise CorruptInput(f"{entry.type!r} sample entry too short")
    for child in boxes(data, entry.body + _VISUAL_FIELDS, entry.end):
        if child.type == b"auxi":  # the auxiliary track's type (AVIF, alpha sequences)
            fields = _Reader(data, child.body, child.end)
            fields.full_box_header()
            return fields.cstring() in _ALPHA_TYPES
    return False


def _chunks(
    data: bytes, table: dict[bytes, list[Box]]
) -> tuple[list[tuple[int, int]], tuple[int, int], int]:
    """Each chunk's (offset, length), the first sample's (offset, size) and the sample count,
    from the chunk offsets, sample sizes and sample-to-chunk tables."""
    if b"stz2" in table:
        raise UnsupportedFormat("compact sample sizes (stz2)")
    offsets_box = _only(table, b"stco", b"co64")
    fields = _Reader(data, offsets_box.body, offsets_box.end)
    fields.full_box_header()
    width = 8 if offsets_box.type == b"co64" else 4
    offsets = [fields.uint(width) for _ in range(fields.uint(4))]
    stsz = _only(table, b"stsz")
    fields = _Reader(data, stsz.body, stsz.end)
    fields.full_box_header()
    constant, count = fields.uint(4), fields.uint(4)
    sizes = [] if constant else [fields.uint(4) for _ in range(count)]
    stsc = _only(table, b"stsc")
    fields = _Reader(data, stsc.body, stsc.end)
    fields.full_box_header()
    runs = []
    for _ in range(fields.uint(4)):
        runs.append((fields.uint(4), fields.uint(4)))
        fields.uint(4)  # sample_description_index
    chunks: list[tuple[int, int]] = []
    sample = 0
    for index, (first_chunk, per_chunk) in enumerate(runs):
        stop = runs[index + 1][0] if index + 1 < len(runs) else len(offsets) + 1
        if first_chunk != len(chunks) + 1 or stop <= first_chunk or per_chunk == 0:
            raise CorruptInput("sample-to-chunk table out of order")
        for chunk in range(first_chunk, stop):
            if chunk > len(offsets) or sample + per_chunk > count:
                raise CorruptInput("sample tables disagree")
            length = constant * per_chunk or sum(sizes[sample : sample + per_chunk])
            if length == 0:
                raise CorruptInput("chunk of empty samples")
            chunks.append((offsets[chunk - 1], length))
            sample += per_chunk
    if len(chunks) != len(offsets) or sample != count:
        raise CorruptInput("sample tables disagree")
    first = (offsets[0], constant or sizes[0]) if chunks else (0, 0)
    return chunks, first, count


def _check_self_contained(data: bytes, track: _Track) -> None:
    """Every data reference of a kept track must say "in this file"; the output's are."""
    media = _children(data, _only(_children(data, track.box), b"mdia"))
    info = _children(data, _only(media, b"minf"))
    dref = _only(_children(data, _only(info, b"dinf")), b"dref")
    entries = _sample_entries(data, dref)  # same layout: FullBox, count, boxes
    for entry in entries:
        fields = _Reader(data, entry.body, entry.end)
        if entry.type != b"url " or not fields.full_box_header()[1] & 1:
            raise UnsupportedFormat("frames stored in another file")


def _check_items_are_frames(data: bytes, sequence: _Sequence, payloads: dict[int, bytes]) -> None:
    """A reader shows a sequence's track, not its still items, so a kept item is checked only
    as a frame: each must hold the coded bytes of a kept track's first frame (as libavif
    writes them), never a picture the caller did not see."""
    firsts = {data[o : o + n] for o, n in (t.first_sample for t in sequence.tracks)}
    for item, payload in payloads.items():
        if payload not in firsts:
            raise UnsupportedFormat(f"still item {item} is not a frame of the sequence")


def _build_moov(data: bytes, sequence: _Sequence, move: Callable[[int, int], int]) -> bytes:
    """The movie with the kept tracks and, in them, the allowed boxes only."""
    kept = {t.box.start: t for t in sequence.tracks}
    ids = {t.id for t in sequence.tracks}

    def rebuild(parent: Box, track: _Track | None) -> bytes:
        parts = []
        for child in boxes(data, parent.body, parent.end):
            if child.type not in _MOVIE_BOXES[parent.type]:
                continue
            if child.type == b"trak":
                if child.start in kept:
                    parts.append(rebuild(child, kept[child.start]))
            elif child.type in _MOVIE_BOXES:
                parts.append(rebuild(child, track))
            else:
                parts.append(_movie_leaf(data, child, track, ids, move))
        return box(parent.type, b"".join(parts))

    return rebuild(sequence.moov, None)


def _movie_leaf(
    data: bytes,
    leaf: Box,
    track: _Track | None,
    ids: set[int],
    move: Callable[[int, int], int],
) -> bytes:
    if track is None or leaf.type in (b"mvhd", b"tkhd", b"mdhd"):
        return box(leaf.type, data[leaf.body : leaf.end])  # times zeroed on the whole file
    if leaf.type == b"hdlr":
        return _hdlr(track.handler)
    if leaf.type == b"dinf":
        return _dinf(len(_sample_entries(data, _only(_children(data, leaf), b"dref"))))
    if leaf.type == b"stsd":
        return _build_stsd(data, leaf)
    if leaf.type in (b"stco", b"co64"):
        offsets = [move(offset, length) for offset, length in track.chunks]
        large = any(offset > _U32 for offset in offsets)
        body = len(offsets).to_bytes(4, "big") + b"".join(
            o.to_bytes(8 if large else 4, "big") for o in offsets
        )
        return full_box(b"co64" if large else b"stco", 0, 0, body)
    if leaf.type == b"tref":  # references to dropped tracks go with them
        refs = []
        for ref in boxes(data, leaf.body, leaf.end):
            targets = [
                data[p : p + 4]
                for p in range(ref.body, ref.end - 3, 4)
                if int.from_bytes(data[p : p + 4], "big") in ids
            ]
            if targets:
                refs.append(box(ref.type, b"".join(targets)))
        return box(b"tref", b"".join(refs)) if refs else b""
    return box(leaf.type, data[leaf.body : leaf.end])


def _build_stsd(data: bytes, stsd: Box) -> bytes:
    """The sample descriptions with a blank compressor name and only the boxes a decoder
    uses; an ICC profile loses its date as in `_clean_property`."""
    entries = _sample_entries(data, stsd)
    cleaned = []
    for entry in entries:
        if entry.type not in _SEQUENCE_CODECS:
            raise UnsupportedFormat(f"{entry.type!r} frames")
        if entry.end - entry.body < _VISUAL_FIELDS:
            raise CorruptInput(f"{entry.type!r} sample entry too short")
        fields = bytearray(data[entry.body : entry.body + _VISUAL_FIELDS])
        fields[_COMPRESSOR_NAME] = bytes(32)
        inner = []
        for child in boxes(data, entry.body + _VISUAL_FIELDS, entry.end):
            if child.type in _ENTRY_BOXES:
                body = data[child.body : child.end]
                inner.append(_clean_property(_Property(child.type, box(child.type, body), body)))
        cleaned.append(box(entry.type, bytes(fields) + b"".join(inner)))
    version_flags = data[stsd.body : stsd.body + 4]
    body = version_flags + len(cleaned).to_bytes(4, "big") + b"".join(cleaned)
    return box(b"stsd", body)
