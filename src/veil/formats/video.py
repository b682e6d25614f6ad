"""Video (MP4, QuickTime, 3GP/3G2, Matroska, WebM, AVI): metadata removed by a stream-copy remux.

The audio, video and subtitle packets are copied bit for bit into a fresh container of the
same kind; nothing else is carried over. Dropped: container and stream tags (title, comment,
creation time, ISO 6709 location, make/model, software; AVI's INFO list and ``IDIT`` date),
data tracks (GoPro GPMF ``gpmd``, Apple ``mebx`` location tracks, timecode ``tmcd``),
subtitle tracks whose text carries GPS or telemetry (DJI drones write their position into
every cue), subtitle tracks the container kind cannot hold, attachments, cover pictures,
chapters, and the camera data an AVI stream header may hold (``strd``, EXIF maker notes).
Kept, because a viewer needs them: codec parameters, timestamps (A/V sync), the display
matrix (rotation), and each track's language and default/forced flags.

A text subtitle track (SubRip, ASS, WebVTT, MP4 timed text) is kept only after its header and
every one of its cues have been read and none looks like coordinates or telemetry; an ASS
script's header keeps only its canvas and styles (not its title, credits or editor's notes).
A bitmap track (DVD, Blu-ray PGS, DVB) cannot be read as text and is kept.

FFmpeg's ``bitexact`` flag stops the muxer adding its own marks: no ``Lavf`` version tag
(Matroska's mandatory writing-application field says only ``Lavf``; AVI gets no ``ISFT``),
and the mandatory ISO BMFF creation dates are written as zero.

Limit: what the camera wrote inside the compressed streams (H.264 SEI user data, for
instance) travels with the packets; that is why AVCHD/MPEG-TS is refused, where cameras put
the recording time and GPS position into the H.264 stream itself.
"""

from __future__ import annotations

import errno
import hashlib
import io
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import av
from av.codec import Codec
from av.container import InputContainer, OutputContainer
from av.packet import Packet
from av.stream import Disposition, Stream

from ..errors import CorruptInput, EncodeFailed, UnsupportedFormat, VerificationFailed
from ..fields import DEVICE, OTHER, PERSON, PICTURE, PLACE, SERIAL, TEXT, TIME, MetaField
from . import audio
from .heif import AvifHandler, HeifHandler
from .isobmff import Box, boxes
from .metadata import gps_in_words

#: Video kinds refused by extension, with the reason the user sees.
REFUSED_VIDEO = {
    ".mts": "AVCHD/MPEG-TS is not cleaned: the camera writes the recording time and GPS "
    "position into the H.264 stream itself, which copying the stream cannot remove",
    ".flv": "Flash video is not cleaned yet; convert it to MP4 or MKV first",
}
REFUSED_VIDEO[".m2ts"] = REFUSED_VIDEO[".mts"]

# Muxer options: no "Lavf" encoder tag and zero creation dates (FFmpeg AVFMT_FLAG_BITEXACT).
BITEXACT = {"fflags": "+bitexact"}
# A cover picture or thumbnail track is a still of the video (it may show a face), not the video.
_PICTURE_DISPOSITIONS = Disposition.attached_pic | Disposition.timed_thumbnails
_KEPT_TYPES = ("video", "audio")
# What a cleaned file may hold: the kept streams and the subtitle tracks judged safe.
_CARRIED_TYPES = (*_KEPT_TYPES, "subtitle")
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
    "maker": (DEVICE, "Make"),  # AVI: Nikon's "ncdt" list, as FFmpeg names it
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
    "encoded_by": (PERSON, "Author"),  # AVI: ITCH, the technician
    "displayname": (PERSON, "Author"),
    "title": (TEXT, "Title"),
    "comment": (TEXT, "Comment"),
    "description": (TEXT, "Description"),
    "synopsis": (TEXT, "Description"),
    "keywords": (TEXT, "Keywords"),
    "subject": (TEXT, "Description"),  # AVI: ISBJ
    "ieng": (PERSON, "Author"),  # AVI: the engineer, which FFmpeg leaves under its own name
    "ikey": (TEXT, "Keywords"),
    "lyrics": (TEXT, "Comment"),
    "album": (TEXT, "Album"),
    "genre": (TEXT, "Genre"),
    # Broadcast Wave "bext" (EBU Tech 3285), as FFmpeg names its fields: the originator (the
    # device or organisation, under "encoded_by"), its reference (often a serial number),
    # the time of day as samples since midnight, and the chain of devices and programs.
    "originator_reference": (SERIAL, "Serial"),
    "umid": (SERIAL, "Serial"),
    "time_reference": (TIME, "Timecode"),
    "coding_history": (DEVICE, "Software"),
}
_LANGUAGE_SUFFIX = re.compile(r"-[a-z]{3}$")
# Subtitle cues that carry telemetry, as drones and dash cams write it: a label followed by a
# value ("[latitude: 22.632435]", "[longtitude : 113.82]" (a DJI firmware's spelling),
# "GPS(113.8237,22.6324,73)", "GPS (8.6465, 49.3915, 19)", "[rel_alt: 1.200 abs_alt: 73.600]",
# "BAROMETER:72.8", "Lat 22.632435"), or DJI's exposure and frame counters. A label needs a
# value after it, so speech that mentions the GPS or an altitude is kept.
_TELEMETRY_LABEL = re.compile(
    r"\b(?:lat(?:itude)?|lon(?:gt?itude)?|lng|gps|(?:rel_|abs_)?alt(?:itude)?|barometer)"
    r"(?:\s*[:=(]\s*[-+]?\d|\s+[-+]?\d{1,3}\.\d{4})"
    r"|\[\s*(?:iso|shutter|fnum|ev|ct|color_md|focal_len|dzoom_ratio)\s*:"
    r"|\b(?:FrameCnt|DiffTime)\s*:",
    re.IGNORECASE,
)
# A recording date with its time of day ("2021-08-14 15:02:31", "2017.08.05 14:02:11"), which
# drones and dash cams stamp on every cue and dialogue does not say that way.
_DATE_TIME = re.compile(
    r"\b(?:19|20)\d\d([-./:])(?:0?[1-9]|1[0-2])\1(?:0?[1-9]|[12]\d|3[01])[ T]+\d{1,2}:\d\d:\d\d"
)
# Two decimals of four or more places, one after the other: a latitude and a longitude in
# either order ("22.632435, 113.823713", "-33.8568 151.2153", "N22.632435 E113.823713");
# `_is_lat_lon` checks their ranges.
_DEGREES = r"[NSEW]?\s?([-+]?\d{1,3}\.\d{4,})\s?°?\s?[NSEW]?"
_COORDINATE_PAIR = re.compile(rf"(?<![\d.]){_DEGREES}(?:\s*[,;/]\s*|\s+){_DEGREES}(?![\d.])")
# One coordinate in degrees, minutes and seconds with its hemisphere: 22°37'56.8"N, or with
# the prime and double prime signs.
_DMS = re.compile(r"\d{1,3}°\s?\d{1,2}['\u2032]\s?\d{1,2}(?:\.\d+)?(?:\"|\u2033|'')?\s?[NSEW]\b")
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
# A RIFF file's first chunk and, in an OpenDML AVI over 1 GiB, the chunks that follow it.
_RIFF_AVI, _RIFF_AVIX = b"AVI ", b"AVIX"
# How much of an AVI's start is read for its stream headers (they are a few KiB).
_RIFF_HEADER_LIMIT = 1 << 20
READ_ERRORS = (av.FFmpegError, OSError, ValueError, UnicodeDecodeError, EOFError)
_TELEMETRY_SUBTITLE = MetaField(PLACE, "SubtitleTrack", "subtitle track with GPS/telemetry (drone)")
_CAMERA_DATA = "camera data in the AVI stream header (maker notes)"
_TEXT_TRACK = MetaField(TEXT, "TextTrack", "text track (lyrics, chapter titles or notes)")
_ASS_DETAILS = "subtitle script details (title, authors, editor's notes, file paths)"
# What an ASS/SSA header keeps, by section (ASS format v4.00+, "Script Info" and "Styles").
_ASS_KEPT = {
    "[script info]": frozenset(
        {
            "scripttype",
            "playresx",
            "playresy",
            "playdepth",
            "layoutresx",
            "layoutresy",
            "wrapstyle",
            "scaledborderandshadow",
            "ycbcr matrix",
            "collisions",
            "timer",
            "kerning",
        }
    ),
    "[v4+ styles]": frozenset({"format", "style"}),
    "[v4 styles]": frozenset({"format", "style"}),
    "[events]": frozenset({"format"}),
}


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
    """What `VideoHandler.clean` copied, for `VideoHandler.reread` to find again."""

    streams: tuple[StreamDigest, ...]
    #: Display rotation (degrees) of each kept video stream; None where it cannot be decoded.
    rotations: tuple[float | None, ...]
    #: Positions in ``streams`` of sound tracks written anew (new voices), not copied.
    rewritten: frozenset[int] = frozenset()


class NewSound(Protocol):
    """Sound tracks written anew rather than copied (`veil.voice.track.NewVoices`): an output
    stream for each, and its packets as the input's go by, so the two stay interleaved."""

    def __contains__(self, index: int) -> bool: ...

    def stream(self, output: OutputContainer, index: int, kind: str) -> Stream: ...

    def until(self, index: int, seconds: float | None) -> list[Packet[Any]]: ...


def packet_end(packet: Packet[Stream]) -> float | None:
    """When ``packet``'s sound or picture ends, in seconds; None when it has no time."""
    start = packet.pts if packet.pts is not None else packet.dts
    if start is None or packet.time_base is None:
        return None
    return float((start + (packet.duration or 0)) * packet.time_base)


@dataclass(frozen=True)
class Probe:
    """What `veil scan` shows about a video: the picture size and what the container reveals."""

    width: int | None
    height: int | None
    frames: int
    fields: list[MetaField] = field(default_factory=list)


@dataclass(frozen=True)
class VideoHandler:
    """One container kind, written back with the FFmpeg muxer ``muxer``; ``sound`` for a
    container that holds sound only (a recording: `AUDIO_HANDLERS`), whose output must hold
    sound only too. Two handlers may share a muxer (ASF's writes WMV videos and WMA sound),
    so what a recording does differently goes by ``sound``, never by the muxer's name.

    >>> handler = VideoHandler("MP4", (".mp4",), "mp4")
    >>> handler.accept(b"\\x00\\x00\\x00\\x18ftypmp42")
    True
    """

    name: str
    extensions: tuple[str, ...]
    muxer: str
    sound: bool = False

    @property
    def matroska(self) -> bool:
        return self.muxer in ("matroska", "webm")

    @property
    def riff(self) -> bool:
        return self.muxer == "avi"

    def accept(self, prefix: bytes) -> bool:
        """Whether a file's first bytes are this container family's signature."""
        return _CONTAINERS[self.muxer].accept(prefix)

    # -- reading ---------------------------------------------------------------------------
    def probe(self, path: Path) -> Probe:
        """Picture size, frame count and identifying fields, from the container headers (and
        the text of any subtitle track, which is read to the end)."""
        with open_input(path, self.name) as container:
            video = next((s for s in container.streams.video if is_kept(s)), None)
            width = video.codec_context.width if video is not None else None
            height = video.codec_context.height if video is not None else None
            found = _fields(container, self.muxer, self.sound)
            return Probe(width, height, video.frames if video else 0, found)

    def fields(self, path: Path) -> list[MetaField]:
        """What the container reveals, in human terms (tags, telemetry tracks, chapters)."""
        return self.probe(path).fields

    def check_whole(self, path: Path) -> None:
        """`CorruptInput` when the container's own sizes say the file runs past its end.

        FFmpeg reads what it can of a cut-off file without complaint; the top-level ISO BMFF
        boxes, the Matroska Segment, the RIFF chunks, an MP3's Xing frame, FLAC's metadata
        blocks or Ogg's last page say whether all of it is there.
        """
        try:
            size = path.stat().st_size
            declared = self._declared_end(path, size)
        except OSError as exc:
            raise CorruptInput(f"cannot read {self.name}: {exc.strerror or exc}") from exc
        if declared is not None and declared > size:
            raise CorruptInput(f"{self.name} file is truncated: {size} of its {declared} bytes")

    def _declared_end(self, path: Path, size: int) -> int | None:
        return _CONTAINERS[self.muxer].end(path, size)

    def carried_streams(self, container: InputContainer) -> list[Stream]:
        """The streams of ``container`` that go into a cleaned file, in file order: the video
        and audio (without cover pictures or thumbnails) and the subtitle tracks judged safe.

        Text subtitle tracks are read to the end to be judged, through a second handle on the
        same file (``container`` must have been opened from a path, as `open_input` does), so
        ``container`` itself is not read from: demux it from the start afterwards.
        """
        dropped = _dropped_subtitles(container, self.muxer, self.sound)
        return [
            s
            for s in container.streams
            if is_kept(s) or (s.type == "subtitle" and s.index not in dropped)
        ]

    # -- cleaning --------------------------------------------------------------------------
    def clean(self, src: Path, out: Path, sound: NewSound | None = None) -> Remuxed:
        """Copy the audio, video and safe subtitle packets of ``src`` into a new container at
        ``out``; the sound tracks in ``sound`` are written anew from it instead.

        Raises `CorruptInput` when ``src`` is damaged or cut off, `UnsupportedFormat` for
        streams that cannot be copied unchanged and `EncodeFailed` when the muxer refuses
        them; ``out`` may then hold a partial file (the caller deletes it).
        """
        self.check_whole(src)
        rotations = display_rotations(src, self.name)
        with open_input(src, self.name) as inp:
            carried = self.carried_streams(inp)
            if not any(is_kept(s) for s in carried):
                raise CorruptInput(f"{self.name} file holds no audio or video stream")
            self._check_copyable(carried)
            digests = {s.index: Digest(s) for s in carried}
            rewritten = frozenset(
                n for n, s in enumerate(carried) if sound is not None and s.index in sound
            )
            try:
                with av.open(
                    str(out), "w", format=self.muxer, container_options=BITEXACT
                ) as output:
                    targets = {s.index: copy_or_new(output, s, sound, self.name) for s in carried}
                    for packet in packets(inp, carried, self.name):
                        index = packet.stream.index
                        digests[index].add(packet)
                        if sound is not None and index in sound:
                            output.mux(sound.until(index, packet_end(packet)))
                            continue
                        packet.stream = targets[index]
                        output.mux(packet)
                    for stream in carried:
                        if sound is not None and stream.index in sound:
                            output.mux(sound.until(stream.index, None))
            except (av.FFmpegError, OSError, ValueError) as exc:
                msg = f"cannot write {self.name}: the muxer refused the copied streams"
                raise EncodeFailed(f"{msg} ({reason(exc)})") from exc
        size = src.stat().st_size
        for digest in digests.values():
            digest.check_complete(self.name, size)
        return Remuxed(tuple(d.result() for d in digests.values()), rotations, rewritten)

    def _check_copyable(self, streams: list[Stream]) -> None:
        if self.sound:
            self._check_recording(streams)
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

    def _check_recording(self, streams: list[Stream]) -> None:
        """`UnsupportedFormat` unless a recording's streams are sound this container's muxer
        writes unchanged, and the new file can say all the input says about how to play it."""
        for stream in streams:
            if stream.type != "audio":
                raise UnsupportedFormat(
                    f"{self.name} file holds a {stream.type} track, not only sound: veil "
                    f"cleans a {self.name} file as a sound recording (give a video a video's "
                    f"extension, e.g. {self._video_extensions()})"
                )
            if not _muxer_writes(self.muxer, stream):
                raise UnsupportedFormat(
                    f"{self.name} file with {_codec_name(stream) or 'unknown'} sound is not "
                    f"cleaned: FFmpeg cannot write that sound unchanged into a new {self.name} "
                    "file"
                )
        tags = streams[0].container.metadata if streams else {}
        if any(key.lower() == "itunsmpb" for key in tags):
            # iTunes says how many samples of encoder padding to skip at each end in this
            # atom; FFmpeg's muxer cannot write it, and the edit list it writes says nothing
            # of it, so players would add a few milliseconds of sound at each end.
            raise UnsupportedFormat(
                f"{self.name} file with iTunes gapless-playback data (iTunSMPB) is not cleaned "
                "yet: the new file could not keep it, and players would then add a few "
                "milliseconds of sound at each end"
            )

    def _video_extensions(self) -> str:
        """The extensions a video in this recording's container goes by: the video kind's of
        the same muxer (.wmv for a WMA, whose content reads the same), else the common ones."""
        same = [h.extensions[0] for h in VIDEO_HANDLERS if h.muxer == self.muxer]
        return " or ".join(same) or ".mp4 or .mkv"

    def reread(self, out: Path, expected: Remuxed) -> None:
        """Re-read ``out``: only the copied streams, every packet identical, nothing identifying
        (subtitle text included)."""
        try:
            with open_input(out, self.name) as container:
                streams = list(container.streams)
                others = sorted({s.type for s in streams if s.type not in _CARRIED_TYPES})
                if others:
                    raise VerificationFailed(f"output still has {', '.join(others)} streams")
                if len(streams) != len(expected.streams):
                    raise VerificationFailed(
                        f"output has {len(streams)} streams, expected {len(expected.streams)}"
                    )
                left = _fields(container, self.muxer, self.sound)
                if left:
                    names = ", ".join(sorted({f.name for f in left}))
                    raise VerificationFailed(f"identifying metadata survived: {names}")
                digests = [Digest(s) for s in streams]
                for packet in packets(container, streams, self.name):
                    digests[packet.stream.index].add(packet)
        except CorruptInput as exc:
            raise VerificationFailed(f"output does not read back: {exc}") from exc
        for index, (got, want) in enumerate(
            zip((d.result() for d in digests), expected.streams, strict=True)
        ):
            if index in expected.rewritten:  # a new voice: sound still, and not empty
                if got.kind != want.kind or not got.packets:
                    raise VerificationFailed(f"the new sound of stream {index} did not read back")
                continue
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
        if display_rotations(out, self.name) != expected.rotations:
            raise VerificationFailed("the display rotation of the video was not kept")


VIDEO_HANDLERS: tuple[VideoHandler, ...] = (
    VideoHandler("MP4", (".mp4", ".m4v"), "mp4"),
    VideoHandler("QuickTime", (".mov",), "mov"),
    VideoHandler("3GP", (".3gp",), "3gp"),
    VideoHandler("3G2", (".3g2",), "3g2"),
    VideoHandler("Matroska", (".mkv",), "matroska"),
    VideoHandler("WebM", (".webm",), "webm"),
    VideoHandler("AVI", (".avi",), "avi"),
    VideoHandler("ASF", (".wmv", ".asf"), "asf"),
)
#: Sound recordings (`veil.formats.audio` reads their bytes; they are declared here, next to
#: `VideoHandler`, which dispatches on that module's functions). M4A is written by FFmpeg's
#: "ipod" muxer, its MP4 muxer giving the file the M4A brand ("mp4" would say "isom", and
#: Apple's software would take the file for a video); .opus by "opus", Ogg's muxer held to
#: Opus. WMA shares ASF's muxer and signature with WMV: the file's tracks say which of the
#: two it is taken for (`veil.formats.handler_for`).
AUDIO_HANDLERS: tuple[VideoHandler, ...] = (
    VideoHandler("M4A", (".m4a",), "ipod", sound=True),
    VideoHandler("MP3", (".mp3",), "mp3", sound=True),
    VideoHandler("Opus", (".opus",), "opus", sound=True),
    VideoHandler("Ogg", (".ogg", ".oga"), "ogg", sound=True),
    VideoHandler("WAV", (".wav",), "wav", sound=True),
    VideoHandler("FLAC", (".flac",), "flac", sound=True),
    VideoHandler("WMA", (".wma",), "asf", sound=True),
)


# -- helpers shared with the face-obscuring transcoder (veil.video) ---------------------------
@contextmanager
def open_input(path: Path, kind: str) -> Iterator[InputContainer]:
    """Open a video for reading; FFmpeg's refusals become `CorruptInput`.

    ``kind`` names the format in messages ("MP4").
    """
    try:
        container = av.open(str(path), "r", metadata_errors="replace")
    except READ_ERRORS as exc:
        if _bad_data(exc):
            msg = f"cannot read {kind}: the file is damaged, truncated or not {kind} at all"
            raise CorruptInput(msg) from exc
        raise CorruptInput(f"cannot read {kind}: {reason(exc)}") from exc
    with container:
        for stream in container.streams:
            # A damaged header can name a codec FFmpeg does not know: such a track cannot be
            # decoded or carried over, and PyAV then fails in ways no caller expects.
            if stream.type in _KEPT_TYPES and stream.codec_context is None:
                raise CorruptInput(
                    f"cannot read {kind}: its {stream.type} track is damaged (the kind of "
                    "sound or picture it holds cannot be read)"
                )
        yield container


def holds_picture(path: Path, kind: str) -> bool | None:
    """Whether a video or recording holds a picture track (a cover picture is not one); None
    where FFmpeg cannot read its headers, which cleaning then reports."""
    try:
        with open_input(path, kind) as container:
            return any(is_kept(s) for s in container.streams.video)
    except CorruptInput:
        return None


def reason(exc: BaseException) -> str:
    """A PyAV or OS error in a few words, for a `VeilError` message.

    FFmpeg's verdicts on bad data ("Invalid data found when processing input", "Invalid
    argument", an early end) are said in plain words, with FFmpeg's own log line after them
    when it left one.
    """
    # PyAV's str() repeats the errno and the (temporary) file name; FFmpeg's own log line, when
    # it left one, says more than the errno ("Operation not permitted" for any muxer refusal).
    log = getattr(exc, "log", None)
    line = ""
    if isinstance(log, tuple) and len(log) == 3 and isinstance(log[2], str):
        line = log[2].strip()
    if isinstance(exc, EOFError):
        return "the file ends early (truncated)"
    if _bad_data(exc):
        return "the data is damaged" + (f" (FFmpeg: {line})" if line else "")
    return line or str(getattr(exc, "strerror", None) or exc or type(exc).__name__)


def _bad_data(exc: BaseException) -> bool:
    """Whether FFmpeg refused the data itself (rather than the disk, a permission, a codec)."""
    return isinstance(exc, (av.error.InvalidDataError, EOFError)) or (
        isinstance(exc, av.FFmpegError) and exc.errno == errno.EINVAL
    )


def is_kept(stream: Stream) -> bool:
    """Whether a stream is video or audio that goes into a cleaned file (not a cover picture or
    thumbnail). Subtitle tracks are judged on their text: see `VideoHandler.carried_streams`."""
    return stream.type in _KEPT_TYPES and not stream.disposition & _PICTURE_DISPOSITIONS


def copy_stream(output: OutputContainer, template: Stream) -> Stream:
    """A stream in ``output`` with ``template``'s codec parameters (rotation included) and
    none of its tags; language and default/forced flags are kept (they identify no one)."""
    stream: Stream = output.add_stream_from_template(template)
    if _extradata_is_camera_data(template):
        # The codec needs no setup data: these bytes are the camera's maker notes.
        stream.codec_context.extradata = None
    elif _is_ass(template) and template.codec_context.extradata:
        stream.codec_context.extradata = _ass_header(template.codec_context.extradata)[0]
    language = template.language or ""
    if _LANGUAGE_CODE.match(language) and language != "und":
        stream.metadata["language"] = language
    stream.disposition = template.disposition & (Disposition.default | Disposition.forced)
    return stream


def copy_or_new(
    output: OutputContainer, template: Stream, sound: NewSound | None, kind: str
) -> Stream:
    """`copy_stream`, or for a sound track written anew, its new stream (no tags either)."""
    if sound is not None and template.index in sound:
        return sound.stream(output, template.index, kind)
    return copy_stream(output, template)


def packets(
    container: InputContainer, streams: list[Stream], kind: str
) -> Iterator[Packet[Stream]]:
    """The packets of ``streams`` that carry data; read errors become `CorruptInput`.

    Left out: the demuxer's end-of-stream markers and the empty samples that end a timed-text
    cue in MP4/QuickTime (FFmpeg's muxer writes its own, so copying them would add one more
    on every pass).
    """
    try:
        for packet in container.demux(streams):
            if packet.size == 0:  # the demuxer's end-of-stream marker, no data
                continue
            if packet.is_corrupt:
                raise CorruptInput(
                    f"{kind} stream {packet.stream.index} holds a damaged or truncated packet"
                )
            if _is_cue_end(packet):
                continue
            yield packet
    except READ_ERRORS as exc:
        raise CorruptInput(f"cannot read {kind} to the end: {reason(exc)}") from exc


def container_fields(container: InputContainer) -> list[MetaField]:
    """What an open video reveals, in human terms: tags, chapters, and the tracks a cleaned
    file leaves out (telemetry, timecode, cover pictures, subtitles carrying GPS).

    Subtitle tracks are read through a second handle, as `VideoHandler.carried_streams` does.
    """
    return _fields(container)


def _is_cue_end(packet: Packet[Stream]) -> bool:
    # A 3GPP timed-text sample of zero characters: the end of the cue before it.
    if packet.size != 2 or _codec_name(packet.stream) != "mov_text":
        return False
    return bytes(packet) == b"\0\0"


def _codec_name(stream: Stream) -> str:
    return stream.codec_context.name if stream.codec_context else ""


class Digest:
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
        # FLAC's STREAMINFO says how many samples the stream holds (0: not known); its frames
        # declare no lengths, so their durations are added up against it.
        self.samples = _declared_samples(stream)
        self.summed = 0

    def add(self, packet: Packet[Stream]) -> None:
        pts = None if packet.pts is None else Fraction(packet.pts) * packet.time_base
        if self.start is None and pts is not None:
            self.start = pts
        offset = None if pts is None else pts - (self.start or 0)
        self._hash.update(f"{offset}:{packet.size}:".encode())
        if self.kind == "subtitle":  # how long a cue stays on screen is part of the copy
            self._hash.update(f"{Fraction(packet.duration or 0) * packet.time_base}:".encode())
        self._hash.update(memoryview(packet))
        self.count += 1
        self.summed += packet.duration or 0

    def check_complete(self, kind: str, file_size: int) -> None:
        """`CorruptInput` unless every packet the headers promise was read."""
        # FFmpeg stops quietly at the end of a truncated file; the index says what is missing.
        # A timed-text index also counts the cue ends `packets` leaves out.
        short = self.count < self.indexed and self.kind != "subtitle"
        missing = self.data_end > file_size or short
        if missing or (self.frames and not self.count):
            raise CorruptInput(
                f"{kind} file is truncated: {self.kind} stream {self.index} has "
                f"{self.count} of its {max(self.frames, self.indexed)} packets"
            )
        if self.samples is not None and self.summed < self.samples:
            raise CorruptInput(
                f"{kind} file is truncated: {self.kind} stream {self.index} has "
                f"{self.summed} of its {self.samples} samples"
            )

    def result(self) -> StreamDigest:
        digest = self._hash.hexdigest()
        return StreamDigest(self.kind, self.codec, self.count, digest, self.start)


def _declared_samples(stream: Stream) -> int | None:
    """The sample count a FLAC file's STREAMINFO declares, in the stream's time base (one
    tick a sample); None for any other stream, or where it says 0 (not known)."""
    if stream.type != "audio" or stream.container.format.name != "flac":
        return None
    return stream.duration or None


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


def _matroska_end(path: Path, size: int) -> int | None:
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


def _riff_end(path: Path, file_size: int) -> int | None:
    """Where the RIFF chunks say an AVI file ends: its "RIFF AVI " chunk and the "RIFF AVIX"
    chunks that follow it in an OpenDML file (OpenDML AVI File Format Extensions 1.02, 2.1);
    None where the first size is unset (a recording stopped before it was written)."""
    end, at, form = None, 0, _RIFF_AVI
    with path.open("rb") as fh:
        while at + 12 <= file_size:
            fh.seek(at)
            header = fh.read(12)
            if header[:4] != b"RIFF" or header[8:12] != form:
                break  # what follows the last RIFF chunk is not the file's (FFmpeg ignores it)
            size = int.from_bytes(header[4:8], "little")
            if size < 4:
                return end
            end = at + 8 + size
            at, form = end + (size & 1), _RIFF_AVIX  # chunks are padded to an even size
    return end


#: ASF's Header, Data and File Properties Objects (ASF Specification 1.20, 3.1, 5.1, 3.2).
_ASF_HEADER = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
_ASF_DATA = bytes.fromhex("3626b2758e66cf11a6d900aa0062ce6c")
_ASF_FILE_PROPERTIES = bytes.fromhex("a1dcab8c47a9cf118ee400c00c205365")
_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=timezone.utc)  # FILETIME counts 100 ns from it


def _is_asf(prefix: bytes) -> bool:
    return prefix[:16] == _ASF_HEADER


def _asf_blocks(path: Path) -> tuple[list[audio.Tag], list[MetaField]]:
    """The recording date in an ASF file's File Properties Object, which FFmpeg does not show
    (it writes 0 there, "unknown", so cleaning never copied it)."""
    with path.open("rb") as fh:
        header = fh.read(_RIFF_HEADER_LIMIT)
    at, end = 30, min(len(header), int.from_bytes(header[16:24], "little"))
    while at + 24 <= end:
        size = int.from_bytes(header[at + 16 : at + 24], "little")
        if header[at : at + 16] == _ASF_FILE_PROPERTIES and at + 56 <= end:
            ticks = int.from_bytes(header[at + 48 : at + 56], "little")
            if not ticks:
                break
            when = _FILETIME_EPOCH + timedelta(microseconds=ticks // 10)
            return [("creation_time", when.strftime("%Y-%m-%dT%H:%M:%SZ"))], []
        if size < 24:
            break
        at += size
    return [], []


def _asf_end(path: Path, file_size: int) -> int | None:
    """Where an ASF (WMV, WMA) file's Header and Data Objects say its data ends (index objects
    may follow); None where the Data Object's size is unset (a live stream's)."""
    with path.open("rb") as fh:
        header = fh.read(24)
        if len(header) < 24:
            return 24
        header_size = int.from_bytes(header[16:24], "little")
        fh.seek(header_size)
        data = fh.read(24)
    if len(data) < 24:
        return header_size + 24
    if data[:16] != _ASF_DATA:
        return None
    data_size = int.from_bytes(data[16:24], "little")
    return header_size + data_size if data_size >= 50 else None


def _is_iso_bmff(prefix: bytes) -> bool:
    # A HEIF or AVIF still is an ISO BMFF file too; it is not a video.
    return prefix[4:8] in _ISO_BMFF_BOXES and not (
        HeifHandler.accept(prefix) or AvifHandler.accept(prefix)
    )


def _is_m4a(prefix: bytes) -> bool:
    return audio.is_m4a(prefix) and _is_iso_bmff(prefix)


def _is_matroska(prefix: bytes) -> bool:
    return prefix.startswith(_EBML_MAGIC)


def _is_avi(prefix: bytes) -> bool:
    return prefix[:4] == b"RIFF" and prefix[8:12] == _RIFF_AVI


@dataclass(frozen=True)
class _Container:
    """How veil reads one container kind itself, apart from FFmpeg: its signature, where it
    says it ends (None: it does not say), and the tags and blocks FFmpeg does not show."""

    accept: Callable[[bytes], bool]
    end: Callable[[Path, int], int | None]
    blocks: Callable[[Path], tuple[list[audio.Tag], list[MetaField]]] | None = None


_ISO_BMFF = _Container(_is_iso_bmff, _iso_bmff_end)
_MATROSKA = _Container(_is_matroska, _matroska_end)
_OGG = _Container(audio.is_ogg, audio.ogg_end)
#: Each FFmpeg muxer a handler writes with, and its container as veil reads it.
_CONTAINERS: dict[str, _Container] = {
    "mp4": _ISO_BMFF,
    "mov": _ISO_BMFF,
    "3gp": _ISO_BMFF,
    "3g2": _ISO_BMFF,
    "matroska": _MATROSKA,
    "webm": _MATROSKA,
    "avi": _Container(_is_avi, _riff_end),
    "asf": _Container(_is_asf, _asf_end, _asf_blocks),
    "ipod": _Container(_is_m4a, _iso_bmff_end),
    "mp3": _Container(audio.is_mp3, audio.mp3_end, audio.mp3_tags),
    "opus": _Container(audio.is_opus, audio.ogg_end),
    "ogg": _OGG,
    "wav": _Container(audio.is_wav, audio.wav_end, audio.wav_chunks),
    "flac": _Container(audio.is_flac, audio.flac_end, audio.flac_blocks),
}


def _riff_stream_data(path: Path) -> list[bytes]:
    """The payloads of the "strd" chunks in an AVI's stream headers (hdrl/strl lists)."""
    found: list[bytes] = []
    with path.open("rb") as fh:
        head = fh.read(12 + _RIFF_HEADER_LIMIT)
    # hdrl is the first chunk of "RIFF AVI ": "LIST", size, "hdrl", then its chunks.
    if head[12:16] != b"LIST" or head[20:24] != b"hdrl":
        return found
    _riff_walk(head, 24, 20 + int.from_bytes(head[16:20], "little"), found)
    return found


def _riff_walk(data: bytes, at: int, end: int, found: list[bytes]) -> None:
    end = min(end, len(data))
    while at + 8 <= end:
        fourcc, size = data[at : at + 4], int.from_bytes(data[at + 4 : at + 8], "little")
        if fourcc == b"LIST" and data[at + 8 : at + 12] == b"strl":
            _riff_walk(data, at + 12, at + 8 + size, found)
        elif fourcc == b"strd":
            found.append(data[at + 8 : at + 8 + size])
        at += 8 + size + (size & 1)


def _extradata_is_camera_data(stream: Stream) -> bool:
    """Whether FFmpeg handed an AVI stream's "strd" chunk to the codec as its setup data.

    It does so for a codec whose format header brought none (MJPEG, PCM); cameras use the
    chunk for EXIF maker notes (Pentax, Fujifilm "AVIF"), which the muxer would write into the
    new stream header.
    """
    container = stream.container
    extradata = stream.codec_context.extradata if stream.codec_context else None
    if not extradata or container.format.name != "avi":
        return False
    try:
        return any(p.startswith(extradata) for p in _riff_stream_data(Path(container.name)))
    except OSError:
        return True  # cannot tell: leave the bytes out


def _same_start(got: Fraction | None, want: Fraction | None) -> bool:
    # FFmpeg's MP4 muxer writes the edit list that delays a stream in a 1/1000 s movie time
    # scale, so a start read from a file made elsewhere comes back rounded to the millisecond.
    if got is None or want is None:
        return got == want
    return abs(got - want) <= _START_TOLERANCE_S


def display_rotations(path: Path, kind: str) -> tuple[float | None, ...]:
    """The display rotation of each kept video stream, as a player applies it to the frames."""
    with open_input(path, kind) as container:
        count = len([s for s in container.streams.video if is_kept(s)])
    return tuple(_rotation(path, kind, number) for number in range(count))


def _rotation(path: Path, kind: str, number: int) -> float | None:
    # Read from the first decoded frame: PyAV does not expose a stream's display matrix, and
    # the decoder attaches it to every frame.
    with open_input(path, kind) as container:
        stream = [s for s in container.streams.video if is_kept(s)][number]
        try:
            frame = next(container.decode(stream), None)
        except READ_ERRORS:
            return None  # no decoder for this codec: the packets are still compared
        return None if frame is None else float(frame.rotation)


def _fields(
    container: InputContainer, muxer: str | None = None, sound: bool = False
) -> list[MetaField]:
    """`container_fields`; with ``muxer``, also the subtitle tracks that muxer cannot hold and
    what veil reads of that container itself (an MP3's ID3v1 and APE tags, WAV chunks, FLAC
    blocks); ``sound`` for a recording, whose cleaned file holds no subtitle track at all."""
    found = _tag_fields(container.metadata, stream=False)
    if "mp4" in container.format.name.split(","):  # FFmpeg's one demuxer of ISO BMFF videos
        found += _asset_fields(Path(container.name))
    layout = _CONTAINERS.get(muxer or "")
    if layout is not None and layout.blocks is not None:
        found += _block_fields(layout.blocks, Path(container.name))
    # FFmpeg gives an Ogg file's comments to its streams: they describe the file, as the
    # tags of a container do (its ENCODER is the recording program, not a track's codec).
    on_track = container.format.name != "ogg"
    dropped = _dropped_subtitles(container, muxer, sound)
    for stream in container.streams:
        if stream.index in dropped:
            found.append(dropped[stream.index])
        elif is_kept(stream) or stream.type == "subtitle":
            found += _tag_fields(stream.metadata, stream=on_track)
        else:
            found.append(_track_field(stream))
        if _extradata_is_camera_data(stream):
            found.append(MetaField(DEVICE, "StreamData", _CAMERA_DATA))
        if _is_ass(stream) and stream.index not in dropped:
            _, left_out = _ass_header(stream.codec_context.extradata or b"")
            if left_out:
                found.append(MetaField(TEXT, "SubtitleHeader", _ASS_DETAILS))
    chapters = container.chapters()
    if chapters:
        found.append(MetaField(TEXT, "Chapters", f"{len(chapters)} chapters (titles and times)"))
    return _unique(found)


def _block_fields(
    read: Callable[[Path], tuple[list[audio.Tag], list[MetaField]]], path: Path
) -> list[MetaField]:
    """What ``read`` finds in a file, its tags judged as FFmpeg's are."""
    try:
        tags, found = read(path)
    except OSError as exc:
        raise CorruptInput(f"cannot read {path.name}: {exc.strerror or exc}") from exc
    return [f for key, value in tags for f in _tag_fields({key: value}, stream=False)] + found


#: 3GPP asset boxes (TS 26.244) in a ``udta`` of the movie or of a track. FFmpeg reads almost
#: none of them (a 3GP file's title, author and place did not show in scans), so veil reads
#: them itself. Cleaning never copied them: the muxer writes no ``udta`` of the input's.
_ASSETS: dict[bytes, tuple[str, str]] = {
    b"titl": (TEXT, "Title"),
    b"dscp": (TEXT, "Description"),
    b"gnre": (TEXT, "Genre"),
    b"albm": (TEXT, "Album"),
    b"kywd": (TEXT, "Keywords"),
    b"cprt": (PERSON, "Copyright"),
    b"perf": (PERSON, "Performer"),
    b"auth": (PERSON, "Author"),
    b"loci": (PLACE, "Location"),
    b"yrrc": (TIME, "Year"),
    b"rtng": (OTHER, "Rating"),
    b"clsf": (OTHER, "Classification"),
}
#: A movie header larger than this is not searched for asset boxes (they sit in a few KB).
_MOOV_LIMIT = 64 << 20


def _asset_fields(path: Path) -> list[MetaField]:
    """The 3GPP asset boxes of an ISO BMFF video, in words."""
    moov = _movie_header(path)
    if moov is None:
        return []
    found: list[MetaField] = []
    try:
        tracks = [t for t in boxes(moov) if t.type == b"trak"]
        udtas = [u for parent in (None, *tracks) for u in _children(moov, parent, b"udta")]
        for udta in udtas:
            for item in boxes(moov, udta.body, udta.end):
                if item.type in _ASSETS:
                    category, label = _ASSETS[item.type]
                    value = _asset_text(item.type, moov[item.body : item.end])
                    found.append(MetaField(category, label, value or "(present)"))
    except CorruptInput:
        pass  # a damaged user-data box: what FFmpeg read stands, and cleaning drops it anyway
    return found


def _children(data: bytes, parent: Box | None, kind: bytes) -> list[Box]:
    inside = boxes(data) if parent is None else boxes(data, parent.body, parent.end)
    return [b for b in inside if b.type == kind]


def _movie_header(path: Path) -> bytes | None:
    """The body of the file's top-level ``moov`` box, found by its headers alone."""
    with path.open("rb") as file:
        size = path.stat().st_size
        position = 0
        while position + 8 <= size:
            file.seek(position)
            header = file.read(16)
            length, kind = int.from_bytes(header[:4], "big"), header[4:8]
            body = position + 8
            if length == 1 and len(header) == 16:
                length, body = int.from_bytes(header[8:16], "big"), position + 16
            elif length == 0:
                length = size - position
            if length < body - position:
                return None
            if kind == b"moov":
                if length > _MOOV_LIMIT:
                    return None
                file.seek(body)
                return file.read(position + length - body)
            position += length
    return None


def _asset_text(kind: bytes, body: bytes) -> str:
    """An asset box's text: after its version and flags (4 bytes), a language code (2 bytes)
    and a string; ``yrrc`` is a year, ``rtng`` and ``clsf`` lead with codes, ``loci`` adds
    coordinates after the place's name."""
    if kind == b"yrrc":
        return str(int.from_bytes(body[4:6], "big")) if len(body) >= 6 else ""
    start = {b"rtng": 14, b"clsf": 12}.get(kind, 6)
    if kind == b"kywd":
        start = 7  # then a count, and each keyword led by its length
    if kind == b"loci":
        name, _, rest = body[6:].partition(b"\0")
        if len(rest) >= 13:
            lon, lat = (int.from_bytes(rest[i : i + 4], "big", signed=True) / 65536 for i in (1, 5))
            return f"{_string(name)} ({lat:.5f}, {lon:.5f})".strip()
        return _string(name)
    return _string(body[start:])


def _string(raw: bytes) -> str:
    """A 3GPP string: UTF-16 after a byte-order mark, else UTF-8; null-terminated."""
    if raw[:2] in (b"\xfe\xff", b"\xff\xfe"):
        text = raw.decode("utf-16", "replace").split("\0")[0]
    else:
        text = raw.split(b"\0")[0].decode("utf-8", "replace")
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())[:80]


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
        if name == "encoder" and value.startswith(_BITEXACT_ENCODER):
            # "Lavf62.12.102": FFmpeg's muxing library names itself as the writing program
            # (PyAV, HandBrake, ffmpeg all write it). A library, not anyone's device; still
            # not needed by a viewer, so it is said, under other, and not copied.
            found.append(MetaField(OTHER, "Software", f"{value} (FFmpeg's library wrote it)"))
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
    if stream.type == "attachment":
        return MetaField(OTHER, "Attachment", "attached file (fonts, pictures, documents)")
    return MetaField(OTHER, "OtherTrack", f"{stream.type} track")


# -- subtitle tracks -----------------------------------------------------------------------
def _dropped_subtitles(
    container: InputContainer, muxer: str | None, sound: bool = False
) -> dict[int, MetaField]:
    """The subtitle tracks a cleaned file leaves out, by stream index, with the reason: the
    text carries telemetry, ``muxer`` (when given) cannot hold the codec, or the file is a
    recording (``sound``), whose output holds sound only."""
    dropped: dict[int, MetaField] = {}
    readable: list[Stream] = []
    for stream in container.streams.subtitles:
        # Told by the handler, not by its muxer: ASF's writes both WMV videos and WMA sound.
        if sound:
            dropped[stream.index] = _TEXT_TRACK
        elif muxer is not None and not _muxer_takes(muxer, stream):
            codec = _codec_name(stream) or "unknown"
            note = f"subtitle track in {codec} format, which a {muxer} file cannot hold"
            dropped[stream.index] = MetaField(OTHER, "SubtitleTrack", note)
        elif not _is_bitmap(stream):
            readable.append(stream)
    for index in _telemetry_tracks(container, readable):
        dropped[index] = _TELEMETRY_SUBTITLE
    return dropped


def _is_ass(stream: Stream) -> bool:
    return stream.type == "subtitle" and _codec_name(stream) in ("ass", "ssa")


def _ass_header(header: bytes) -> tuple[bytes, list[str]]:
    """An ASS/SSA script header cut down to what a renderer needs, and the lines left out.

    Kept: the [Script Info] lines that set the canvas and wrapping, the styles, and the
    events' column list. Left out: the title and credits ("Original Script: Jane"), comments
    ("; Script generated by Aegisub"), the editor's own section (which names the local video
    file, home folder included) and embedded fonts and pictures.
    """
    kept: list[str] = []
    left_out: list[str] = []
    keys: frozenset[str] = frozenset()
    for raw in header.decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            keys = _ASS_KEPT.get(line.lower(), frozenset())
            (kept if keys else left_out).append(line)
        elif line.split(":", 1)[0].strip().lower() in keys and ":" in line:
            kept.append(line)
        elif line:
            left_out.append(line)
    return "\n".join(kept).encode() + b"\n", left_out


def _is_bitmap(stream: Stream) -> bool:
    # DVD, Blu-ray (PGS) and DVB subtitles are run-length pictures: no text to read. A track
    # whose codec FFmpeg cannot decode counts as text and is searched byte for byte.
    codec: Codec | None = stream.codec_context.codec if stream.codec_context else None
    return codec is not None and codec.bitmap_sub


def _muxer_writes(muxer: str, stream: Stream) -> bool:
    """Whether FFmpeg's ``muxer`` writes a file holding ``stream``'s codec: a header is written
    in memory, since the muxers without a codec table (Ogg, FLAC) say no only there."""
    try:
        with av.open(io.BytesIO(), "w", format=muxer, container_options=BITEXACT) as trial:
            trial.add_stream_from_template(stream)
            trial.start_encoding()
    except (ValueError, av.FFmpegError):
        return False
    return True


def _muxer_takes(muxer: str, stream: Stream) -> bool:
    """Whether FFmpeg's ``muxer`` can hold ``stream``'s codec (PyAV asks the muxer's codec
    table, as it does when the real output stream is added)."""
    with av.open(io.BytesIO(), "w", format=muxer) as trial:
        try:
            trial.add_stream_from_template(stream)
        except ValueError:
            return False
    return True


def _telemetry_tracks(container: InputContainer, streams: list[Stream]) -> set[int]:
    """The indices of ``streams`` (subtitle tracks) with a cue that looks like telemetry."""
    if not streams:
        return set()
    # The header too: a script's title or notes may name the place.
    found = {s.index for s in streams if is_telemetry(_header_text(s))}
    kind = container.format.name
    # A second handle on the same file: ``container`` keeps its read position for the caller.
    with open_input(Path(container.name), kind) as again:
        mine = [again.streams[s.index] for s in streams]
        for packet in packets(again, mine, kind):
            if packet.stream.index not in found and is_telemetry(_cue_text(packet)):
                found.add(packet.stream.index)
    return found


def _header_text(stream: Stream) -> str:
    if _codec_name(stream) == "mov_text":
        return ""  # a binary sample description (font table), no free text
    extradata = stream.codec_context.extradata if stream.codec_context else None
    return (extradata or b"").replace(b"\0", b"").decode("utf-8", "replace")


def _cue_text(packet: Packet[Stream]) -> str:
    """A subtitle packet's text: UTF-8 for SubRip, ASS and WebVTT; MP4 timed text starts with
    its text length and may be UTF-16 (3GPP TS 26.245, 5.17)."""
    data = bytes(packet)
    if _codec_name(packet.stream) == "mov_text":
        data = data[2 : 2 + int.from_bytes(data[:2], "big")]  # style boxes follow the text
    if data.startswith((b"\xfe\xff", b"\xff\xfe")):
        return data.decode("utf-16", "replace")
    # Text of a codec FFmpeg cannot decode may be UTF-16 without a byte order mark; its
    # letters and digits read the same once the zero bytes are gone.
    return data.replace(b"\0", b"").decode("utf-8", "replace")


def is_telemetry(text: str) -> bool:
    """Whether a subtitle cue looks like a drone's or dash cam's telemetry rather than speech.

    >>> is_telemetry("[latitude: 22.632435] [longitude: 113.823713] [altitude: 73.600000]")
    True
    >>> is_telemetry("Meet me at 10.30, OK?")
    False
    """
    if _TELEMETRY_LABEL.search(text) or _DATE_TIME.search(text) or _DMS.search(text):
        return True
    return any(_is_lat_lon(m[1], m[2]) for m in _COORDINATE_PAIR.finditer(text))


def _is_lat_lon(first: str, second: str) -> bool:
    a, b = abs(float(first)), abs(float(second))
    return (a <= 90 and b <= 180) or (a <= 180 and b <= 90)  # latitude first or longitude first


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
