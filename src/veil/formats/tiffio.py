"""TIFF and BigTIFF containers, read and written without touching pixel data.

`read_pages` walks the IFD chain (TIFF 6.0 section 2; BigTIFF as specified by Aware Systems,
https://www.awaresystems.be/imaging/tiff/bigtiff.html) and returns, for each IFD, only the
entries the caller asked for; every other entry is never even resolved, so an odd private tag
cannot trip the reader. `write_tiff` lays out a new file: each page's strips or tiles copied
verbatim, then its IFD with fresh offsets. Anything this module cannot read with certainty
raises `CorruptInput`; callers that have another way (re-encoding) treat that as "not here".
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..errors import CorruptInput

# Field types (TIFF 6.0 section 2, BigTIFF adds 16-18) and the size of one value in bytes.
_TYPE_SIZES = {
    1: 1,  # BYTE
    2: 1,  # ASCII
    3: 2,  # SHORT
    4: 4,  # LONG
    5: 8,  # RATIONAL
    6: 1,  # SBYTE
    7: 1,  # UNDEFINED
    8: 2,  # SSHORT
    9: 4,  # SLONG
    10: 8,  # SRATIONAL
    11: 4,  # FLOAT
    12: 8,  # DOUBLE
    13: 4,  # IFD
    16: 8,  # LONG8
    17: 8,  # SLONG8
    18: 8,  # IFD8
}
_UNSIGNED = {1: "B", 3: "H", 4: "I", 13: "I", 16: "Q", 18: "Q"}
SHORT, LONG, LONG8 = 3, 4, 16


@dataclass(frozen=True)
class Layout:
    """Byte order and kind (classic or BigTIFF) of a file; a rewrite keeps both."""

    order: str  # struct prefix: "<" (II) or ">" (MM)
    big: bool

    @property
    def header(self) -> bytes:
        mark = b"II" if self.order == "<" else b"MM"
        if self.big:  # version 43, offset size 8, reserved 0; first IFD offset follows
            return mark + struct.pack(self.order + "HHH", 43, 8, 0)
        return mark + struct.pack(self.order + "H", 42)

    @property
    def pointer(self) -> str:
        """struct code of an offset (and of an IFD's next-IFD link)."""
        return "Q" if self.big else "I"

    @property
    def inline(self) -> int:
        """Bytes of value an entry holds itself; longer values live elsewhere in the file."""
        return 8 if self.big else 4

    @property
    def offset_type(self) -> int:
        """The field type written for strip and tile offsets."""
        return LONG8 if self.big else LONG


@dataclass(frozen=True)
class Entry:
    """One IFD entry with its value bytes, in the file's byte order."""

    tag: int
    kind: int
    count: int
    raw: bytes

    def numbers(self, layout: Layout) -> tuple[int, ...]:
        """The value as unsigned integers; `CorruptInput` for any other type."""
        code = _UNSIGNED.get(self.kind)
        if code is None:
            msg = f"TIFF tag {self.tag} has type {self.kind}, expected an unsigned integer"
            raise CorruptInput(msg)
        return struct.unpack(f"{layout.order}{self.count}{code}", self.raw)


def read_layout(data: bytes) -> tuple[Layout, int]:
    """The file's layout and the offset of its first IFD."""
    order = {b"II": "<", b"MM": ">"}.get(data[:2])
    if order is None or len(data) < 8:
        raise CorruptInput("not a TIFF header")
    version = struct.unpack(order + "H", data[2:4])[0]
    if version == 42:
        return Layout(order, big=False), struct.unpack(order + "I", data[4:8])[0]
    if version == 43 and len(data) >= 16:
        size, reserved, first = struct.unpack(order + "HHQ", data[4:16])
        if size == 8 and reserved == 0:
            return Layout(order, big=True), first
    raise CorruptInput(f"unsupported TIFF version {version}")


def read_pages(data: bytes, wanted: frozenset[int]) -> tuple[Layout, list[dict[int, Entry]]]:
    """Every IFD of the main chain (SubIFDs are not followed), each as its ``wanted`` entries."""
    layout, offset = read_layout(data)
    pages: list[dict[int, Entry]] = []
    seen: set[int] = set()
    while offset:
        if offset in seen:  # a loop in the chain: libtiff stops too, but we cannot be sure
            raise CorruptInput("TIFF IFD chain loops")
        seen.add(offset)
        entries, offset = read_ifd(data, offset, layout, wanted)
        pages.append(entries)
    if not pages:
        raise CorruptInput("TIFF file has no IFD")
    return layout, pages


def read_ifd(
    data: bytes, offset: int, layout: Layout, wanted: frozenset[int]
) -> tuple[dict[int, Entry], int]:
    """The ``wanted`` entries of the IFD at ``offset`` and the offset of the next IFD (0 at
    the end of a chain); also for IFDs outside the main chain, such as a DNG's SubIFDs."""
    count_code, entry_size = ("Q", 20) if layout.big else ("H", 12)
    count_size = struct.calcsize(count_code)
    if offset + count_size > len(data):
        raise CorruptInput("TIFF IFD offset beyond the end of the file")
    (count,) = struct.unpack_from(layout.order + count_code, data, offset)
    table = offset + count_size
    end = table + count * entry_size
    if end + layout.inline > len(data):
        raise CorruptInput("TIFF IFD runs past the end of the file")
    head = layout.order + ("HHQ" if layout.big else "HHI")
    entries: dict[int, Entry] = {}
    for at in range(table, end, entry_size):
        tag, kind, number = struct.unpack_from(head, data, at)
        if tag not in wanted:
            continue
        if tag in entries:
            raise CorruptInput(f"TIFF tag {tag} appears twice in one IFD")
        size = _TYPE_SIZES.get(kind)
        if size is None:
            raise CorruptInput(f"TIFF tag {tag} has unknown type {kind}")
        length = size * number
        field = at + entry_size - layout.inline
        if length > layout.inline:
            (field,) = struct.unpack_from(layout.order + layout.pointer, data, field)
        if field + length > len(data):
            raise CorruptInput(f"TIFF tag {tag} points past the end of the file")
        entries[tag] = Entry(tag, kind, number, data[field : field + length])
    (following,) = struct.unpack_from(layout.order + layout.pointer, data, end)
    return entries, following


@dataclass(frozen=True)
class Page:
    """What `write_tiff` writes for one page: its entries (without the offsets tag, which is
    written fresh) and the strips or tiles those offsets must point at, in order."""

    entries: tuple[Entry, ...]
    offsets_tag: int
    chunks: tuple[bytes, ...]


def write_tiff(layout: Layout, pages: list[Page]) -> bytes:
    """A new file holding ``pages`` in order: each page's chunks, then its IFD."""
    out = bytearray(layout.header)
    link = len(out)  # where the pointer to the next IFD goes
    out += bytes(struct.calcsize(layout.pointer))
    for page in pages:
        offsets = []
        for chunk in page.chunks:
            offsets.append(_align(out, layout) if chunk else 0)
            out += chunk
        code = layout.pointer
        entry = Entry(
            page.offsets_tag,
            layout.offset_type,
            len(offsets),
            struct.pack(f"{layout.order}{len(offsets)}{code}", *offsets),
        )
        here = _align(out, layout)
        struct.pack_into(layout.order + layout.pointer, out, link, here)
        link = _write_ifd(out, layout, sorted((*page.entries, entry), key=lambda e: e.tag))
    return bytes(out)


def _write_ifd(out: bytearray, layout: Layout, entries: list[Entry]) -> int:
    """Append one IFD (entries sorted by tag, as TIFF requires) and the values that do not
    fit in their entries; returns where its next-IFD pointer lies, still zero."""
    count_code, entry_size = ("Q", 20) if layout.big else ("H", 12)
    start = len(out)
    table = start + struct.calcsize(count_code)
    link = table + entry_size * len(entries)
    out += struct.pack(layout.order + count_code, len(entries))
    out += bytes(entry_size * len(entries) + struct.calcsize(layout.pointer))
    head = layout.order + ("HHQ" if layout.big else "HHI")
    for index, entry in enumerate(entries):
        at = table + index * entry_size
        struct.pack_into(head, out, at, entry.tag, entry.kind, entry.count)
        field = at + entry_size - layout.inline
        if len(entry.raw) <= layout.inline:
            out[field : field + len(entry.raw)] = entry.raw
        else:
            struct.pack_into(layout.order + layout.pointer, out, field, _align(out, layout))
            out += entry.raw
    return link


def _align(out: bytearray, layout: Layout) -> int:
    """Pad to the boundary TIFF asks of IFDs and values (a word; 8 bytes in BigTIFF)."""
    step = 8 if layout.big else 2
    out += bytes(-len(out) % step)
    if not layout.big and len(out) > 0xFFFFFFFF:
        raise CorruptInput("rewritten TIFF passes 4 GiB, beyond classic TIFF offsets")
    return len(out)
