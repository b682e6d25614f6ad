"""The one pipeline of every door: decode, detect, grow, obscure, encode, verify, write."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from ._lifetime import stop_if_told
from .atomic import atomic_output, atomic_write
from .detectors import Detector, default_detector
from .errors import (
    CorruptInput,
    LeakFound,
    UnsupportedFormat,
    UsageError,
    VeilError,
    VerificationFailed,
    WriteFailed,
    reported,
)
from .faces import Faces
from .fields import MetaField
from .files import read_regular
from .fills import ScannedFace, Seen, judge
from .formats import (
    FormatHandler,
    SvgHandler,
    VideoHandler,
    disagreement,
    handler_for,
    handler_for_bytes,
    image_kind,
)
from .formats.base import Decoded
from .formats.svg import Drawing, Raster
from .formats.video import holds_picture
from .obscurers import Obscurer, get_obscurer
from .pixels import Pixels, rgb_view
from .result import Checked, FaceRecord, Leak, Result, TextRecord, Verdict, Verification
from .settings import Settings
from .tracking import SceneCuts, Tracker
from .voice.sound import has_sound

if TYPE_CHECKING:
    from .text import Marks, TextFinder
    from .transcode import Progress, VideoCleaner
    from .verify import Verifier
    from .verify.speaker import SpeakerEncoder


@dataclass
class Cleaned:
    """An image after obscuring: the pixels plus what was found and where it was obscured."""

    pixels: Pixels
    faces: Faces
    regions: npt.NDArray[np.int32]
    #: Faces a person chose to leave visible (`Edits.keep`); verification leaves them be.
    shown: Faces = field(default_factory=Faces.empty)
    #: Plates and text obscured (``--plates``, ``--text``), and their regions, in order.
    text: Marks | None = None
    text_regions: npt.NDArray[np.int32] = field(default_factory=lambda: np.zeros((0, 4), np.int32))

    def records(self) -> list[FaceRecord]:
        return self.faces.records(self.regions)

    def text_records(self, kind: Literal["plate", "text"]) -> list[TextRecord]:
        return self.text.records(self.text_regions, kind) if self.text else []


Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Edits:
    """A person's corrections to what the detector found in a photo (``veil serve``).

    ``keep``: indices into the faces found of faces to leave visible (the person's own, say).
    ``add``: areas the detector missed, x1, y1, x2, y2 in displayed pixels; each is obscured
    as drawn, a whole rectangle, because a person draws the area they want gone.
    ``keep_marks``: indices into the plates and text found (`Look.marks`) to leave visible
    (a shop's name that says nothing of anyone, say).
    """

    keep: frozenset[int] = frozenset()
    add: tuple[Box, ...] = ()
    keep_marks: frozenset[int] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.keep or self.add or self.keep_marks)


@dataclass(frozen=True)
class Encoded:
    """A cleaned image's bytes, checked, and what was done to it."""

    data: bytes
    #: The bytes are the input's, byte for byte (no face, nothing to strip).
    unchanged: bool
    faces: list[FaceRecord]
    metadata_removed: list[str]
    verification: Verification | None
    plates: list[TextRecord] = field(default_factory=list)
    text: list[TextRecord] = field(default_factory=list)


@dataclass
class Opened:
    """An image decoded and searched for faces, nothing written yet: what a reviewer sees.

    ``found`` holds the faces of each frame (empty when faces are off).
    """

    source: Path
    handler: FormatHandler
    decoded: Decoded
    found: list[Faces]
    #: The plates and text of each frame (``--plates``, ``--text``); None when both are off.
    text: list[Marks] | None = None


@dataclass
class Look:
    """What a reviewer is shown of a file before cleaning it (``veil serve``)."""

    #: "photo" (edits allowed), "animation" or "video" (every face obscured, tracked),
    #: "recording" (sound only: its tags and its voices) or "drawing" (an SVG: its embedded
    #: pictures' faces obscured whole, as a video's; ``faces`` are where they show on it).
    kind: Literal["photo", "animation", "video", "recording", "drawing"]
    format: str
    frames: int
    #: A frame to show, upright and full size: an image's first, a video's middle key frame;
    #: None for a recording, which has no picture.
    still: Pixels | None
    #: Faces in the first frame; in a video, those of the sampled key frames.
    faces: list[FaceRecord]
    metadata: list[MetaField]
    sampled_frames: int | None
    #: Images: decoded and searched, ready for `Pipeline.edit`; None for a video, which is
    #: cleaned as a stream (`Pipeline.clean_file`).
    opened: Opened | None
    #: Videos and recordings with sound: the share of it that is speech, as `ScanReport`, or
    #: None with ``speech_note`` saying why (None too when there is no sound).
    speech: float | None = None
    speech_note: str | None = None
    #: Plates and text in the first frame (``--plates``, ``--text``), in the order
    #: `Edits.keep_marks` numbers them; in a video, those of the sampled key frames.
    marks: list[tuple[Literal["plate", "text"], TextRecord]] = field(default_factory=list)


@dataclass
class ScanReport:
    """What `veil scan` learns about one file without writing anything."""

    path: str
    format: str | None = None
    width: int | None = None
    height: int | None = None
    frames: int = 0
    #: Every face found, each marked ``seen``: still ``visible`` (clean would obscure it), or
    #: on one of veil's own grey fills (``obscured``) or at its ``edge`` (`veil.fills`).
    faces: list[ScannedFace] = field(default_factory=list)
    metadata: list[MetaField] = field(default_factory=list)
    error: str | None = None
    #: Videos: faces are looked for in this many evenly spaced key frames, not in all.
    sampled_frames: int | None = None
    #: Videos with sound: the share of it that is speech (voices name people too; issue 18),
    #: or None when there is no sound or it was not checked (``speech_note`` says why).
    speech: float | None = None
    speech_note: str | None = None
    #: Licence plates and other text found (``--plates on``, ``--text on``): regions clean
    #: would obscure; None when not looked for.
    plates: list[TextRecord] | None = None
    text: list[TextRecord] | None = None
    #: Why ``clean`` would refuse the file although it could be read: a face drawn in an
    #: SVG's vector shapes, or anything to obscure in a DNG or an animated JPEG XL.
    refused: str | None = None

    def seen(self, how: Seen) -> list[ScannedFace]:
        """The faces marked ``how``: ``report.seen("visible")`` are those clean would obscure."""
        return [f for f in self.faces if f.seen == how]


class _SharedSpeaker:
    """The voice check's speaker encoder, loaded on first use (like dlib's models) and held for
    a pipeline and all its variants (`Pipeline.variant`): whichever checks a voice first loads
    it for every one of them, so it loads once however many variants there are."""

    def __init__(self) -> None:
        self._encoder: SpeakerEncoder | None = None

    def get(self) -> SpeakerEncoder:
        if self._encoder is None:
            from .verify.speaker import SpeakerEncoder

            self._encoder = SpeakerEncoder()
        return self._encoder


class Pipeline:
    """Holds the loaded detector and obscurer; reuse one per process (model loads once).

    >>> pipe = Pipeline(Settings(method="blur"))          # doctest: +SKIP
    >>> pipe.run(Path("in.jpg"), Path("out/in.jpg")).status  # doctest: +SKIP
    'cleaned'
    """

    def __init__(
        self,
        settings: Settings | None = None,
        detector: Detector | None = None,
        threads: int | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self._detector = detector
        self._verifier: Verifier | None = None
        self._speaker = _SharedSpeaker()
        self._video: VideoCleaner | None = None
        self._text: TextFinder | None = None
        self._threads = threads
        self.obscurer: Obscurer = get_obscurer(self.settings.method, self.settings.mask)
        #: Called with the number of video frames written, as they are (progress bars).
        self.frame_progress: Progress | None = None

    @property
    def detector(self) -> Detector:
        if self._detector is None:  # loaded on first use: `--faces off` never pays for it
            self._detector = default_detector(self.settings.strategy, self._threads)
        return self._detector

    @property
    def _finds_text(self) -> bool:
        return self.settings.plates or self.settings.text

    @property
    def text_finder(self) -> TextFinder:
        """The OCR models, loaded on first use (with plates or text on, or to verify them)."""
        if self._text is None:
            from .text import TextFinder

            settings = self.settings
            self._text = TextFinder.for_preset(
                settings.plates, settings.text, settings.preset, self._threads
            )
        return self._text

    @property
    def verifier(self) -> Verifier:
        if self._verifier is None:  # dlib's models load only when verification is asked for
            from .detectors.centerface import CenterFace
            from .verify import Verifier

            shared = self.detector if isinstance(self.detector, CenterFace) else None
            self._verifier = Verifier(self._threads, shared)
        return self._verifier

    @property
    def video(self) -> VideoCleaner:
        if self._video is None:  # PyAV's encoders are imported only for a video
            from .transcode import VideoCleaner

            self._video = VideoCleaner(
                self.detector,
                self.obscurer,
                self.settings.strategy,
                self.settings.hold,
                self.settings.max_pixels,
                self.text_finder if self._finds_text else None,
                get_obscurer(self.settings.method, "box"),
                self.settings.faces,
            )
        return self._video

    def variant(self, **changes: Any) -> Pipeline:
        """A pipeline with some settings changed (`Settings.with_`) that shares this one's
        loaded models, e.g. the same detector obscuring with another method."""
        settings = self.settings.with_(**changes)
        twin = Pipeline(settings, self.detector if settings.faces else self._detector)
        twin._threads = self._threads
        twin._verifier = self.verifier if settings.verify else self._verifier
        # The holder, not the encoder: one that neither has loaded yet loads once for both.
        twin._speaker = self._speaker
        same_text = (settings.plates, settings.text, settings.preset) == (
            self.settings.plates, self.settings.text, self.settings.preset,
        )  # fmt: skip
        twin._text = self._text if same_text else None
        return twin

    # -- in memory -------------------------------------------------------------------------
    def clean_array(self, pixels: Pixels) -> Cleaned:
        """Detect and obscure faces in an RGB(A) or grey uint8 array; returns a new array."""
        [cleaned] = self.clean_frames([pixels])
        if not len(cleaned.faces) and not len(cleaned.text_regions):
            cleaned.pixels = pixels.copy()  # a new array even when nothing changed
        return cleaned

    def clean_frames(
        self,
        frames: list[Pixels],
        found: list[Faces] | None = None,
        text: list[Marks] | None = None,
    ) -> list[Cleaned]:
        """`clean_array` for each frame of an image; in an animation, faces are also tracked
        through the frames, so a face the detector misses in one frame stays obscured.
        ``found``, ``text``: the faces, plates and text of each frame when already found."""
        if found is None:
            found = self.detect_frames(frames)
        if text is None:
            text = self.find_text(frames)
        return self._obscure_text(self._obscure_faces(frames, found), text)

    def find_text(self, frames: list[Pixels]) -> list[Marks] | None:
        """The plates and text of each frame that the settings ask for; None when neither."""
        if not self._finds_text:
            return None
        return [self.text_finder.find(frame) for frame in frames]

    def _obscure_text(self, cleaned: list[Cleaned], text: list[Marks] | None) -> list[Cleaned]:
        """Plates and text obscured over the whole box (a word's first and last letters sit
        in the corners an ellipse would leave), by the faces' method."""
        if text is None:
            return cleaned
        box = get_obscurer(self.settings.method, "box")
        for each, marks in zip(cleaned, text, strict=True):
            each.text = marks
            each.text_regions = marks.regions(each.pixels.shape[1], each.pixels.shape[0])
            if len(marks):
                each.pixels = box.apply(each.pixels, marks.areas())
        return cleaned

    def _obscure_faces(self, frames: list[Pixels], found: list[Faces]) -> list[Cleaned]:
        if not self.settings.faces or len(frames) < 2:
            return [self._obscure(f, faces) for f, faces in zip(frames, found, strict=True)]
        tracker, cuts = Tracker(self.settings.hold), SceneCuts()
        for index, frame in enumerate(frames):
            tracker.update(index, found[index], cuts.is_cut(rgb_view(frame)))
        cleaned = []
        for index, (frame, faces) in enumerate(zip(frames, found, strict=True)):
            every = tracker.covered(index, faces)
            regions = every.regions(width=frame.shape[1], height=frame.shape[0])
            cleaned.append(Cleaned(self.obscurer.apply(frame, every.areas()), every, regions))
        return cleaned

    def detect_frames(self, frames: list[Pixels]) -> list[Faces]:
        """The faces of each frame; none when faces are off."""
        if not self.settings.faces:
            return [Faces.empty() for _ in frames]
        return [self.detector.detect(rgb_view(frame)) for frame in frames]

    def _obscure(self, frame: Pixels, faces: Faces) -> Cleaned:
        """``frame`` with ``faces`` obscured; with none, a read-only view of ``frame`` (a
        copy of a 200 MP picture is 600 MB that nothing needs)."""
        regions = faces.regions(width=frame.shape[1], height=frame.shape[0])
        if len(faces):
            return Cleaned(self.obscurer.apply(frame, faces.areas()), faces, regions)
        unchanged = frame.view()
        unchanged.flags.writeable = False
        return Cleaned(unchanged, faces, regions)

    def edit(self, opened: Opened, edits: Edits) -> list[Cleaned]:
        """`clean_frames` with a person's corrections: the faces in ``edits.keep`` and the
        plates and text in ``edits.keep_marks`` are left visible and each ``edits.add`` box is
        obscured too. Edits apply to still photos only (in an animation every face is tracked
        through the frames)."""
        if not edits:
            return self.clean_frames(opened.decoded.frames, opened.found, opened.text)
        if len(opened.decoded.frames) != 1:
            raise UsageError("faces can be kept or added in still photos only")
        frame, faces = opened.decoded.frames[0], opened.found[0]
        height, width = frame.shape[:2]
        if any(not 0 <= i < len(faces) for i in edits.keep):
            raise UsageError(f"a kept face is not one of the {len(faces)} faces found")
        added = np.array(edits.add, np.int64).reshape(-1, 4)
        added[:, 0::2] = added[:, 0::2].clip(0, width)
        added[:, 1::2] = added[:, 1::2].clip(0, height)
        if np.any((added[:, 2] <= added[:, 0]) | (added[:, 3] <= added[:, 1])):
            raise UsageError("an added area is empty or outside the picture")
        kept = np.isin(np.arange(len(faces)), sorted(edits.keep))
        cleaned = self._obscure(frame, faces[~kept])
        box = get_obscurer(self.settings.method, "box")
        cleaned.pixels = box.apply(cleaned.pixels, added.astype(np.int32))
        cleaned.shown = faces[kept]
        text = opened.text
        if edits.keep_marks:
            marks = text[0] if text else None
            count = len(marks) if marks is not None else 0
            if marks is None or any(not 0 <= i < count for i in edits.keep_marks):
                raise UsageError(f"a kept plate or text is not one of the {count} found")
            text = [marks.without(edits.keep_marks)]
        return self._obscure_text([cleaned], text)

    # -- files -----------------------------------------------------------------------------
    def open(
        self, src: Path, found: list[Faces] | None = None, text: list[Marks] | None = None
    ) -> Opened:
        """Decode an image (not a video) and find its faces, for `edit` and `write`.
        ``found``, ``text``: the faces, plates and text of each frame from an earlier `open`
        of the same file (decoded again, not searched again: the numbers a person's edits use
        stay the same)."""
        handler = handler_for(src)
        if isinstance(handler, VideoHandler):
            raise UsageError("a video is cleaned as a stream (clean_file), not opened whole")
        if isinstance(handler, SvgHandler):
            raise UsageError("an SVG is cleaned as a document (clean_file), not opened")
        return self._open(src, handler, _read(src), found, text)

    def look(self, src: Path) -> Look:
        """What a reviewer sees of ``src`` before cleaning it; raises `VeilError`."""
        handler = handler_for(src)
        if isinstance(handler, VideoHandler):
            report = ScanReport(path=str(src))
            self._scan_video(handler, src, report)  # a recording: its tags, no picture read
            # The page offers to hear the new voice where there is speech.
            speech, note = _speech(src)
            if handler.sound:
                return Look(
                    "recording", handler.name, 0, None, [], report.metadata, None, None,
                    speech, note,
                )  # fmt: skip
            still = self.video.still(handler, src)
            faces: list[FaceRecord] = list(report.faces)
            marks: list[tuple[Literal["plate", "text"], TextRecord]] = [
                *(("plate", r) for r in report.plates or []),
                *(("text", r) for r in report.text or []),
            ]
            return Look(
                "video", handler.name, report.frames, still, faces, report.metadata,
                report.sampled_frames, None, speech, note, marks,
            )  # fmt: skip
        if isinstance(handler, SvgHandler):
            return self._look_drawing(handler, src)
        opened = self._open(src, handler, _read(src))
        decoded, found = opened.decoded, opened.found[0]
        first = opened.text[0] if opened.text else None
        return Look(
            "animation" if len(decoded.frames) > 1 else "photo",
            decoded.format,
            len(decoded.frames),
            decoded.frames[0],
            found.records(found.regions(decoded.width, decoded.height)),
            decoded.metadata,
            None,
            opened,
            marks=first.listed(first.regions(decoded.width, decoded.height)) if first else [],
        )

    def still(self, src: Path) -> Pixels:
        """A frame of ``src`` to show, as `Look.still` (e.g. of a cleaned output)."""
        handler = handler_for(src)
        if isinstance(handler, VideoHandler):
            return self.video.still(handler, src)
        if isinstance(handler, SvgHandler):
            return self._drawn(handler.parse(_read(src)))
        return handler.decode(_read(src), self.settings.max_pixels).frames[0]

    def open_bytes(self, data: bytes, ext: str, name: str) -> Opened:
        """`open` for an image in memory (a dataset record) of the kind ``ext`` names."""
        handler = handler_for_bytes(data, ext)
        if isinstance(handler, VideoHandler):
            raise UnsupportedFormat(f"{handler.name} video: only images are cleaned in memory")
        if isinstance(handler, SvgHandler):
            raise UsageError("an SVG is cleaned as a document (clean_bytes), not opened")
        return self._open(Path(name), handler, data)

    def _open(
        self,
        source: Path,
        handler: FormatHandler,
        data: bytes,
        found: list[Faces] | None = None,
        text: list[Marks] | None = None,
    ) -> Opened:
        decoded = handler.decode(data, self.settings.max_pixels)
        if found is None:
            found = self.detect_frames(decoded.frames)
        if text is None:
            text = self.find_text(decoded.frames)
        return Opened(source, handler, decoded, found, text)

    def clean_bytes(self, data: bytes, ext: str, name: str = "record") -> Encoded:
        """Clean an image in memory: `open_bytes`, obscure, `encode`; raises `VeilError`.
        An SVG (a dataset's member) is cleaned as a document, as `clean_file` does."""
        if isinstance(handler := handler_for_bytes(data, ext), SvgHandler):
            return self._clean_drawing(handler, data, name)
        opened = self.open_bytes(data, ext, name)
        return self.encode(
            opened, self.clean_frames(opened.decoded.frames, opened.found, opened.text)
        )

    def clean_file(self, src: Path, dst: Path) -> Result:
        """Clean one file into ``dst`` atomically; on failure raise `VeilError`, write nothing."""
        handler = handler_for(src)
        if isinstance(handler, VideoHandler):
            result = self._clean_video(handler, src, dst)
        elif isinstance(handler, SvgHandler):
            encoded = self._clean_drawing(handler, _read(src), str(src))
            result = self._written(src, dst, encoded)
        else:
            opened = self.open(src)
            cleaned = self.clean_frames(opened.decoded.frames, opened.found, opened.text)
            result = self.write(opened, cleaned, dst)
        return replace(result, content=disagreement(src, handler))

    def encode(self, opened: Opened, cleaned: list[Cleaned]) -> Encoded:
        """Encode cleaned frames in the input's format and check them (and verify them with
        ``verify``); raises `VeilError` when the output must not be written."""
        handler, decoded = opened.handler, opened.decoded
        data = handler.encode(decoded, [c.pixels for c in cleaned])
        handler.reread(data, decoded)
        verification = None
        if self.settings.verify:
            shown = Faces.merge([c.shown for c in cleaned])
            # The plates and text obscured, not all found: those kept visible are no leak.
            text = [c.text for c in cleaned if c.text is not None] or None
            verification = self._check(
                handler, decoded, [c.faces for c in cleaned], data, shown, text
            )
            if verification.verdict == "leak" and not self.settings.allow_leaks:
                raise LeakFound(verification)
        return Encoded(
            data,
            data == decoded.source,
            [record for c in cleaned for record in c.records()],
            sorted({f.name for f in decoded.metadata}),
            verification,
            [record for c in cleaned for record in c.text_records("plate")],
            [record for c in cleaned for record in c.text_records("text")],
        )

    def write(self, opened: Opened, cleaned: list[Cleaned], dst: Path) -> Result:
        """`encode`, then write ``dst`` atomically; on failure raise `VeilError`, write nothing."""
        return self._written(opened.source, dst, self.encode(opened, cleaned))

    @staticmethod
    def _written(source: Path, dst: Path, encoded: Encoded) -> Result:
        """Write ``encoded`` to ``dst`` atomically; its report row."""
        try:
            atomic_write(dst, encoded.data)
        except OSError as exc:
            raise WriteFailed(f"cannot write {dst}: {exc.strerror or exc}") from exc
        return Result(
            input=str(source),
            output=str(dst),
            status="unchanged" if encoded.unchanged else "cleaned",
            faces=encoded.faces,
            metadata_removed=encoded.metadata_removed,
            verification=encoded.verification,
            plates=encoded.plates,
            text=encoded.text,
        )

    def _check(
        self,
        handler: FormatHandler,
        original: Decoded,
        found: list[Faces],
        data: bytes,
        shown: Faces | None = None,
        text: list[Marks] | None = None,
    ) -> Verification:
        """Verify an encoded output against the decoded original, from the output's bytes."""
        output = handler.decode(data, self.settings.max_pixels)
        if (output.width, output.height, len(output.frames)) != (
            original.width,
            original.height,
            len(original.frames),
        ):
            raise VerificationFailed(
                f"the output ({output.width}x{output.height}, {len(output.frames)} frames) is "
                f"not the same picture as the original ({original.width}x{original.height}, "
                f"{len(original.frames)} frames)"
            )
        faces = self.verifier.check(original.frames, output.frames, found, output.metadata, shown)
        leaks = [
            leak
            for index, (frame, marks) in enumerate(zip(output.frames, text or [], strict=False))
            for leak in self._text_leaks(index, marks, frame)
        ]
        return _with_leaks(faces, leaks)

    def _text_leaks(self, index: int, marks: Marks, output: Pixels) -> list[Leak]:
        """An OCR pass over frame ``index`` of an output where ``marks`` (plates, text) were
        obscured: four letters of a plate, or a word of three, still legible there is a leak.
        What it reads is not reported (the report would carry it); only where and how much."""
        if not len(marks):
            return []
        regions = marks.regions(output.shape[1], output.shape[0])
        return [
            Leak(
                marks.kinds[r],
                f"{sum(c.isalnum() for c in reading)} characters still legible",
                index,
                [int(v) for v in regions[r]],
            )
            for r, reading in self.text_finder.still_legible(output, regions, marks.kinds)
        ]

    def verify_file(self, original: Path, output: Path) -> Checked:
        """`veil verify` for one pair: find the faces in the original as `clean` would, then
        check the output independently. Never raises `VeilError`; reads only."""
        if not output.exists():
            return Checked(str(original), str(output), "skipped", "no output to verify")
        try:
            handler = handler_for(original)
            if handler_for(output) is not handler:
                raise VerificationFailed(f"the output is not a {handler.name} file")
            if isinstance(handler, VideoHandler):
                faces = None if handler.sound else self._check_video(handler, original, output)
                if has_sound(original):
                    faces = self._check_voices(faces, original, output)
                if faces is None:
                    raise UnsupportedFormat(f"{handler.name} file without sound: nothing to check")
                return Checked(str(original), str(output), faces.verdict, None, faces)
            if isinstance(handler, SvgHandler):
                verification = self._verify_drawing(handler, _read(original), _read(output))
                return Checked(str(original), str(output), verification.verdict, None, verification)
            decoded = handler.decode(_read(original), self.settings.max_pixels)
            found, text = self.detect_frames(decoded.frames), self.find_text(decoded.frames)
            verification = self._check(handler, decoded, found, _read(output), None, text)
        except UnsupportedFormat as exc:
            return Checked(str(original), str(output), "skipped", str(exc))
        except VeilError as exc:
            return Checked(str(original), str(output), "failed", reported(exc))
        return Checked(str(original), str(output), verification.verdict, None, verification)

    def _clean_video(self, handler: VideoHandler, src: Path, dst: Path) -> Result:
        """A video or a recording, on disk (they can be larger than memory): faces obscured
        frame by frame and re-encoded, or with ``faces`` off (or no picture), its streams
        copied without the metadata; speech in its sound given a new voice."""
        from .voice.track import NewVoices

        verification = None
        sound, voice = NewVoices.prepare(src, handler.name, self.settings.voice == "anonymize")
        try:
            with atomic_output(dst) as tmp:
                plates: list[TextRecord] = []
                text: list[TextRecord] = []
                # A recording, or a video file that holds sound only (a voice memo saved as
                # .mp4): nothing to look at, so its streams are copied.
                searched = self.settings.faces or self._finds_text
                if not searched or handler.sound or holds_picture(src, handler.name) is False:
                    removed, faces = handler.fields(src), []
                    handler.reread(tmp, handler.clean(src, tmp, sound))
                else:
                    written = self.video.clean(handler, src, tmp, self.frame_progress, sound)
                    self.video.reread(handler, tmp, written)
                    removed, faces = written.removed, written.faces
                    plates, text = written.plates, written.text
                    if self.settings.verify:
                        verification = self._check_video(handler, src, tmp)
                if self.settings.verify and sound is not None:
                    verification = self._check_voices(verification, src, tmp)
                if (
                    verification is not None
                    and verification.verdict == "leak"
                    and not self.settings.allow_leaks
                ):
                    raise LeakFound(verification)
        except OSError as exc:
            raise WriteFailed(f"cannot write {dst}: {exc.strerror or exc}") from exc
        return Result(
            input=str(src),
            output=str(dst),
            status="cleaned",
            faces=faces,
            metadata_removed=sorted({f.name for f in removed}),
            verification=verification,
            voice=voice,
            plates=plates,
            text=text,
        )

    def _check_voices(
        self, faces: Verification | None, original: Path, output: Path
    ) -> Verification:
        """``faces``' verdict (None for a recording) with the voice check added: a stretch of
        the output's speech that still sounds like the original's speaker is a leak; a voice
        that could not be judged leaves the verdict at best ``unconfirmed``."""
        from .verify.voices import THRESHOLD, check_voice_files

        leaks: list[Leak] = []
        judged = False
        try:
            check = check_voice_files(original, output, self._speaker.get())
            leaks, note, judged = check.leaks, check.unjudged_note, check.unjudged_note is None
            if note is None:
                note = f"{check.pieces_checked} stretches of speech compared: " + (
                    f"most alike {check.best_score:.2f} (a leak from {THRESHOLD:.2f})"
                    if check.best_score is not None
                    else "no speech left in the output"
                )
        except VeilError as exc:
            note = f"unjudged: {exc}"
        base = faces or Verification("protected")
        verdict: Verdict = base.verdict
        if base.leaks or leaks:
            verdict = "leak"
        elif not judged:
            verdict = "unconfirmed"
        return replace(base, verdict=verdict, leaks=[*base.leaks, *leaks], voices=note)

    def _check_video(self, handler: VideoHandler, original: Path, output: Path) -> Verification:
        """`Verifier.check` on evenly spaced frames of a video and its cleaned output."""
        text: list[Leak] = []

        def frames() -> Iterator[tuple[int, Pixels, Pixels, Faces]]:
            for number, before, after, faces in self.video.pairs(handler, original, output):
                if self._finds_text:  # where the original has plates or text, at full size
                    text.extend(self._text_leaks(number, self.text_finder.find(before), after))
                yield number, before, after, faces

        return _with_leaks(self.verifier.check_frames(frames(), handler.fields(output)), text)

    def run(self, src: Path, dst: Path) -> Result:
        """`clean_file` for the doors: every `VeilError` becomes a skipped or failed row."""
        try:
            return self.clean_file(src, dst)
        except UnsupportedFormat as exc:
            return Result(input=str(src), output=None, status="skipped", error=str(exc))
        except Exception as exc:  # fail closed and alone: one file never ends a batch
            stop_if_told()
            leak = exc.verification if isinstance(exc, LeakFound) else None
            return Result(str(src), None, "failed", error=reported(exc), verification=leak)

    def scan(self, src: Path) -> ScanReport:
        """Faces and identifying metadata of one file; reads only. Never raises `VeilError`:
        the report's ``error`` says why a file could not be read."""
        try:
            return self.inspect(src)
        except Exception as exc:  # one file's surprise never ends a scan of many
            return ScanReport(path=str(src), error=reported(exc))

    def inspect(self, src: Path) -> ScanReport:
        """`scan` that raises `VeilError` when the file cannot be read."""
        report = ScanReport(path=str(src))
        handler = handler_for(src)
        if isinstance(handler, VideoHandler):
            self._scan_video(handler, src, report)
            # Here, not in _scan_video, which `look` shares: decoding a whole sound track is
            # not free, and `look` asks for it on its own.
            report.speech, report.speech_note = _speech(src)
        elif isinstance(handler, SvgHandler):
            self._scan_drawing(handler.parse(_read(src)), report)
        else:
            self._scan_image(handler, src, report)
        return report

    def _scan_image(self, handler: FormatHandler, src: Path, report: ScanReport) -> None:
        decoded = handler.decode(_read(src), self.settings.max_pixels)
        report.format, report.frames = decoded.format, len(decoded.frames)
        report.width, report.height = decoded.width, decoded.height
        report.metadata = decoded.metadata
        for frame, faces in zip(decoded.frames, self.detect_frames(decoded.frames), strict=True):
            report.faces += judge(frame, faces, faces.regions(decoded.width, decoded.height))
        text = self.find_text(decoded.frames)
        if text is not None:
            regions = [m.regions(decoded.width, decoded.height) for m in text]

            def records(kind: Literal["plate", "text"]) -> list[TextRecord]:
                pairs = zip(text, regions, strict=True)
                return [r for marks, where in pairs for r in marks.records(where, kind)]

            report.plates = records("plate") if self.settings.plates else None
            report.text = records("text") if self.settings.text else None
        if report.faces or report.plates or report.text:
            report.refused = handler.cannot_obscure(decoded)

    def _scan_video(self, handler: VideoHandler, src: Path, report: ScanReport) -> None:
        probe = handler.probe(src)
        report.format, report.frames = handler.name, probe.frames
        report.width, report.height = probe.width, probe.height
        report.metadata = probe.fields
        if (self.settings.faces or self._finds_text) and not handler.sound:
            report.faces, report.sampled_frames, marks = self.video.scan(handler, src)
            report.plates, report.text = marks.get("plate"), marks.get("text")

    # -- drawings (SVG) --------------------------------------------------------------------
    def _clean_drawing(self, handler: SvgHandler, data: bytes, name: str) -> Encoded:
        """An SVG in memory: rebuilt by the allowlist (`veil.formats.svg`), each embedded
        picture cleaned as an image at its own resolution (its faces obscured, its metadata
        stripped, verified with ``verify``) and put back with its MIME type; refused when a
        face is drawn in its vectors. Raises `VeilError`; one picture that cannot be cleaned
        stops the whole drawing (fail closed)."""
        drawing = handler.parse(data)
        if self.settings.faces:
            drawn = self._drawn_faces(drawing)
            if len(drawn):
                raise UnsupportedFormat(_drawn_face_reason(drawn))
        faces: list[FaceRecord] = []
        plates: list[TextRecord] = []
        text: list[TextRecord] = []
        removed = {f.name for f in drawing.findings}
        cleaned: list[bytes] = []
        checks: list[tuple[int, Verification]] = []
        for number, raster in enumerate(drawing.rasters, 1):
            encoded = self._clean_picture(raster, number, name)
            cleaned.append(encoded.data)
            faces += [replace(f, image=number) for f in encoded.faces]
            plates += [replace(t, image=number) for t in encoded.plates]
            text += [replace(t, image=number) for t in encoded.text]
            removed |= {f"image{number}:{field}" for field in encoded.metadata_removed}
            if encoded.verification is not None:
                checks.append((number, encoded.verification))
        out = drawing.write(cleaned)
        written = handler.reread(out, drawing)
        verification = None
        if self.settings.verify:
            verification = _with_pictures(self._check_drawing(drawing, written), checks)
            if verification.verdict == "leak" and not self.settings.allow_leaks:
                raise LeakFound(verification)
        return Encoded(out, out == data, faces, sorted(removed), verification, plates, text)

    def _clean_picture(self, raster: Raster, number: int, name: str) -> Encoded:
        """`clean_bytes` for embedded picture ``number``; its errors name it."""
        what = f"embedded picture {number} ({raster.mime})"
        kind = _picture_kind(raster, number)
        try:
            return self.clean_bytes(raster.data, kind, f"{name}#image{number}")
        except LeakFound as exc:
            named = _with_pictures(Verification("protected"), [(number, exc.verification)])
            raise LeakFound(named) from exc
        except VeilError as exc:
            raise type(exc)(f"{what}: {exc}") from exc

    def _drawn(self, drawing: Drawing, drawn_only: bool = False) -> Pixels:
        """``drawing`` rendered at `Drawing.render_size` (``drawn_only``: its vectors alone)."""
        return drawing.render(self.settings.max_pixels, drawn_only=drawn_only)

    def _drawn_faces(self, drawing: Drawing) -> Faces:
        """Faces in the drawing without its pictures: drawn in its vector shapes, where veil
        can obscure nothing (a face in a picture is the picture's to obscure)."""
        return self.detector.detect(rgb_view(self._drawn(drawing, drawn_only=True)))

    def _check_drawing(self, original: Drawing, written: Drawing) -> Verification:
        """The independent check of a written SVG's own part: what a re-read still finds
        (`Drawing.findings`: metadata, links) and, by the second opinion, any face in its
        vectors that is still recognisable against the original's vectors."""
        before = self._drawn(original, drawn_only=True)
        after = self._drawn(written, drawn_only=True)
        if before.shape != after.shape:
            raise VerificationFailed(
                f"the written SVG draws at {after.shape[1]}x{after.shape[0]}, the original at "
                f"{before.shape[1]}x{before.shape[0]}"
            )
        return self.verifier.check([before], [after], [Faces.empty()], written.findings)

    def _verify_drawing(self, handler: SvgHandler, original: bytes, output: bytes) -> Verification:
        """`verify_file` for an SVG: its own part (`_check_drawing`), then each embedded
        picture of the output against the original's, in document order."""
        before, after = handler.parse(original), handler.parse(output)
        if len(before.rasters) != len(after.rasters):
            raise VerificationFailed(
                f"the output holds {len(after.rasters)} embedded pictures, the original "
                f"{len(before.rasters)}"
            )
        checks = []
        for number, (was, now) in enumerate(zip(before.rasters, after.rasters, strict=True), 1):
            picture = handler_for_bytes(was.data, _picture_kind(was, number))
            assert isinstance(picture, FormatHandler)  # `image_kind` names still kinds only
            decoded = picture.decode(was.data, self.settings.max_pixels)
            found, text = self.detect_frames(decoded.frames), self.find_text(decoded.frames)
            checks.append((number, self._check(picture, decoded, found, now.data, None, text)))
        return _with_pictures(self._check_drawing(before, after), checks)

    def _scan_drawing(self, drawing: Drawing, report: ScanReport) -> None:
        """`inspect` for an SVG: what the document reveals, each embedded picture's faces
        (`FaceRecord.image`) and metadata (named ``image1:GPS``), and a face drawn in its
        vectors, which `clean` would refuse (``refused``)."""
        report.format, report.frames = "SVG", 1
        report.width, report.height = round(drawing.width), round(drawing.height)
        report.metadata = list(drawing.findings)
        plates: list[TextRecord] = []
        text: list[TextRecord] = []
        for number, raster in enumerate(drawing.rasters, 1):
            kind = _picture_kind(raster, number)
            picture = self.open_bytes(raster.data, kind, f"{report.path}#image{number}")
            decoded = picture.decoded
            report.metadata += [
                replace(f, name=f"image{number}:{f.name}") for f in decoded.metadata
            ]
            for frame, faces in zip(decoded.frames, picture.found, strict=True):
                where = faces.regions(decoded.width, decoded.height)
                report.faces += [replace(f, image=number) for f in judge(frame, faces, where)]
            for marks in picture.text or []:
                where = marks.regions(decoded.width, decoded.height)
                plates += [replace(r, image=number) for r in marks.records(where, "plate")]
                text += [replace(r, image=number) for r in marks.records(where, "text")]
        report.plates = plates if self.settings.plates else None
        report.text = text if self.settings.text else None
        if self.settings.faces:
            drawn = self._drawn_faces(drawing)
            if len(drawn):
                report.refused = _drawn_face_reason(drawn)

    def _look_drawing(self, handler: SvgHandler, src: Path) -> Look:
        """What the review page shows of an SVG: the drawing as it shows (its own pictures,
        links left out), the faces found on it there, and what it reveals; cleaned whole."""
        report = ScanReport(path=str(src))
        drawing = handler.parse(_read(src))
        self._scan_drawing(drawing, report)
        still = self._drawn(drawing)
        height, width = still.shape[:2]
        faces = self.detect_frames([still])[0]
        return Look(
            "drawing", handler.name, 1, still, faces.records(faces.regions(width, height)),
            report.metadata, None, None,
        )  # fmt: skip


def _with_leaks(verification: Verification, leaks: list[Leak]) -> Verification:
    """``verification`` with ``leaks`` (of plates, text) added: a leak if there are any."""
    if not leaks:
        return verification
    return replace(verification, verdict="leak", leaks=[*verification.leaks, *leaks])


def _with_pictures(
    document: Verification, pictures: list[tuple[int, Verification]]
) -> Verification:
    """An SVG's verdict: its own part's (``document``) with each embedded picture's. A
    picture's leaks keep their boxes, in its own pixels, and say which picture they are in."""
    leaks = list(document.leaks)
    for number, check in pictures:
        leaks += [replace(leak, detail=f"embedded picture {number}: {leak.detail}")
                  for leak in check.leaks]  # fmt: skip
    every = [document, *(check for _, check in pictures)]
    verdict: Verdict = "protected"
    if leaks:
        verdict = "leak"
    elif any(check.verdict != "protected" for check in every):
        verdict = "unconfirmed"
    return Verification(
        verdict,
        leaks,
        sum(check.faces_checked for check in every),
        sum(check.recognizer_runs for check in every),
        sum(check.unjudged for check in every),
    )


def _picture_kind(raster: Raster, number: int) -> str:
    """The kind (".jpg") of an SVG's embedded picture ``number``, by its content, or why veil
    cannot clean it (and so cannot clean the SVG)."""
    kind = image_kind(raster.data)
    if kind is None:
        raise UnsupportedFormat(
            f"embedded picture {number} ({raster.mime}) is not of a kind veil cleans (JPEG, "
            "PNG, WebP, GIF, ...): it cannot be checked for faces"
        )
    return kind


def _drawn_face_reason(faces: Faces) -> str:
    return (
        "a face is drawn in the SVG's vector shapes, which veil cannot obscure: export a PNG "
        f"and clean that ({len(faces)} found in the drawing without its embedded pictures, "
        f"detector score up to {float(faces.scores.max()):.2f})"
    )


def _speech(src: Path) -> tuple[float | None, str | None]:
    """How much of a file's sound is speech, or why that is not known."""
    from .voice.speech import speech_share

    try:
        return speech_share(src), None
    except VeilError as exc:  # the picture and the tags are still worth reporting
        return None, f"not checked: {exc}"


def _read(path: Path) -> bytes:
    try:
        return read_regular(path)
    except OSError as exc:
        raise CorruptInput(f"cannot read file: {exc.strerror or exc}") from exc
