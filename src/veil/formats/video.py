"""Video (MP4, QuickTime, 3GP/3G2, Matroska, WebM): metadata removed by a stream-copy remux.

The audio and video packets are copied bit for bit into a fresh container of the same kind;
nothing else is carried over. Dropped: container and stream tags (title, comment, creation
time, ISO 6709 location, make/model, software), data tracks (GoPro GPMF ``gpmd``, Apple
``mebx`` location tracks, timecode ``tmcd``), subtitle tracks (DJI drones write GPS into
them), attachments, cover pictures and chapters. Kept, because a player needs them: codec
parameters, timestamps (A/V sync), the display matrix (rotation) and track language.

FFmpeg's ``bitexact`` flag stops the muxer adding its own marks: no ``Lavf`` version tag, and
the mandatory ISO BMFF creation dates are written as zero.

Limit: what the camera wrote inside the compressed streams (H.264 SEI user data, for
instance) travels with the packets; that is why AVCHD/MPEG-TS is refused, where cameras put
the recording time and GPS position into the H.264 stream itself.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.container import InputContainer, OutputContainer
from av.packet import Packet
from av.stream import Disposition, Stream

from ..errors import CorruptInput, EncodeFailed, UnsupportedFormat, VerificationFailed
from .heif import AvifHandler, HeifHandler
from .metadata import (
    DEVICE,
    OTHER,
    PERSON,
    PICTURE,
    PLACE,
    SERIAL,
    TEXT,
    TIME,
    MetaField,
    gps_in_words,
)

#: Video kinds refused by extension, with the reason the user sees.
REFUSED_VIDEO = {
    ".mts": "AVCHD/MPEG-TS is not cleaned: the camera writes the recording time and GPS "
    "position into the H.264 stream itself, which copying the stream cannot remove",
    ".avi": "AVI is not cleaned yet; convert it to MP4 or MKV first",
    ".wmv": "WMV/ASF is not cleaned yet; convert it to MP4 or MKV first",
    ".flv": "Flash video is not cleaned yet; convert it to MP4 or MKV first",
}
REFUSED_VIDEO[".m2ts"] = REFUSED_VIDEO[".mts"]

# Muxer options: no "Lavf" encoder tag and zero creation dates (FFmpeg AVFMT_FLAG_BITEXACT).
_BITEXACT = {"fflags": "+bitexact"}
# A cover picture or thumbnail track is a still of the video (it may show a face), not the video.
_PICTURE_DISPOSITIONS = Disposition.attached_pic | Disposition.timed_thumbnails
_KEPT_TYPES = ("video", "audio")
# Tags that describe the file's structure or say nothing about anyone: never reported.
# "handler_name" is a track's role ("Core Media Video", "SoundHandler") and "encoder" on a
# track is QuickTime's compressor name ("H.264"); neither is copied to the output anyway.
_STRUCTURAL_TAGS = frozenset(
    {
        "major_brand",
        "minor_version",
        "compatible_brands",
        "language",
        "handler_name",
        "vendor_id",
        "duration",  # Matroska: per-track length
        "rotate",
    }
)
_STREAM_ONLY_STRUCTURAL = frozenset({"encoder"})
# What FFmpeg writes in bitexact mode where a muxer must name a writing application (Matroska).
_BITEXACT_ENCODER = "Lavf"
# Tag name (lower case, without "com.apple.quicktime." and a "-eng" language suffix) -> field.
_TAGS: dict[str, tuple[str, str]] = {
    "make": (DEVICE, "Make"),
    "manufacturer": (DEVICE, "Make"),
    "model": (DEVICE, "Model"),
    "software": (DEVICE, "Software"),
    "encoder": (DEVICE, "Software"),
    "com.android.version": (DEVICE, "Software"),
    "creation_time": (TIME, "CreationTime"),
    "creationdate": (TIME, "CreationTime"),
    "date": (TIME, "Date"),
    "date_recorded": (TIME, "Date"),
    "date_released": (TIME, "Date"),
    "timecode": (TIME, "Timecode"),
    "artist": (PERSON, "Artist"),
    "album_artist": (PERSON, "Artist"),
    "author": (PERSON, "Author"),
    "composer": (PERSON, "Author"),
    "performer": (PERSON, "Artist"),
    "director": (PERSON, "Author"),
    "publisher": (PERSON, "Author"),
    "copyright": (PERSON, "Copyright"),
    "displayname": (PERSON, "Author"),
    "title": (TEXT, "Title"),
    "comment": (TEXT, "Comment"),
    "description": (TEXT, "Description"),
    "synopsis": (TEXT, "Description"),
    "keywords": (TEXT, "Keywords"),
    "lyrics": (TEXT, "Comment"),
}
_LANGUAGE_SUFFIX = re.compile(r"-[a-z]{3}$")
_LANGUAGE_CODE = re.compile(r"^[a-z]{3}$")
# ISO 6709 point: latitude, longitude, optional altitude, each signed; degrees (DD.D),
# degrees+minutes (DDMM.M) or degrees+minutes+seconds (DDMMSS.S) by the integer digit count.
_ISO6709 = re.compile(r"^([+-]\d{2,6}(?:\.\d+)?)([+-]\d{3,7}(?:\.\d+)?)([+-]\d+(?:\.\d+)?)?")
_ISO_BMFF_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot")
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
# Zero in ISO BMFF (seconds since 1904) and in Unix time, as FFmpeg prints them.
_EPOCHS = ("19040101000000", "19700101000000")
_START_TOLERANCE_S = Fraction(1, 1000)
_EBML_SEGMENT = b"\x18\x53\x80\x67"
_READ_ERRORS = (av.FFmpegError, OSError, ValueError, UnicodeDecodeError, EOFError)


@dataclass(frozen=True)
class StreamDigest:
    """One kept stream as a fingerprint: its packets' bytes and presentation times, the times
    taken from the stream's first packet (``start``, in seconds), which is compared apart."""

    kind: str
    codec: str
    packets: int
    sha256: str
    start: Fraction | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Remuxed:
    """What `VideoHandler.clean` copied, for `VideoHandler.verify` to find again."""

    streams: tuple[StreamDigest, ...]
    #: Display rotation (degrees) of each kept video stream; None where it cannot be decoded.
    rotations: tuple[float | None, ...]


@dataclass(frozen=True)
class Probe:
    """What `veil scan` shows about a video: the picture size and what the container reveals."""

    width: int | None
    height: int | None
    frames: int
    fields: list[MetaField] = field(default_factory=list)


@dataclass(frozen=True)
class VideoHandler:
    """One container kind, written back with the FFmpeg muxer ``muxer``.

    >>> handler = VideoHandler("MP4", (".mp4",), "mp4")
    >>> handler.accept(b"\\x00\\x00\\x00\\x18ftypmp42")
    True
    """

    name: str
    extensions: tuple[str, ...]
    muxer: str

    @property
    def matroska(self) -> bool:
        return self.muxer in ("matroska", "webm")

    def accept(self, prefix: bytes) -> bool:
        """Whether a file's first bytes are this container family's signature."""
        if self.matroska:
            return prefix.startswith(_EBML_MAGIC)
        # A HEIF or AVIF still is an ISO BMFF file too; it is not a video.
        return prefix[4:8] in _ISO_BMFF_BOXES and not (
            HeifHandler.accept(prefix) or AvifHandler.accept(prefix)
        )

    # -- reading ---------------------------------------------------------------------------
    def probe(self, path: Path) -> Probe:
        """Picture size, frame count and identifying fields, from the container headers."""
        with _open(path, self.name) as container:
            video = next((s for s in container.streams.video if _is_kept(s)), None)
            width = video.codec_context.width if video is not None else None
            height = video.codec_context.height if video is not None else None
            return Probe(width, height, video.frames if video else 0, _fields(container))

    def fields(self, path: Path) -> list[MetaField]:
        """What the container reveals, in human terms (tags, telemetry tracks, chapters)."""
        return self.probe(path).fields

    # -- cleaning --------------------------------------------------------------------------
    def clean(self, src: Path, out: Path) -> Remuxed:
        """Copy the audio and video packets of ``src`` into a new container at ``out``.

        Raises `CorruptInput` when ``src`` is damaged or cut off, `UnsupportedFormat` for
        streams that cannot be copied unchanged and `EncodeFailed` when the muxer refuses
        them; ``out`` may then hold a partial file (the caller deletes it).
        """
        size = src.stat().st_size
        # FFmpeg reads what it can of a cut-off file without complaint; the container's own
        # sizes (ISO BMFF boxes, the Matroska Segment) say whether all of it is there.
        declared = _matroska_end(src) if self.matroska else _iso_bmff_end(src, size)
        if declared is not None and declared > size:
            raise CorruptInput(f"{self.name} file is truncated: {size} of its {declared} bytes")
        rotations = _rotations(src, self.name)
        with _open(src, self.name) as inp:
            kept = [s for s in inp.streams if _is_kept(s)]
            if not kept:
                raise CorruptInput(f"{self.name} file holds no audio or video stream")
            self._check_copyable(kept)
            digests = {s.index: _Digest(s) for s in kept}
            try:
                with av.open(
                    str(out), "w", format=self.muxer, container_options=_BITEXACT
                ) as output:
                    targets = {s.index: _copy_stream(output, s) for s in kept}
                    for packet in _packets(inp, kept, self.name):
                        digests[packet.stream.index].add(packet)
                        packet.stream = targets[packet.stream.index]
                        output.mux(packet)
            except (av.FFmpegError, OSError, ValueError) as exc:
                msg = f"cannot write {self.name}: the muxer refused the copied streams"
                raise EncodeFailed(f"{msg} ({_reason(exc)})") from exc
        for digest in digests.values():
            digest.check_complete(self.name, size)
        return Remuxed(tuple(d.result() for d in digests.values()), rotations)

    def _check_copyable(self, streams: list[Stream]) -> None:
        if self.matroska:
            return
        for stream in streams:
            codec = stream.codec_context.name if stream.codec_context else ""
            if codec in ("amrnb", "amrwb"):
                # Phones store several AMR frames per sample; FFmpeg's MP4/3GP muxer takes one
                # frame per packet, so the audio cannot be copied unchanged.
                raise UnsupportedFormat(
                    f"{self.name} with AMR audio is not cleaned yet: its audio cannot be copied "
                    "unchanged into a new file"
                )

    def verify(self, out: Path, expected: Remuxed) -> None:
        """Re-read ``out``: only the copied streams, every packet identical, nothing identifying."""
        try:
            with _open(out, self.name) as container:
                streams = list(container.streams)
                others = sorted({s.type for s in streams if s.type not in _KEPT_TYPES})
                if others:
                    raise VerificationFailed(f"output still has {', '.join(others)} streams")
                if len(streams) != len(expected.streams):
                    raise VerificationFailed(
                        f"output has {len(streams)} streams, expected {len(expected.streams)}"
                    )
                left = _fields(container)
                if left:
                    names = ", ".join(sorted({f.name for f in left}))
                    raise VerificationFailed(f"identifying metadata survived: {names}")
                digests = [_Digest(s) for s in streams]
                for packet in _packets(container, streams, self.name):
                    digests[packet.stream.index].add(packet)
        except CorruptInput as exc:
            raise VerificationFailed(f"output does not read back: {exc}") from exc
        for index, (got, want) in enumerate(
            zip((d.result() for d in digests), expected.streams, strict=True)
        ):
            if got != want:
                raise VerificationFailed(
                    f"{want.kind} stream {index} differs from the input's "
                    f"({got.packets} packets against {want.packets}): not an exact copy"
                )
            if not _same_start(got.start, want.start):
                raise VerificationFailed(
                    f"{want.kind} stream {index} starts at {float(got.start or 0):.4f} s, "
                    f"the input's at {float(want.start or 0):.4f} s: A/V sync would change"
                )
        if _rotations(out, self.name) != expected.rotations:
            raise VerificationFailed("the display rotation of the video was not kept")


VIDEO_HANDLERS: tuple[VideoHandler, ...] = (
    VideoHandler("MP4", (".mp4", ".m4v"), "mp4"),
    VideoHandler("QuickTime", (".mov",), "mov"),
    VideoHandler("3GP", (".3gp",), "3gp"),
    VideoHandler("3G2", (".3g2",), "3g2"),
    VideoHandler("Matroska", (".mkv",), "matroska"),
    VideoHandler("WebM", (".webm",), "webm"),
)


# -- helpers -------------------------------------------------------------------------------
@contextmanager
def _open(path: Path, kind: str) -> Iterator[InputContainer]:
    """Open a video for reading; FFmpeg's refusals become `CorruptInput`."""
    try:
        container = av.open(str(path), "r", metadata_errors="replace")
    except _READ_ERRORS as exc:
        raise CorruptInput(
            f"cannot read {kind}: {_reason(exc)} (a damaged or truncated file, or not {kind})"
        ) from exc
    with container:
        yield container


def _reason(exc: BaseException) -> str:
    # PyAV's str() repeats the errno and the (temporary) file name; FFmpeg's own log line, when
    # it left one, says more than the errno ("Operation not permitted" for any muxer refusal).
    log = getattr(exc, "log", None)
    if isinstance(log, tuple) and len(log) == 3 and isinstance(log[2], str) and log[2].strip():
        return log[2].strip()
    return str(getattr(exc, "strerror", None) or exc or type(exc).__name__)


def _is_kept(stream: Stream) -> bool:
    return stream.type in _KEPT_TYPES and not stream.disposition & _PICTURE_DISPOSITIONS


def _copy_stream(output: OutputContainer, template: Stream) -> Stream:
    """A stream in ``output`` with ``template``'s codec parameters (rotation included) and
    none of its tags; language and default/forced flags are kept (they identify no one)."""
    stream: Stream = output.add_stream_from_template(template)
    language = template.language or ""
    if _LANGUAGE_CODE.match(language) and language != "und":
        stream.metadata["language"] = language
    stream.disposition = template.disposition & (Disposition.default | Disposition.forced)
    return stream


def _packets(
    container: InputContainer, streams: list[Stream], kind: str
) -> Iterator[Packet[Stream]]:
    """The non-empty packets of ``streams``; read errors become `CorruptInput`."""
    try:
        for packet in container.demux(streams):
            if packet.size == 0:  # the demuxer's end-of-stream marker, no data
                continue
            if packet.is_corrupt:
                raise CorruptInput(
                    f"{kind} stream {packet.stream.index} holds a damaged or truncated packet"
                )
            yield packet
    except _READ_ERRORS as exc:
        raise CorruptInput(f"cannot read {kind} to the end: {_reason(exc)}") from exc


class _Digest:
    """Running hash of one stream's packets: their bytes and presentation times in seconds
    (exact fractions, so a muxer that picks a finer time base still matches)."""

    def __init__(self, stream: Stream) -> None:
        # Plain values: a stream object is invalid once its container is closed.
        self.kind, self.index, self.frames = stream.type, stream.index, stream.frames
        self.codec = stream.codec_context.name if stream.codec_context else "?"
        self.time_base = stream.time_base or Fraction(1)
        # The sample table (ISO BMFF) or cues (Matroska): what the demuxer should deliver.
        self.indexed = len(stream.index_entries)
        self.data_end = max((e.pos + e.size for e in stream.index_entries), default=0)
        self.count = 0
        self.start: Fraction | None = None
        self._hash = hashlib.sha256()

    def add(self, packet: Packet[Stream]) -> None:
        pts = None if packet.pts is None else Fraction(packet.pts) * packet.time_base
        if self.start is None and pts is not None:
            self.start = pts
        offset = None if pts is None else pts - (self.start or 0)
        self._hash.update(f"{offset}:{packet.size}:".encode())
        self._hash.update(memoryview(packet))
        self.count += 1

    def check_complete(self, kind: str, file_size: int) -> None:
        """`CorruptInput` unless every packet the headers promise was read."""
        # FFmpeg stops quietly at the end of a truncated file; the index says what is missing.
        missing = self.data_end > file_size or self.count < self.indexed
        if missing or (self.frames and not self.count):
            raise CorruptInput(
                f"{kind} file is truncated: {self.kind} stream {self.index} has "
                f"{self.count} of its {max(self.frames, self.indexed)} packets"
            )

    def result(self) -> StreamDigest:
        digest = self._hash.hexdigest()
        return StreamDigest(self.kind, self.codec, self.count, digest, self.start)


def _iso_bmff_end(path: Path, file_size: int) -> int | None:
    """Where the top-level ISO BMFF boxes say the file ends (ISO/IEC 14496-12, 4.2); None
    where a box header is malformed (FFmpeg judges that)."""
    end = 0
    with path.open("rb") as fh:
        while end + 8 <= file_size:
            fh.seek(end)
            header = fh.read(16)
            size = int.from_bytes(header[:4], "big")
            if size == 1 and len(header) == 16:  # 64-bit "largesize" follows the type
                size = int.from_bytes(header[8:16], "big")
            elif size == 0:  # the last box, running to the end of the file
                return file_size
            if size < 8:
                return None
            end += size
    return end


def _matroska_end(path: Path) -> int | None:
    """Where a Matroska file's Segment says the file ends; None where it does not say (a live
    recording writes "unknown size") or the header cannot be parsed (FFmpeg judges that)."""
    with path.open("rb") as fh:
        head = fh.read(4096)
    try:
        header_size, length = _ebml_size(head, len(_EBML_MAGIC))
        if header_size is None:
            return None
        at = len(_EBML_MAGIC) + length + header_size
        if head[at : at + 4] != _EBML_SEGMENT:
            return None
        segment_size, length = _ebml_size(head, at + 4)
    except IndexError:
        return None
    return None if segment_size is None else at + 4 + length + segment_size


def _ebml_size(data: bytes, at: int) -> tuple[int | None, int]:
    """An EBML variable-length size at ``at`` (RFC 8794, section 4): (value or None when
    "unknown", byte length)."""
    first = data[at]
    if not first:
        raise IndexError("EBML size longer than 8 bytes")
    length = 9 - first.bit_length()
    value = first & (0xFF >> length)
    for byte in data[at + 1 : at + length]:
        value = value << 8 | byte
    return (None if value == (1 << 7 * length) - 1 else value), length


def _same_start(got: Fraction | None, want: Fraction | None) -> bool:
    # FFmpeg's MP4 muxer writes the edit list that delays a stream in a 1/1000 s movie time
    # scale, so a start read from a file made elsewhere comes back rounded to the millisecond.
    if got is None or want is None:
        return got == want
    return abs(got - want) <= _START_TOLERANCE_S


def _rotations(path: Path, kind: str) -> tuple[float | None, ...]:
    """The display rotation of each kept video stream, as a player applies it to the frames."""
    with _open(path, kind) as container:
        count = len([s for s in container.streams.video if _is_kept(s)])
    return tuple(_rotation(path, kind, number) for number in range(count))


def _rotation(path: Path, kind: str, number: int) -> float | None:
    # Read from the first decoded frame: PyAV does not expose a stream's display matrix, and
    # the decoder attaches it to every frame.
    with _open(path, kind) as container:
        stream = [s for s in container.streams.video if _is_kept(s)][number]
        try:
            frame = next(container.decode(stream), None)
        except _READ_ERRORS:
            return None  # no decoder for this codec: the packets are still compared
        return None if frame is None else float(frame.rotation)


def _fields(container: InputContainer) -> list[MetaField]:
    found = _tag_fields(container.metadata, stream=False)
    for stream in container.streams:
        if _is_kept(stream):
            found += _tag_fields(stream.metadata, stream=True)
        else:
            found.append(_track_field(stream))
    chapters = container.chapters()
    if chapters:
        found.append(MetaField(TEXT, "Chapters", f"{len(chapters)} chapters (titles and times)"))
    return _unique(found)


def _tag_fields(tags: dict[str, str], stream: bool) -> list[MetaField]:
    found: list[MetaField] = []
    for key, raw in tags.items():
        value = " ".join(str(raw).split())
        name = _LANGUAGE_SUFFIX.sub("", key.lower()).removeprefix("com.apple.quicktime.")
        if not value or name in _STRUCTURAL_TAGS:
            continue
        if stream and name in _STREAM_ONLY_STRUCTURAL:
            continue
        if name == "encoder" and value == _BITEXACT_ENCODER:
            continue
        if "location" in name or name in ("xyz", "\xa9xyz", "iso6709"):
            found.append(MetaField(PLACE, "Location", _place_in_words(value)))
        elif "serial" in name or "identifier" in name or name.endswith("uuid"):
            found.append(MetaField(SERIAL, "Serial", value))
        elif name in _TAGS:
            category, label = _TAGS[name]
            if category == TIME and not _is_real_date(value):
                continue
            found.append(MetaField(category, label, value))
        else:
            found.append(MetaField(OTHER, f"Tag:{key}", value))
    return found


def _track_field(stream: Stream) -> MetaField:
    if stream.type in _KEPT_TYPES:  # a picture track (cover art, thumbnails)
        return MetaField(PICTURE, "CoverArt", "cover picture or thumbnail track (may show a face)")
    # PyAV does not expose a data track's four-character code; its handler name says as much
    # ("GoPro MET", "Core Media Metadata", "Time Code Media Handler").
    label = " ".join((stream.metadata.get("handler_name") or stream.name or "").split())
    if stream.type == "data" and ("timecode" in stream.metadata or "time code" in label.lower()):
        return MetaField(TIME, "TimecodeTrack", "timecode track (time of day of the recording)")
    if stream.type == "data":
        named = f" ({label})" if label else ""
        return MetaField(PLACE, "TelemetryTrack", f"telemetry track (GPS, sensors){named}")
    if stream.type == "subtitle":
        return MetaField(TEXT, "SubtitleTrack", "subtitle track (drones write GPS into these)")
    if stream.type == "attachment":
        return MetaField(OTHER, "Attachment", "attached file (fonts, pictures, documents)")
    return MetaField(OTHER, "OtherTrack", f"{stream.type} track")


def _is_real_date(value: str) -> bool:
    """False for the zero dates muxers write when they must write one (1904/1970 epochs)."""
    digits = re.sub(r"\D", "", value)
    return any(d != "0" for d in digits) and not digits.startswith(_EPOCHS)


def _place_in_words(value: str) -> str:
    """An ISO 6709 point (``+52.3731+004.8926+012.5/``) in the words photos use."""
    match = _ISO6709.match(value)
    if match is None:
        return value
    lat, lon = _iso6709_degrees(match[1]), _iso6709_degrees(match[2])
    gps: dict[int, Any] = {
        1: "N" if lat >= 0 else "S",
        2: (abs(lat), 0.0, 0.0),
        3: "E" if lon >= 0 else "W",
        4: (abs(lon), 0.0, 0.0),
    }
    if match[3]:
        altitude = float(match[3])
        gps.update({5: int(altitude < 0), 6: Fraction(abs(altitude)).limit_denominator(1000)})
    return gps_in_words(gps)


def _iso6709_degrees(part: str) -> float:
    sign = -1.0 if part[0] == "-" else 1.0
    number = part[1:]
    whole = number.split(".")[0]
    value = float(number)
    # The integer digit count says the form: (D)DD degrees, +MM minutes, +SS seconds.
    extra = len(whole) - (2 if len(whole) % 2 == 0 else 3)
    if extra == 2:
        value = int(value / 100) + (value % 100) / 60
    elif extra == 4:
        value = int(value / 10000) + int(value / 100 % 100) / 60 + (value % 100) / 3600
    return sign * value


def _unique(found: list[MetaField]) -> list[MetaField]:
    return list(dict.fromkeys(found))  # the same tag on every track is one finding
