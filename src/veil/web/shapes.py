"""What the review API takes and gives, declared once: the reviewer builds these, the app
serves them, and OpenAPI describes them from here (pydantic models; no web framework)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from ..obscurers import OBSCURERS
from ..pipeline import Edits

if TYPE_CHECKING:
    MethodName = str
else:
    # A Literal built from the registry, so that pydantic refuses an unknown method in the same
    # words as before and OpenAPI lists the names, with no second list of them to keep.
    MethodName = Literal[tuple(OBSCURERS)]


class Config(BaseModel):
    version: str
    methods: list[str] = Field(description="every obscuring method, in the order to offer them")
    labels: dict[str, str] = Field(description="what the page calls each method")
    method: str
    voice: Literal["anonymize", "keep"] = Field(
        description="what cleaning does to speech in videos and recordings unless a clean "
        "asks otherwise"
    )
    verify: bool = Field(description="outputs are independently checked before download")
    max_upload_bytes: int
    extensions: list[str]


class Face(BaseModel):
    index: int
    box: list[float] = Field(description="x1, y1, x2, y2 in full-size displayed pixels")
    region: list[int] = Field(description="the area that is obscured (the box, grown)")
    score: float


class Mark(BaseModel):
    """A licence plate or a piece of other text (``--plates on``, ``--text on``)."""

    index: int = Field(description="its number in `keep_marks` (a photo's marks only)")
    kind: Literal["plate", "text"]
    region: list[int] = Field(
        description="the area that is obscured, a whole box: x1, y1, x2, y2 in full-size "
        "displayed pixels (the text's box, grown)"
    )
    score: float


class Reveal(BaseModel):
    category: str
    label: str
    name: str = Field(description="stable tag name, as in the report")
    value: str = Field(description="what it says, in plain words")


class Scanned(BaseModel):
    id: str
    name: str
    kind: Literal["photo", "animation", "video", "recording", "drawing"]
    editable: bool = Field(description="faces can be kept and areas added (still photos)")
    format: str
    width: int = Field(description="full-size pixels; 0 for a recording")
    height: int
    frames: int
    faces: list[Face]
    marks: list[Mark] = Field(
        description="plates and text found: a photo's, numbered as `keep_marks` counts them; "
        "a video's, those of its sampled frames"
    )
    # The server's settings, in each answer: the page says what was not looked for, and why.
    plates: bool = Field(description="licence plates were looked for (`--plates on`)")
    text: bool = Field(description="other text was looked for (`--text on`)")
    reveals: list[Reveal]
    original: str = Field(
        description="URL of a JPEG of the original as displayed; a recording: of the "
        "recording itself, to play"
    )
    scale: float = Field(description="pixels of that JPEG per full-size pixel")
    sampled_frames: int | None = Field(description="videos: frames searched for faces")
    sound: bool = Field(description="the file holds sound (videos and recordings)")
    speech: float | None = Field(
        description="share of the sound taken for speech, 0-1; None: no sound, or not "
        "checked (`speech_note` says why)"
    )
    speech_note: str | None = None


class EditsIn(BaseModel):
    id: str
    method: MethodName = "fill"
    voice: Literal["anonymize", "keep"] | None = Field(
        default=None,
        description="speech in a video or a recording: a new voice, or kept as it is; None: "
        "the server's",
    )
    keep: list[int] = Field(default=[], description="indices of faces to leave visible")
    add: list[tuple[int, int, int, int]] = Field(
        default=[], description="areas to obscure as well: x1, y1, x2, y2, full-size pixels"
    )
    keep_marks: list[int] = Field(
        default=[], description="indices of plates and text (`marks`) to leave visible"
    )

    def edits(self) -> Edits:
        return Edits(frozenset(self.keep), tuple(self.add), frozenset(self.keep_marks))


class CleanedOut(BaseModel):
    id: str
    name: str
    status: str
    verified: Literal["protected", "unconfirmed", "leak", "not checked"] = Field(
        description="the independent check's verdict; unconfirmed: nothing found, but "
        "`unjudged` faces were too small or too turned away for the check to see"
    )
    unjudged: int = Field(description="hidden faces beyond the check's reach (0: none)")
    faces_obscured: int
    kept: int = Field(description="faces left visible")
    added: int
    plates_obscured: int = Field(description="licence plates obscured (a video: tracked plates)")
    text_obscured: int = Field(description="pieces of other text obscured")
    marks_kept: int = Field(description="plates and text left visible (`keep_marks`)")
    metadata_removed: list[str]
    download: str
    cleaned: str | None = Field(description="URL of a JPEG of the output; None: a recording")
    result: dict[str, Any] = Field(description="the report row, as `veil clean --report`")


class VoicePreviewIn(BaseModel):
    """Which upload's speech to hear with a new voice (`/api/voice-preview`)."""

    id: str


class Ids(BaseModel):
    ids: list[str] = Field(min_length=1, max_length=1000)


class Discard(BaseModel):
    id: str


class ErrorOut(BaseModel):
    error: str
    type: str
