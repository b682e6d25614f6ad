"""Sound recordings (M4A, MP3, Ogg, Opus, WAV, FLAC) read byte by byte: the signature of each
container, the size it declares, and the tag blocks FFmpeg does not show.

A recording is cleaned as a video is, by `veil.formats.video.VideoHandler` (with
``sound=True``; the registry is `AUDIO_HANDLERS` there): the sound packets are copied bit for
bit into a fresh container of the same kind, so no sample changes, and nothing else is
carried over. Dropped: ID3v1 and ID3v2 tags, APE tags and Lyrics3 blocks (MP3); iTunes and
QuickTime atoms (title, artist, ``©day``, ``©too``, ``©xyz`` location, ``covr`` cover art)
and 3GPP asset boxes (M4A); Vorbis comments and their cover pictures (Ogg, Opus, FLAC); FLAC
``PICTURE`` and ``APPLICATION`` blocks; RIFF ``LIST``/``INFO``, Broadcast Wave ``bext``
(originator, recording date and time), ``iXML``, ``axml`` and XMP chunks (WAV). The new
container holds only what FFmpeg's muxer must write: the codec setup (a Vorbis or Opus
comment header with the vendor "ffmpeg" and no comments, which the Ogg and FLAC muxers build
afresh rather than copy), and, for MP3, an empty ID3v2 header and the Xing/LAME frame that
carries the gapless-playback lengths (its encoder field says only "Lavf").

This module only reads bytes: `VideoHandler` dispatches on its functions, so the handlers
themselves are declared next to it in `veil.formats.video`, and the import runs one way.

Limits: what an encoder wrote inside the sound packets travels with them (FFmpeg's AAC
encoder names its version in a fill element, LAME pads frames with its own); an M4A whose
gapless lengths are an iTunes ``iTunSMPB`` atom is refused, since the new file could not say
them and players would then add a few milliseconds of sound at each end.
"""

from __future__ import annotations

import struct
from pathlib import Path

from ..errors import CorruptInput
from ..fields import OTHER, PICTURE, TEXT, MetaField

#: A tag read here, as FFmpeg would name it ("title", "artist"), for video's tag judge.
Tag = tuple[str, str]

# -- signatures ----------------------------------------------------------------------------
# ISO BMFF brands of an audio-only MP4 (Apple: M4A/M4B/M4P, Adobe: F4A/F4B), and the generic
# brands phones and encoders give a recording (Android writes "mp42" or "isom").
_AUDIO_BRANDS = frozenset({b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "})
_GENERIC_BRANDS = frozenset(
    {b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"dash"}
)
# MPEG audio frame header (ISO/IEC 11172-3 2.4.1.3): 11 sync bits, then version, layer.
_MPEG_VERSIONS = {0: 2.5, 2: 2, 3: 1}  # 1 is reserved
_LAYER_3 = 1


def is_m4a(prefix: bytes) -> bool:
    """An ISO BMFF file whose ``ftyp`` names an audio brand, or a generic one as its major
    brand (HEIF and AVIF stills name their own)."""
    if prefix[4:8] != b"ftyp":
        return False
    size = int.from_bytes(prefix[:4], "big")
    brands = [prefix[i : i + 4] for i in range(16, min(size, len(prefix)) - 3, 4)]
    return prefix[8:12] in _AUDIO_BRANDS | _GENERIC_BRANDS or bool(_AUDIO_BRANDS & {*brands})


def is_mp3(prefix: bytes) -> bool:
    """An ID3v2 tag, or an MPEG-1/2/2.5 Layer III frame header with a valid bit rate and
    sample rate (an ADTS AAC header has layer 0 and is not taken)."""
    if prefix[:3] == b"ID3":
        return True
    return _frame_header(prefix) is not None


def is_ogg(prefix: bytes) -> bool:
    return prefix[:4] == b"OggS"


def is_opus(prefix: bytes) -> bool:
    """An Ogg file whose first packet is an Opus identification header (RFC 7845, 5.1)."""
    return is_ogg(prefix) and b"OpusHead" in prefix[26:64]


def is_wav(prefix: bytes) -> bool:
    return prefix[:4] == b"RIFF" and prefix[8:12] == b"WAVE"


def is_flac(prefix: bytes) -> bool:
    return prefix[:4] == b"fLaC"


def _frame_header(header: bytes) -> tuple[float, int] | None:
    """(MPEG version, channel count) of an MPEG audio Layer III frame header, or None."""
    if len(header) < 4 or header[0] != 0xFF or header[1] & 0xE0 != 0xE0:
        return None
    version = _MPEG_VERSIONS.get(header[1] >> 3 & 3)
    layer, bitrate, rate = header[1] >> 1 & 3, header[2] >> 4, header[2] >> 2 & 3
    if version is None or layer != _LAYER_3 or bitrate in (0, 15) or rate == 3:
        return None
    return version, 1 if header[3] >> 6 == 3 else 2


# -- declared sizes ------------------------------------------------------------------------
def mp3_end(path: Path, size: int) -> int | None:
    """How long the Xing/Info (or VBRI) frame says the MP3 stream is; None without one (a
    constant bit rate file declares nothing).

    Encoders disagree on whether that count includes an ID3v2 tag before the frames, so it
    is taken as it stands, without the tag: a lower bound of where the file ends either way.
    """
    with path.open("rb") as fh:
        start = _id3v2_length(fh.read(10))
        fh.seek(start)
        frame = fh.read(64)
    found = _frame_header(frame)
    if found is None:
        return None
    version, channels = found
    # The Xing header sits after the side information (ISO/IEC 11172-3 2.4.1.7), whose
    # length depends on the version and the channel count; VBRI always 32 bytes in.
    side = (17 if channels == 1 else 32) if version == 1 else (9 if channels == 1 else 17)
    at = 4 + side
    count = 0
    if frame[at : at + 4] in (b"Xing", b"Info"):
        flags = int.from_bytes(frame[at + 4 : at + 8], "big")
        if flags & 2:  # the byte count, after the frame count when there is one
            offset = at + 8 + (4 if flags & 1 else 0)
            count = int.from_bytes(frame[offset : offset + 4], "big")
    elif frame[36:40] == b"VBRI":
        count = int.from_bytes(frame[46:50], "big")
    return count or None


def _id3v2_length(header: bytes) -> int:
    """The length of an ID3v2 tag at the start of ``header`` (its footer included), or 0."""
    if header[:3] != b"ID3" or len(header) < 10:
        return 0
    length = _syncsafe(header[6:10])
    return 10 + length + (10 if header[5] & 0x10 else 0)


def _syncsafe(raw: bytes) -> int:
    """An ID3v2 "synchsafe" integer: seven bits a byte."""
    value = 0
    for byte in raw:
        value = value << 7 | (byte & 0x7F)
    return value


def wav_end(path: Path, size: int) -> int | None:
    """Where the RIFF header says a WAV file ends; None where the size is unset (0, or all
    ones: a recorder stopped before it could write it)."""
    with path.open("rb") as fh:
        header = fh.read(12)
    declared = int.from_bytes(header[4:8], "little")
    if declared in (0, 0xFFFFFFFF):
        return None
    return 8 + declared


def flac_end(path: Path, size: int) -> int | None:
    """Where a FLAC file's metadata blocks end (the frames after them declare no length;
    FLAC's sample count is checked against the packets instead)."""
    at = 4
    with path.open("rb") as fh:
        while True:
            fh.seek(at)
            header = fh.read(4)
            if len(header) < 4:
                return at + 4  # the blocks run past the end of the file
            at += 4 + int.from_bytes(header[1:4], "big")
            if header[0] & 0x80:  # the last metadata block
                return at


#: How far from its end an Ogg file is searched for its last page (a page is at most 65307
#: bytes: a 27-byte header, 255 lacing values and 255 segments of 255 bytes).
_OGG_TAIL = 2 * 65307
_OGG_EOS = 0x04


def ogg_end(path: Path, size: int) -> int | None:
    """Where the last whole Ogg page ends (RFC 3533, 6); `CorruptInput` when that page does
    not end its stream, which is how a file cut off anywhere looks.

    A page is known by its checksum, so "OggS" inside the sound data is not mistaken for one.
    """
    with path.open("rb") as fh:
        fh.seek(max(0, size - _OGG_TAIL))
        tail = fh.read()
    at = len(tail)
    while (at := tail.rfind(b"OggS", 0, at)) >= 0:
        page = _ogg_page(tail, at)
        if page is None:
            continue
        if not tail[at + 5] & _OGG_EOS:
            raise CorruptInput("Ogg file is truncated: its last page does not end the stream")
        return size - len(tail) + at + len(page)
    return None


def _ogg_page(data: bytes, at: int) -> bytes | None:
    """The whole Ogg page at ``at`` when its checksum agrees, else None."""
    if len(data) < at + 27 or data[at + 4] != 0:  # stream structure version 0
        return None
    segments = data[at + 26]
    lacing = data[at + 27 : at + 27 + segments]
    page = data[at : at + 27 + segments + sum(lacing)]
    if len(lacing) < segments or len(page) < 27 + segments + sum(lacing):
        return None
    crc = int.from_bytes(page[22:26], "little")
    return page if _ogg_crc(page[:22] + bytes(4) + page[26:]) == crc else None


def _ogg_crc(data: bytes) -> int:
    """Ogg's CRC-32: polynomial 0x04C11DB7, not reflected, starting from zero."""
    crc = 0
    for byte in data:
        crc = (crc << 8 & 0xFFFFFFFF) ^ _OGG_CRC_TABLE[crc >> 24 ^ byte]
    return crc


def _crc_entry(index: int) -> int:
    value = index << 24
    for _ in range(8):
        value = (value << 1 ^ 0x04C11DB7 if value & 0x80000000 else value << 1) & 0xFFFFFFFF
    return value


_OGG_CRC_TABLE = tuple(_crc_entry(i) for i in range(256))


# -- what FFmpeg does not show -------------------------------------------------------------
#: Cap on the tag bytes read from the end of an MP3 (APE tags can hold a cover picture).
_TAG_LIMIT = 16 << 20
_ID3V1 = 128
# ID3v1 (and v1.1): title, artist, album, year, comment, each fixed-width text.
_ID3V1_FIELDS = (("title", 3, 33), ("artist", 33, 63), ("album", 63, 93), ("date", 93, 97))
_APE_FOOTER = 32
_APE_TEXT, _APE_BINARY = 0, 1


def mp3_tags(path: Path) -> tuple[list[Tag], list[MetaField]]:
    """The ID3v1 tag, Lyrics3 block and APE tag at the end of an MP3. FFmpeg reads them only
    when there is no ID3v2 tag at the start, and taggers often write both."""
    size = path.stat().st_size
    tags: list[Tag] = []
    found: list[MetaField] = []
    with path.open("rb") as fh:
        end = size
        fh.seek(max(0, end - _ID3V1))
        last = fh.read(_ID3V1)
        if len(last) == _ID3V1 and last[:3] == b"TAG":
            tags += _id3v1(last)
            end -= _ID3V1
        fh.seek(max(0, end - 15))
        lyrics = fh.read(15)
        if lyrics[6:] == b"LYRICS200" and lyrics[:6].isdigit():
            found.append(MetaField(TEXT, "Lyrics", "lyrics block (Lyrics3: words, names)"))
            end -= 15 + int(lyrics[:6])
        fh.seek(max(0, end - _APE_FOOTER))
        footer = fh.read(_APE_FOOTER)
        if footer[:8] == b"APETAGEX" and len(footer) == _APE_FOOTER:
            length, count = struct.unpack("<II", footer[12:20])
            if _APE_FOOTER <= length <= min(end, _TAG_LIMIT):
                fh.seek(end - length)
                ape_tags, ape_found = _ape_items(fh.read(length - _APE_FOOTER), count)
                tags += ape_tags
                found += ape_found
            else:
                found.append(MetaField(OTHER, "APETag", "APE tag (names, text, pictures)"))
    return tags, found


def _id3v1(block: bytes) -> list[Tag]:
    tags = [(key, _latin1(block[start:stop])) for key, start, stop in _ID3V1_FIELDS]
    comment = block[97:127]
    if comment[28] == 0 and comment[29]:  # ID3v1.1: the last two bytes are a track number
        comment = comment[:28]
    tags.append(("comment", _latin1(comment)))
    return [(key, value) for key, value in tags if value]


def _latin1(raw: bytes) -> str:
    return raw.split(b"\0")[0].decode("latin-1").strip()


def _ape_items(body: bytes, count: int) -> tuple[list[Tag], list[MetaField]]:
    """The items of an APE tag v1/v2 (after its header, if any): each a value length, flags,
    a key ending in a zero byte, then the value: UTF-8 text, binary data or a link."""
    tags: list[Tag] = []
    found: list[MetaField] = []
    at = _APE_FOOTER if body[:8] == b"APETAGEX" else 0
    for _ in range(count):
        if at + 8 > len(body):
            break
        length, flags = struct.unpack("<II", body[at : at + 8])
        key_end = body.find(b"\0", at + 8)
        if key_end < 0:
            break
        key = body[at + 8 : key_end].decode("ascii", "replace")
        value = body[key_end + 1 : key_end + 1 + length]
        at = key_end + 1 + length
        if flags >> 1 & 3 == _APE_BINARY:
            if key.lower().startswith("cover art"):
                found.append(MetaField(PICTURE, "CoverArt", "cover picture in the APE tag"))
            else:
                found.append(MetaField(OTHER, f"Tag:{key}", f"binary data ({length} bytes)"))
        else:
            text = " / ".join(v for v in value.decode("utf-8", "replace").split("\0") if v)
            tags.append((_APE_NAMES.get(key.lower(), key), text))
    return tags, found


# APE keys whose FFmpeg names differ (the rest are compared in lower case).
_APE_NAMES = {"year": "date", "record date": "date", "record location": "location"}

# RIFF chunks a player needs or that say nothing about anyone: not reported. "LIST" INFO
# lists, "bext" and "id3 " chunks FFmpeg reads itself (as tags).
_WAV_PLAIN = frozenset(
    {
        b"fmt ",
        b"data",
        b"fact",
        b"ds64",
        b"JUNK",
        b"junk",
        b"PAD ",
        b"pad ",
        b"FLLR",
        b"filr",
        b"cue ",
        b"smpl",
        b"inst",
        b"plst",
        b"acid",
        b"levl",
        b"bext",
        b"id3 ",
        b"ID3 ",
    }
)
_WAV_CHUNKS = {
    b"iXML": MetaField(TEXT, "iXML", "iXML production notes (project, scene, take, notes)"),
    b"axml": MetaField(TEXT, "XML", "XML metadata (axml: names, dates, places)"),
    b"_PMX": MetaField(OTHER, "XMP", "XMP metadata (names, dates, places, software)"),
    b"cart": MetaField(TEXT, "Cart", "broadcast cart chunk (title, artist, client, dates)"),
    b"DISP": MetaField(TEXT, "Title", "display title (DISP chunk)"),
}
_WAV_CHUNK_LIMIT = 4096


def wav_chunks(path: Path) -> tuple[list[Tag], list[MetaField]]:
    """The chunks of a WAV file FFmpeg does not read: iXML, axml, XMP, cart, the labels and
    notes on its cue points, and any other a player does not need."""
    found: list[MetaField] = []
    size = path.stat().st_size
    with path.open("rb") as fh:
        at = 12
        for _ in range(_WAV_CHUNK_LIMIT):
            fh.seek(at)
            header = fh.read(12)
            if len(header) < 8:
                break
            kind, length = header[:4], int.from_bytes(header[4:8], "little")
            if kind == b"LIST":
                if header[8:12] != b"INFO":
                    note = "labels and notes on cue points (LIST chunk)"
                    found.append(MetaField(TEXT, "CueLabels", note))
            elif kind in _WAV_CHUNKS:
                found.append(_WAV_CHUNKS[kind])
            elif kind not in _WAV_PLAIN:
                name = kind.decode("latin-1")
                note = f"'{name}' chunk (data a player does not need)"
                found.append(MetaField(OTHER, "RiffChunk", note))
            if kind == b"data" and length == 0xFFFFFFFF:
                break  # the size of a recording stopped early: the samples run to the end
            at += 8 + length + (length & 1)
            if at >= size:
                break
    return [], found


_FLAC_APPLICATION, _FLAC_PICTURE = 2, 6
# STREAMINFO, PADDING, SEEKTABLE, VORBIS_COMMENT (FFmpeg's tags), CUESHEET (its chapters).
_FLAC_PLAIN = frozenset({0, 1, 3, 4, 5})


def flac_blocks(path: Path) -> tuple[list[Tag], list[MetaField]]:
    """The FLAC metadata blocks FFmpeg does not show: APPLICATION blocks (a program's own
    data, e.g. a recorder's settings) and reserved kinds. Pictures it shows as a track."""
    found: list[MetaField] = []
    at = 4
    with path.open("rb") as fh:
        for _ in range(_WAV_CHUNK_LIMIT):
            fh.seek(at)
            header = fh.read(8)
            if len(header) < 4:
                break
            kind, length = header[0] & 0x7F, int.from_bytes(header[1:4], "big")
            if kind == _FLAC_APPLICATION:
                name = header[4:8].decode("latin-1")
                note = f"application data block '{name}' (a program's own data)"
                found.append(MetaField(OTHER, "ApplicationData", note))
            elif kind not in _FLAC_PLAIN and kind != _FLAC_PICTURE:
                found.append(MetaField(OTHER, "FlacBlock", f"metadata block of kind {kind}"))
            at += 4 + length
            if header[0] & 0x80:
                break
    return [], found
