"""What the review page does with an upload, without the web framework: scan it, preview a
person's edits (faces, plates and text kept, areas added) or its speech's new voice, clean
it. The same `Pipeline` as the CLI does the work.

One file is worked on at a time (`Reviewer.lock`): the detector already uses every core, and
a second 12 MP photo decoded beside the first only adds memory. Only a few uploads keep their
pixels in memory (`Held`); the others are decoded again, from their file, when next needed.
"""

from __future__ import annotations

import io
import json
import threading
from dataclasses import replace

import cv2
import numpy as np
from PIL import Image

from ..errors import Conflict, UnknownUpload
from ..fields import CATEGORIES, LABELS, MetaField
from ..pipeline import Cleaned, Edits, Opened, Pipeline
from ..pixels import Pixels, rgb_view
from ..settings import METHODS
from ..voice.preview import Preview, voice_preview
from .shapes import CleanedOut, Face, Mark, Reveal, Scanned
from .uploads import Held, Upload

#: Long side of the pictures the page shows: enough for a laptop screen, and a 12 MP photo
#: shrinks to 1600 px in about 30 ms.
PICTURE_SIDE = 1600


def picture(pixels: Pixels, side: int = PICTURE_SIDE) -> tuple[bytes, float]:
    """A JPEG of ``pixels`` (upright RGB, RGBA or grey) for the browser, long side at most
    ``side``, and the scale from full-size pixels to it."""
    rgb = rgb_view(pixels)
    height, width = rgb.shape[:2]
    scale = min(1.0, side / max(height, width))
    if scale < 1.0:  # OpenCV's area average: 30 ms for 12 MP, a third of Pillow's bilinear
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        rgb = np.asarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), np.uint8)
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "JPEG", quality=85)
    return out.getvalue(), scale


def reveals(fields: list[MetaField]) -> list[Reveal]:
    """What a file's metadata gives away, in the order a person cares about it."""
    order = list(CATEGORIES)
    ranked = sorted(fields, key=lambda f: order.index(f.category) if f.category in order else 99)
    return [
        Reveal(
            category=f.category, label=LABELS.get(f.category, "Other"), name=f.name, value=f.value
        )
        for f in ranked
    ]


class Reviewer:
    """Scans, previews and cleans uploads with one loaded detector (and verifier); ``held``:
    the uploads that keep their pixels in memory."""

    def __init__(self, pipeline: Pipeline, held: Held | None = None) -> None:
        self.pipeline = pipeline
        self.held = held if held is not None else Held()
        self.lock = threading.Lock()
        self._methods: dict[tuple[str, str], Pipeline] = {
            (pipeline.settings.method, pipeline.settings.voice): pipeline
        }

    def _pipe(self, method: str, voice: str | None = None) -> Pipeline:
        """The pipeline for ``method`` and ``voice`` (None: the server's); the same models."""
        key = (method, voice or self.pipeline.settings.voice)
        if key not in self._methods:
            self._methods[key] = self.pipeline.variant(method=key[0], voice=key[1])
        return self._methods[key]

    def warm_up(self) -> None:
        """Load the models now, so the first upload does not wait for them."""
        with self.lock:
            self.pipeline.detector.detect(np.zeros((64, 64, 3), np.uint8))
            self.pipeline.find_text([np.zeros((64, 64, 3), np.uint8)])  # PP-OCR, if asked for
            for method in METHODS:
                self._pipe(method)

    def scan(self, upload: Upload) -> Scanned:
        """Find the faces, plates, text and metadata of a stored upload; keeps what the edits
        need."""
        with self.lock:
            _still_there(upload)
            look = self.pipeline.look(upload.input)
            upload.kind = look.kind
            if look.opened is not None:
                upload.opened, upload.found = look.opened, look.opened.found
                upload.text = look.opened.text
                self.held.add(upload)
            height, width, scale = 0, 0, 1.0
            original = f"/api/uploads/{upload.id}/original"  # a recording plays itself
            if look.still is not None:
                jpeg, scale = picture(look.still)
                upload.picture.write_bytes(jpeg)
                height, width = look.still.shape[:2]
                original += ".jpg"
        return Scanned(
            id=upload.id,
            name=upload.name,
            kind=look.kind,
            editable=upload.editable,
            format=look.format,
            width=int(width),
            height=int(height),
            frames=look.frames,
            faces=[
                Face(index=i, box=r.box, region=r.region, score=r.score)
                for i, r in enumerate(look.faces)
            ],
            marks=[
                Mark(index=i, kind=kind, region=r.region, score=r.score)
                for i, (kind, r) in enumerate(look.marks)
            ],
            plates=self.pipeline.settings.plates,
            text=self.pipeline.settings.text,
            reveals=reveals(look.metadata),
            original=original,
            scale=scale,
            sampled_frames=look.sampled_frames,
            # Sound has a share of speech or a note saying why not; no sound has neither.
            sound=look.speech is not None or look.speech_note is not None,
            speech=look.speech,
            speech_note=look.speech_note,
        )

    def _opened(self, upload: Upload) -> Opened:
        """The upload's pixels, faces, plates and text, decoded again from its file if they
        were dropped (what was found is the scan's, so the numbers the edits use stay the
        same)."""
        if not upload.editable or upload.found is None:
            raise Conflict("only a still photo, once scanned, can be edited")
        if upload.opened is None:
            upload.opened = self.pipeline.open(upload.input, upload.found, upload.text)
        self.held.add(upload)
        return upload.opened

    def _edited(self, upload: Upload, method: str, edits: Edits) -> list[Cleaned]:
        """The upload's frames with ``edits`` applied by ``method``; the same call twice gives
        the same pixels (the preview is what gets written), unless the pixels left memory in
        between (`Held`): then the obscurers' noise is drawn afresh."""
        opened = self._opened(upload)
        key = (method, edits)
        if upload.edited is None or upload.edited[0] != key:
            upload.edited = (key, self._pipe(method).edit(opened, edits))
        return upload.edited[1]

    def preview(self, upload: Upload, method: str, edits: Edits) -> bytes:
        """A JPEG of the photo as it will be written with ``edits``."""
        with self.lock:
            _still_there(upload)
            if not upload.editable:
                raise Conflict(f"a {upload.kind or 'file'} has no preview before it is cleaned")
            return picture(self._edited(upload, method, edits)[0].pixels)[0]

    def clean(
        self, upload: Upload, method: str, edits: Edits, voice: str | None = None
    ) -> CleanedOut:
        """Write the cleaned file into the upload's folder (fail closed: `VeilError` and
        nothing written); the summary the page shows. ``voice``: what is done to speech in a
        video or a recording (None: the server's ``--voice``)."""
        if edits and not upload.editable:
            raise Conflict(
                "faces, plates and text can be kept, and areas added, in still photos only"
            )
        with self.lock:
            _still_there(upload)
            pipe = self._pipe(method, voice)
            output = upload.folder / ("output" + upload.input.suffix)
            upload.output = None
            if upload.editable:  # what the person previewed is what is written
                edited = self._edited(upload, method, edits)
                result = pipe.write(self._opened(upload), edited, output)
            else:
                result = pipe.clean_file(upload.input, output)
            # The report names the file as the person knows it, not its place in the temp folder.
            result = replace(result, input=upload.name, output=upload.name)
            upload.output = output
        verification = result.verification
        return CleanedOut(
            id=upload.id,
            name=upload.name,
            status=result.status,
            verified=verification.verdict if verification else "not checked",
            unjudged=verification.unjudged if verification else 0,
            faces_obscured=len(result.faces),
            kept=len(edits.keep),
            added=len(edits.add),
            plates_obscured=len(result.plates),
            text_obscured=len(result.text),
            marks_kept=len(edits.keep_marks),
            metadata_removed=result.metadata_removed,
            download=f"/api/uploads/{upload.id}/download",
            cleaned=None if upload.recording else f"/api/uploads/{upload.id}/cleaned.jpg",
            result=json.loads(result.to_json()),
        )

    def voice_preview(self, upload: Upload) -> Preview:
        """The upload's first stretch of speech with a new voice, drawn for this preview
        alone (`voice.preview`); nothing of it is written to disk."""
        if upload.kind not in ("video", "recording"):
            what = "an animation" if upload.kind == "animation" else "a photo"
            raise Conflict(f"{what} has no sound, so there is no voice to change")
        with self.lock:
            _still_there(upload)
            return voice_preview(upload.input)

    def cleaned_picture(self, upload: Upload) -> bytes:
        """A JPEG of the cleaned output, read back from the written file."""
        if upload.recording:
            raise Conflict("a recording has no picture")
        if upload.output is None:
            raise Conflict("the upload has not been cleaned yet")
        with self.lock:
            _still_there(upload)
            return picture(self.pipeline.still(upload.output))[0]


def _still_there(upload: Upload) -> None:
    """Work queued for an upload discarded meanwhile is not done (its folder goes when the
    work ends, so what it wrote would only be deleted)."""
    if upload.gone:
        raise UnknownUpload("no such upload: it was removed")
