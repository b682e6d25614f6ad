"""Faces in video: every frame decoded, its faces found and tracked, obscured, re-encoded.

Three threads share the work so that two cores stay busy: a reader demuxes and decodes (and
shrinks each frame to the detection preset's working size), the caller's thread detects and
tracks, and a writer obscures, encodes and muxes. Frames wait ``hold`` frames between
detection and writing, the look-ahead the `Tracker` needs to fill a face's missed frames.

What is kept: resolution, every frame's timestamp (variable frame rate included), the display
rotation, pixel format, colour description, and a codec and bitrate close to the input's.
Audio (and subtitles the container handler judges safe) is copied packet for packet. Frames
where no face is obscured go to the encoder as decoded, without a round trip through RGB.
What is dropped is what the metadata remux drops (`formats.video`): tags, data and telemetry
tracks, chapters, cover pictures.
"""

from __future__ import annotations

import queue
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from fractions import Fraction
from itertools import zip_longest
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import numpy as np
import numpy.typing as npt
from av.container import InputContainer, OutputContainer
from av.packet import Packet
from av.stream import Stream
from av.video.frame import PictureType, VideoFrame
from av.video.stream import VideoStream

from .detectors import Detector, Strategy
from .errors import CorruptInput, EncodeFailed, TooLarge, UnsupportedFormat, VerificationFailed
from .faces import Faces
from .fields import MetaField
from .fills import ScannedFace, judge
from .formats.video import (
    BITEXACT,
    READ_ERRORS,
    Digest,
    NewSound,
    VideoHandler,
    container_fields,
    copy_or_new,
    display_rotations,
    is_kept,
    open_input,
    packet_end,
    packets,
    reason,
)
from .obscurers import Obscurer
from .pixels import Pixels
from .result import FaceRecord, TextRecord
from .tracking import SceneCuts, Track, Tracker

if TYPE_CHECKING:
    from .text import Kind, TextFinder

#: Called as frames are written: (frames written, frames expected or None when unknown).
Progress = Callable[[int, int | None], None]

# Encoder for each decoder, where FFmpeg (in PyAV's wheel) has one: the same codec as the
# input. Anything else becomes H.264 (VP9 in WebM, which allows nothing else).
_ENCODERS = {
    "h264": "libx264",
    "hevc": "libx265",
    "vp9": "libvpx-vp9",
    "vp8": "libvpx",
    "av1": "libsvtav1",
    "mpeg4": "mpeg4",
    "mjpeg": "mjpeg",
    "prores": "prores_ks",
    # Windows Media Video 7-9 (WMV3 has no encoder in FFmpeg: WMV 8 is the closest that has)
    "wmv1": "wmv1",
    "wmv2": "wmv2",
    "wmv3": "wmv2",
    "msmpeg4v3": "msmpeg4",
}
# Speed presets of the software encoders: frames/s on 2 cores matter more than the last few
# percent of compression (the bitrate is still the input's).
_ENCODER_OPTIONS = {
    "libx264": {"preset": "veryfast"},
    "libx265": {"preset": "veryfast", "x265-params": "log-level=error"},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8", "row-mt": "1"},
    "libvpx": {"deadline": "realtime", "cpu-used": "8"},
    "libsvtav1": {"preset": "10"},
}
#: Frames of a video that `--verify` checks, evenly spaced (each costs the second detector and
#: the recognizer); `veil scan` looks at this many key frames.
VERIFY_SAMPLES = 48
SCAN_SAMPLES = 12
_QUEUE_FRAMES = 8  # decoded frames waiting for detection, and obscured ones for the encoder
_END = object()  # end of a queue


@dataclass
class Transcoded:
    """What `VideoCleaner.clean` wrote: frames, faces (one record per track) and what the
    container gave away."""

    faces: list[FaceRecord]
    removed: list[MetaField]
    video_packets: int = 0
    #: Display rotation of the input's video (as `formats.video` reads it), to find again.
    rotation: float | None = None
    #: Input stream index -> SHA-256 of the packets copied unchanged (audio, subtitles).
    carried: dict[int, str] = field(default_factory=dict)
    #: Sound tracks written anew (new voices), not copied.
    rewritten: int = 0
    #: Plates and text (``--plates``, ``--text``), one record per track, as faces.
    plates: list[TextRecord] = field(default_factory=list)
    text: list[TextRecord] = field(default_factory=list)


@dataclass
class _Pending:
    """A frame between detection and writing."""

    index: int
    frame: VideoFrame
    faces: Faces  # in displayed (upright) full-size pixels
    #: Plates and text by kind, as boxes already grown to what is obscured (`Marks.areas`).
    text: dict[Kind, Faces] = field(default_factory=dict)


class _Thread(threading.Thread):
    """A daemon thread whose exception is kept for the caller to re-raise."""

    def __init__(self, target: Callable[[], None], name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._work = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._work()
        except BaseException as exc:  # handed to the caller's thread, which re-raises it
            self.error = exc


class _Stop(Exception):
    """Raised inside a thread when another thread failed and the work is abandoned."""


class _Channel:
    """A bounded queue whose ends give up when the job is abandoned (no thread blocks)."""

    def __init__(self, stop: threading.Event, size: int) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(size)
        self._stop = stop

    def put(self, item: Any) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stop

    def __iter__(self) -> Iterator[Any]:
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is _END:
                return
            yield item
        raise _Stop


class VideoCleaner:
    """Obscures the faces of every frame of a video; one per pipeline (the detector is shared).

    ``hold``: frames a face's region is kept through missed detections (`Tracker`).
    ``text``: finds plates and text too, tracked as faces are and obscured as whole boxes by
    ``box``; ``faces`` False: only those.
    """

    def __init__(
        self,
        detector: Detector,
        obscurer: Obscurer,
        strategy: Strategy,
        hold: int,
        max_pixels: int,
        text: TextFinder | None = None,
        box: Obscurer | None = None,
        faces: bool = True,
    ) -> None:
        self.detector = detector
        self.obscurer = obscurer
        self.strategy = strategy
        self.hold = hold
        self.max_pixels = max_pixels
        self.text, self.box, self.faces = text, box, faces

    @property
    def text_kinds(self) -> tuple[Kind, ...]:
        if self.text is None:
            return ()
        kinds: tuple[Kind, ...] = ("plate",) if self.text.plates else ()
        return (*kinds, "text") if self.text.text else kinds

    def clean(
        self,
        handler: VideoHandler,
        src: Path,
        out: Path,
        progress: Progress | None = None,
        sound: NewSound | None = None,
    ) -> Transcoded:
        """Write ``src`` with every face obscured to ``out`` (which the caller deletes on error);
        the sound tracks in ``sound`` are written anew from it, the others copied."""
        removed = handler.fields(src)
        handler.check_whole(src)
        rotation = (display_rotations(src, handler.name) or (None,))[0]
        with open_input(src, handler.name) as inp:
            video = _video_stream(inp, handler.name)
            if video.codec_context.width * video.codec_context.height > self.max_pixels:
                raise TooLarge(
                    f"video frames of {video.codec_context.width}x{video.codec_context.height} "
                    f"exceed the limit of {self.max_pixels:,} pixels"
                )
            carried = [s for s in handler.carried_streams(inp) if s.type != "video"]
            try:
                output = av.open(str(out), "w", format=handler.muxer, container_options=BITEXACT)
            except (av.FFmpegError, OSError, ValueError) as exc:
                raise EncodeFailed(f"cannot write {handler.name}: {reason(exc)}") from exc
            with output:
                job = _Job(
                    self, handler, inp, output, video, carried, rotation or 0.0, progress, sound
                )
                result = job.transcode()
        result.removed, result.rotation = removed, rotation
        return result

    def working(self, frame: VideoFrame) -> Pixels:
        """A decoded frame upright at the detection preset's working size, as RGB: the one
        picture of a frame that faces are looked for in."""
        width, height = working_size(frame.width, frame.height, self.strategy.video_side)
        small = _pixels(frame.reformat(width, height, "rgb24", interpolation="AREA"))
        return _upright(small, frame.rotation)

    def find(self, small: Pixels, frame: VideoFrame) -> Faces:
        """The faces in ``small`` (`working`), as boxes on the upright ``frame``.

        `clean` obscures these, and `pairs` gives the checks these, so that "a face the
        cleaning found" is one: when verification looked by other passes (no zoom), it
        judged boxes the cleaning never had, and a hair patch scoring 0.105 that only the
        check found was reported as a face left half bare.
        """
        if not self.faces:
            return Faces.empty()
        height, width = _upright_size(frame)
        found = self.detector.detect(small)
        return found.scaled(width / small.shape[1], height / small.shape[0])

    def detect(self, frame: VideoFrame) -> Faces:
        """The faces `clean` finds in one decoded frame, as boxes on the upright frame."""
        return self.find(self.working(frame), frame)

    def pairs(
        self, handler: VideoHandler, original: Path, output: Path, samples: int = VERIFY_SAMPLES
    ) -> Iterator[tuple[int, Pixels, Pixels, Faces]]:
        """(frame number, original, output, the faces `clean` finds in the original) for
        ``samples`` evenly spaced frames, upright RGB; both videos are decoded in step, frame
        i against frame i."""
        with open_input(original, handler.name) as a, open_input(output, handler.name) as b:
            total = _video_stream(a, handler.name).frames or 0
            step = max(1, -(-total // samples)) if total else 1
            both = zip_longest(_frames(a, handler.name), _frames(b, handler.name))
            for index, (before, after) in enumerate(both):
                if before is None or after is None:
                    raise VerificationFailed("the output has not as many frames as the original")
                if index % step == 0:
                    yield index, _rgb(before), _rgb(after), self.detect(before)

    def scan(
        self, handler: VideoHandler, src: Path, samples: int = SCAN_SAMPLES
    ) -> tuple[list[ScannedFace], int, dict[Kind, list[TextRecord]]]:
        """Faces in up to ``samples`` evenly spaced key frames (decoding only key frames keeps
        a scan of a long video short), how many frames were looked at, and the plates and text
        there by kind (with ``text``); ``frames`` of each record is its frame number, ``seen``
        of a face whether it is on one of veil's fills."""
        with open_input(src, handler.name) as container:
            video = _video_stream(container, handler.name)
            video.codec_context.skip_frame = "NONKEY"
            keys = list(_frames(container, handler.name))
        rate = video.average_rate or video.guessed_rate or 1
        step = max(1, -(-len(keys) // samples))
        records = []
        looked = keys[::step]
        marks: dict[Kind, list[TextRecord]] = {kind: [] for kind in self.text_kinds}
        for frame in looked:
            rgb = _rgb(frame)
            number = round(float((frame.time or 0) * rate))
            if self.faces:
                faces = self.detect(frame)
                records += judge(rgb, faces, faces.regions(rgb.shape[1], rgb.shape[0]), number)
            if self.text is not None:
                found = self.text.find(rgb)
                regions = found.regions(rgb.shape[1], rgb.shape[0])
                for kind in marks:
                    marks[kind] += [
                        replace(r, frames=[number, number]) for r in found.records(regions, kind)
                    ]
        return records, len(looked), marks

    @staticmethod
    def still(handler: VideoHandler, src: Path) -> Pixels:
        """The middle key frame of a video, upright: a picture of it for a person to see."""
        with open_input(src, handler.name) as container:
            _video_stream(container, handler.name).codec_context.skip_frame = "NONKEY"
            keys = list(_frames(container, handler.name))
        if not keys:
            raise CorruptInput(f"the {handler.name} video has no frame to show")
        return _rgb(keys[len(keys) // 2])

    def reread(self, handler: VideoHandler, out: Path, written: Transcoded) -> None:
        """Re-read ``out``: the frame count, the copied streams bit for bit, no metadata."""
        try:
            with open_input(out, handler.name) as container:
                streams = list(container.streams)
                left = container_fields(container)
                if left:
                    names = ", ".join(sorted({f.name for f in left}))
                    raise VerificationFailed(f"identifying metadata survived: {names}")
                expected = 1 + len(written.carried) + written.rewritten
                if len(streams) != expected:
                    raise VerificationFailed(
                        f"output has {len(streams)} streams, expected {expected}"
                    )
                digests = [Digest(s) for s in streams]
                for packet in packets(container, streams, handler.name):
                    digests[packet.stream.index].add(packet)
        except CorruptInput as exc:
            raise VerificationFailed(f"output does not read back: {exc}") from exc
        video = next(d for d in digests if d.kind == "video")
        if video.count != written.video_packets:
            raise VerificationFailed(
                f"output video has {video.count} frames, {written.video_packets} were written"
            )
        # Every copied stream found once, as it was; the other non-video streams (their count
        # checked above) are the new voices.
        copies = Counter(d.result().sha256 for d in digests if d.kind != "video")
        if Counter(written.carried.values()) - copies:
            raise VerificationFailed("an audio or subtitle stream is not an exact copy")
        if any(d.kind == "audio" and not d.count for d in digests):
            raise VerificationFailed("a sound track of the output is empty")
        if display_rotations(out, handler.name) != (written.rotation,):
            raise VerificationFailed("the display rotation of the video was not kept")


def _video_stream(container: InputContainer, kind: str) -> VideoStream:
    videos = [s for s in container.streams.video if is_kept(s)]
    if not videos:
        raise CorruptInput(f"{kind} file holds no video stream")
    if len(videos) > 1:
        raise UnsupportedFormat(
            f"{kind} with {len(videos)} video tracks (stereo, multi-angle) is not cleaned yet"
        )
    stream = videos[0]
    if stream.codec_context is None or not stream.codec_context.is_decoder:
        codec = stream.codec_context.name if stream.codec_context else "unknown"
        raise UnsupportedFormat(f"{kind} video codec {codec!r} cannot be decoded")
    return stream


class _Job:
    """One video being cleaned: the three threads and what they share."""

    def __init__(
        self,
        cleaner: VideoCleaner,
        handler: VideoHandler,
        inp: InputContainer,
        output: OutputContainer,
        video: VideoStream,
        carried: list[Stream],
        rotation: float,
        progress: Progress | None,
        sound: NewSound | None,
    ) -> None:
        self.cleaner, self.kind, self.inp, self.output = cleaner, handler.name, inp, output
        self.video, self.carried, self.progress = video, carried, progress
        self.sound = sound
        self.stop = threading.Event()
        self.decoded = _Channel(self.stop, _QUEUE_FRAMES)
        self.to_write = _Channel(self.stop, _QUEUE_FRAMES)
        self.digests = {s.index: Digest(s) for s in [video, *carried]}
        # Output streams in the input's order (the video usually first, as players expect).
        before = [s for s in carried if s.index < video.index]
        self.targets = {s.index: copy_or_new(output, s, sound, self.kind) for s in before}
        self.encoder = _encoder(output, video, handler)
        if rotation:
            self.encoder.set_display_rotation(rotation)
        self.targets |= {
            s.index: copy_or_new(output, s, sound, self.kind) for s in carried if s not in before
        }
        self.rewritten = [s.index for s in carried if sound is not None and s.index in sound]
        self.expected = _frame_count(video)
        self.frames = 0
        self.packets_out = 0
        self.faces: list[FaceRecord] = []
        self.marks: dict[Kind, list[TextRecord]] = {kind: [] for kind in cleaner.text_kinds}

    def transcode(self) -> Transcoded:
        reader = _Thread(self._read, "veil-video-read")
        writer = _Thread(self._write, "veil-video-write")
        reader.start()
        writer.start()
        try:
            self._detect()
        except _Stop:
            pass  # another thread failed; its error is raised below
        except BaseException:  # Ctrl-C included: the other threads stop before it propagates
            self.stop.set()
            raise
        finally:
            reader.join()
            writer.join()
        for thread in (reader, writer):
            if thread.error is not None and not isinstance(thread.error, _Stop):
                raise thread.error
        size = Path(self.inp.name).stat().st_size
        for digest in self.digests.values():
            digest.check_complete(self.kind, size)
        if self.frames == 0:
            raise CorruptInput(f"{self.kind} video stream holds no frames")
        carried = {
            i: d.result().sha256
            for i, d in self.digests.items()
            if i != self.video.index and i not in self.rewritten
        }
        return Transcoded(
            self.faces,
            [],
            self.packets_out,
            carried=carried,
            rewritten=len(self.rewritten),
            plates=self.marks.get("plate", []),
            text=self.marks.get("text", []),
        )

    # -- reader thread ---------------------------------------------------------------------
    def _read(self) -> None:
        try:
            self.video.codec_context.thread_type = "AUTO"
            streams = [self.video, *self.carried]
            for packet in packets(self.inp, streams, self.kind):
                self.digests[packet.stream.index].add(packet)
                if packet.stream.index != self.video.index:
                    self.decoded.put(packet)
                    continue
                for frame in _decode(self.video, packet, self.kind):
                    self.decoded.put((frame, self.cleaner.working(frame)))
            for frame in _decode(self.video, None, self.kind):
                self.decoded.put((frame, self.cleaner.working(frame)))
            self.decoded.put(_END)
        except BaseException:
            self.stop.set()
            raise

    # -- caller's thread: detection and tracking -------------------------------------------
    def _detect(self) -> None:
        tracker = Tracker(self.cleaner.hold)
        # Plates and text are tracked as faces are, one tracker per kind (for the report).
        self.trackers = {kind: Tracker(self.cleaner.hold) for kind in self.cleaner.text_kinds}
        cuts = SceneCuts()
        pending: deque[_Pending] = deque()
        index = 0
        for item in self.decoded:
            if isinstance(item, Packet):
                self.to_write.put(item)
                continue
            frame, small = item
            height, width = _upright_size(frame)
            sx, sy = width / small.shape[1], height / small.shape[0]
            faces = self.cleaner.find(small, frame)
            cut = cuts.is_cut(small)
            tracker.update(index, faces, cut)
            text = self._text(small, sx, sy)
            for kind, found in text.items():
                self.trackers[kind].update(index, found, cut)
            pending.append(_Pending(index, frame, faces, text))
            index += 1
            while pending and tracker.final(pending[0].index):
                self._release(pending.popleft(), tracker)
        while pending:
            self._release(pending.popleft(), tracker)
        self._report(tracker.forget(index + self.cleaner.hold))
        for kind, each in self.trackers.items():
            self._report_text(kind, each.forget(index + self.cleaner.hold))
        self.to_write.put(_END)

    def _text(self, small: Pixels, sx: float, sy: float) -> dict[Kind, Faces]:
        """The plates and text of a frame at the working size, by kind, as the full-size
        boxes to obscure. Found at the faces' working size: a frame at full size would cost
        the OCR detector a second or more per frame."""
        if self.cleaner.text is None:
            return {}
        marks = self.cleaner.text.find(small)
        out = {}
        for kind in self.cleaner.text_kinds:
            mine = marks.of(kind)
            out[kind] = Faces(mine.areas().astype(np.float32), mine.scores).scaled(sx, sy)
        return out

    def _release(self, item: _Pending, tracker: Tracker) -> None:
        """Hand a frame whose boxes are final to the writer, with the areas to obscure."""
        text = [
            self.trackers[kind].covered(item.index, found).xyxy for kind, found in item.text.items()
        ]
        boxes = np.concatenate([np.zeros((0, 4), np.float32), *text])
        areas = np.round(boxes).astype(np.int32)
        self.to_write.put((item.frame, tracker.covered(item.index, item.faces).areas(), areas))
        self._report(tracker.forget(item.index))
        for kind, each in self.trackers.items():
            self._report_text(kind, each.forget(item.index))

    def _report_text(self, kind: Kind, ended: list[Track]) -> None:
        for track in ended:
            self.marks[kind].append(
                TextRecord(
                    region=[round(float(v)) for v in track.extent],
                    score=round(max(track.scores), 4),
                    frames=[track.first, track.last],
                )
            )

    def _report(self, ended: list[Track]) -> None:
        for track in ended:
            self.faces.append(
                FaceRecord(
                    box=[round(float(v), 1) for v in track.extent],
                    region=[],
                    score=round(max(track.scores), 4),
                    frames=[track.first, track.last],
                )
            )

    # -- writer thread ---------------------------------------------------------------------
    def _write(self) -> None:
        try:
            for item in self.to_write:
                if isinstance(item, Packet):
                    index = item.stream.index
                    if index in self.rewritten:
                        assert self.sound is not None
                        self._mux(self.sound.until(index, packet_end(item)))
                        continue
                    item.stream = self.targets[index]
                    self._mux([item])
                    continue
                frame, areas, text = item
                self._mux(self.encoder.encode(self._obscured(frame, areas, text)))
                self.frames += 1
                if self.progress is not None:
                    self.progress(self.frames, self.expected)
            self._mux(self.encoder.encode(None))
            for index in self.rewritten:
                assert self.sound is not None
                self._mux(self.sound.until(index, None))
        except BaseException:
            self.stop.set()
            raise

    def _obscured(
        self, frame: VideoFrame, areas: npt.NDArray[np.int32], text: npt.NDArray[np.int32]
    ) -> VideoFrame:
        """The frame to encode: as decoded where nothing is obscured, else through RGB; faces
        in ``areas``, plates and text (whole boxes) in ``text``."""
        if len(areas) == 0 and len(text) == 0:
            out = frame
        else:
            # The same colour matrix and range both ways, so that the frame's untouched pixels
            # come back within a grey level or two (49 dB) and do not flicker against the
            # frames that skip the round trip.
            space, span = frame.colorspace, frame.color_range
            rgb = _pixels(
                frame.reformat(format="rgb24", src_colorspace=space, src_color_range=span)
            )
            hidden = self.cleaner.obscurer.apply(_upright(rgb, frame.rotation), areas)
            if len(text):
                assert self.cleaner.box is not None
                hidden = self.cleaner.box.apply(hidden, text)
            stored = np.ascontiguousarray(_upright(hidden, -frame.rotation))
            out = VideoFrame.from_ndarray(stored, format="rgb24").reformat(
                format=self.encoder.codec_context.pix_fmt,
                dst_colorspace=space,
                dst_color_range=span,
            )
            out.colorspace, out.color_range = frame.colorspace, frame.color_range
        out.pts, out.time_base = frame.pts, self.video.time_base
        out.duration = frame.duration
        out.pict_type = PictureType.NONE  # the encoder picks key frames, not the input's
        return out

    def _mux(self, encoded: list[Packet[Any]]) -> None:
        try:
            for packet in encoded:
                if packet.stream is self.encoder:
                    self.packets_out += 1
                self.output.mux(packet)
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise EncodeFailed(f"cannot write {self.kind}: {reason(exc)}") from exc


def _frame_count(video: VideoStream) -> int | None:
    """Frames the container declares, or duration x rate (Matroska declares no count)."""
    if video.frames:
        return int(video.frames)
    seconds = None
    if video.duration is not None and video.time_base is not None:
        seconds = float(video.duration * video.time_base)
    elif getattr(video.container, "duration", None) is not None:
        seconds = int(getattr(video.container, "duration", 0)) / av.time_base
    rate = video.average_rate or video.guessed_rate
    return round(seconds * float(rate)) if seconds and rate else None


def working_size(width: int, height: int, side: int) -> tuple[int, int]:
    """A frame's size shrunk so that its long side is at most ``side`` (never enlarged)."""
    scale = min(1.0, side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


@contextmanager
def _decoding(kind: str) -> Iterator[None]:
    """FFmpeg's decoding errors as `CorruptInput`."""
    try:
        yield
    except READ_ERRORS as exc:
        raise CorruptInput(f"cannot decode the {kind} video: {reason(exc)}") from exc


def _frames(container: InputContainer, kind: str) -> Iterator[VideoFrame]:
    """The decoded frames of a container's video stream, in order."""
    stream = _video_stream(container, kind)
    with _decoding(kind):
        yield from container.decode(stream)


def _rgb(frame: VideoFrame) -> Pixels:
    """A decoded frame as upright RGB."""
    return np.ascontiguousarray(_upright(_pixels(frame.reformat(format="rgb24")), frame.rotation))


def _pixels(frame: VideoFrame) -> Pixels:
    """An RGB24 frame's pixels as an array."""
    return np.asarray(frame.to_ndarray(), dtype=np.uint8)


def _decode(stream: VideoStream, packet: Packet[Any] | None, kind: str) -> list[VideoFrame]:
    with _decoding(kind):
        return stream.codec_context.decode(packet)


def _encoder(output: OutputContainer, video: VideoStream, handler: VideoHandler) -> VideoStream:
    """An encoding stream like ``video``: size, time base, pixel format, colour, rotation,
    bitrate, and the same codec where there is an encoder for it."""
    source = video.codec_context
    wanted = _ENCODERS.get(source.codec.canonical_name, "")
    fallback = "libvpx-vp9" if handler.muxer == "webm" else "libx264"
    for name in dict.fromkeys([wanted, fallback]):
        if not name:
            continue
        try:
            stream = output.add_stream(name, rate=video.average_rate or video.guessed_rate)
        except (av.FFmpegError, ValueError):
            continue
        if isinstance(stream, VideoStream):
            _configure(stream, video, name)
            return stream
    raise UnsupportedFormat(
        f"no encoder to write {handler.name} video ({source.codec.canonical_name})"
    )


def _configure(stream: VideoStream, video: VideoStream, encoder: str) -> None:
    source, target = video.codec_context, stream.codec_context
    target.width, target.height = source.width, source.height
    formats = [f.name for f in (target.codec.video_formats or [])]
    target.pix_fmt = source.pix_fmt if source.pix_fmt in formats or not formats else formats[0]
    target.time_base = stream.time_base = video.time_base or Fraction(1, 90000)
    target.color_range, target.colorspace = source.color_range, source.colorspace
    target.color_primaries, target.color_trc = source.color_primaries, source.color_trc
    if source.sample_aspect_ratio:
        target.sample_aspect_ratio = source.sample_aspect_ratio
    bitrate = video.bit_rate or source.bit_rate or _estimated_bitrate(video)
    if bitrate:
        target.bit_rate = bitrate
    target.options = dict(_ENCODER_OPTIONS.get(encoder, {}))
    target.thread_type = "AUTO"


def _estimated_bitrate(video: VideoStream) -> int | None:
    """Bits per second of the video stream from its container's overall rate (Matroska does
    not store a per-stream bitrate)."""
    container = video.container
    total = getattr(container, "bit_rate", None)
    if not total:
        return None
    others = sum(s.codec_context.bit_rate or 0 for s in container.streams if s is not video)
    return max(int(total) - others, int(total) // 2)


def _upright(rgb: Pixels, rotation: float) -> Pixels:
    """``rgb`` turned the way a player shows it (``rotation``: the stream's display rotation,
    counter-clockwise degrees, as FFmpeg reports it); ``-rotation`` turns it back."""
    turns = round(rotation / 90) % 4
    return rgb if turns == 0 else np.rot90(rgb, turns)


def _upright_size(frame: VideoFrame) -> tuple[int, int]:
    """(height, width) of the frame as displayed."""
    turned = round(frame.rotation / 90) % 2 == 1
    return (frame.width, frame.height) if turned else (frame.height, frame.width)


__all__ = ["Transcoded", "VideoCleaner"]
