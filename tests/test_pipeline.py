"""`Pipeline`, the engine every door calls, as a unit: a stand-in detector says where the
faces are, so what is tested is the engine's own work (which frames go where, what a reviewer
sees, how failures read), not detection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clips import make_clip
from helpers import backdrop
from veil.detectors import Strategy
from veil.errors import UsageError
from veil.faces import Faces
from veil.pipeline import Edits, Pipeline
from veil.settings import Settings

BOX = (40.0, 30.0, 80.0, 90.0)


class Pinned:
    """A detector that finds one face at `BOX` in every picture, and counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def detect(self, rgb: np.ndarray, strategy: Strategy | None = None) -> Faces:
        self.calls += 1
        return Faces(np.array([BOX]), np.array([0.9]))


class Broken:
    def detect(self, rgb: np.ndarray, strategy: Strategy | None = None) -> Faces:
        raise RuntimeError("a bug in a detector")


def _photo(path: Path, frames: int = 1) -> Path:
    # Frames differ (a GIF writer merges identical ones into one).
    pictures = [Image.fromarray(backdrop(120, 160) // (i + 1)) for i in range(frames)]
    if frames == 1:
        pictures[0].save(path)
    else:
        pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=100)
    return path


def test_clean_array_obscures_where_the_detector_says_and_nowhere_else() -> None:
    picture = backdrop(120, 160)
    cleaned = Pipeline(Settings(), detector=Pinned()).clean_array(picture)
    changed = np.any(cleaned.pixels != picture, axis=2)
    ys, xs = np.nonzero(changed)
    x1, y1, x2, y2 = cleaned.regions[0]
    assert changed.any() and xs.min() >= x1 and xs.max() < x2 and ys.min() >= y1 and ys.max() < y2
    assert cleaned.pixels is not picture


def test_faces_off_never_loads_or_calls_the_detector(tmp_path: Path) -> None:
    pinned = Pinned()
    pipe = Pipeline(Settings(faces=False), detector=pinned)
    result = pipe.run(_photo(tmp_path / "a.png"), tmp_path / "out.png")
    assert result.status == "unchanged" and pinned.calls == 0


def test_look_at_a_photo_is_editable_with_its_faces(tmp_path: Path) -> None:
    look = Pipeline(Settings(), detector=Pinned()).look(_photo(tmp_path / "a.png"))
    assert look.kind == "photo" and look.format == "PNG" and look.frames == 1
    assert look.opened is not None and look.still.shape[:2] == (120, 160)
    assert [f.box for f in look.faces] == [list(BOX)]


def test_look_at_an_animation_and_a_video(tmp_path: Path) -> None:
    pipe = Pipeline(Settings(), detector=Pinned())
    animation = pipe.look(_photo(tmp_path / "a.gif", frames=3))
    assert (animation.kind, animation.frames) == ("animation", 3)
    make_clip(tmp_path / "clip.mp4", frames=6)
    video = pipe.look(tmp_path / "clip.mp4")
    assert video.kind == "video" and video.opened is None, "a video is streamed, never held"
    assert video.still.shape[:2] == (240, 320) and video.sampled_frames
    assert np.array_equal(pipe.still(tmp_path / "clip.mp4"), video.still)


def test_look_at_a_recording_has_its_tags_and_speech_and_no_picture(tmp_path: Path) -> None:
    """A recording on the review page: its tags and how much of it is speech; no picture is
    looked for (no detector call, no video decoder made)."""
    pytest.importorskip("scipy", reason="the test speech is made with scipy's filters")
    from voice_helpers import tagged_wav

    tagged_wav(tmp_path / "talk.wav")
    pinned = Pinned()
    pipe = Pipeline(Settings(), detector=pinned)
    look = pipe.look(tmp_path / "talk.wav")
    assert (look.kind, look.format, look.frames) == ("recording", "WAV", 0)
    assert look.still is None and look.faces == [] and look.opened is None
    assert ("Artist", "Jane Doe") in [(f.name, f.value) for f in look.metadata]
    assert look.speech is not None and look.speech > 0.5 and look.speech_note is None
    assert pinned.calls == 0 and pipe._video is None


def test_reopening_with_found_faces_does_not_search_again(tmp_path: Path) -> None:
    pinned = Pinned()
    pipe = Pipeline(Settings(), detector=pinned)
    src = _photo(tmp_path / "a.png")
    first = pipe.open(src)
    assert pinned.calls == 1
    again = pipe.open(src, first.found)
    assert pinned.calls == 1 and again.found is first.found
    assert np.array_equal(again.decoded.frames[0], first.decoded.frames[0])


def test_a_video_cannot_be_opened_whole(tmp_path: Path) -> None:
    make_clip(tmp_path / "clip.mp4", frames=3)
    with pytest.raises(UsageError, match="stream"):
        Pipeline(Settings(), detector=Pinned()).open(tmp_path / "clip.mp4")


def test_edits_keep_a_face_and_add_an_area(tmp_path: Path) -> None:
    pipe = Pipeline(Settings(), detector=Pinned())
    opened = pipe.open(_photo(tmp_path / "a.png"))
    original = opened.decoded.frames[0]
    (kept,) = pipe.edit(opened, Edits(keep=frozenset({0}), add=((100, 10, 140, 40),)))
    assert np.array_equal(kept.pixels[30:90, 40:80], original[30:90, 40:80]), "kept visible"
    assert np.all(np.any(kept.pixels[10:40, 100:140] != original[10:40, 100:140], axis=2))
    with pytest.raises(UsageError, match="not one of the 1 faces"):
        pipe.edit(opened, Edits(keep=frozenset({3})))
    with pytest.raises(UsageError, match="empty or outside"):
        pipe.edit(opened, Edits(add=((500, 500, 600, 600),)))


def test_run_turns_every_failure_into_one_row(tmp_path: Path) -> None:
    pipe = Pipeline(Settings(), detector=Pinned())
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    skipped = pipe.run(tmp_path / "notes.txt", tmp_path / "o1.txt")
    failed = pipe.run(tmp_path / "bad.png", tmp_path / "o2.png")
    bug = Pipeline(Settings(), detector=Broken()).run(
        _photo(tmp_path / "a.png"), tmp_path / "o3.png"
    )
    assert (skipped.status, skipped.error) == ("skipped", "unsupported file type .txt")
    assert failed.status == "failed" and failed.error.startswith("CorruptInput: ")
    assert bug.status == "failed" and "This is a bug in veil" in bug.error
    assert not any((tmp_path / f"o{i}.png").exists() for i in (2, 3)), "fail closed"


def test_scan_never_raises_and_says_why(tmp_path: Path) -> None:
    pipe = Pipeline(Settings(), detector=Pinned())
    report = pipe.scan(tmp_path / "missing.jpg")
    assert report.error and report.faces == []
    seen = pipe.scan(_photo(tmp_path / "a.png"))
    assert seen.error is None and len(seen.seen("visible")) == 1


def test_a_variant_shares_the_speaker_model_whichever_loads_it_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The voice check's speaker model loads once for a pipeline and all its variants (the
    review page makes one per method): before or after the variant was made, by either."""
    import veil.verify.speaker
    import veil.verify.voices
    from veil.verify.voices import VoiceCheck

    loads: list[object] = []
    used: list[object] = []

    class Encoder:
        def __init__(self) -> None:
            loads.append(self)

    def check(original: Path, output: Path, encoder: object) -> VoiceCheck:
        used.append(encoder)
        return VoiceCheck([], 1, None, 0.1)

    monkeypatch.setattr(veil.verify.speaker, "SpeakerEncoder", Encoder)
    monkeypatch.setattr(veil.verify.voices, "check_voice_files", check)
    sound = tmp_path / "a.wav"
    for first_is_the_variant in (True, False):
        pipe = Pipeline(Settings(), detector=Pinned())
        twin = pipe.variant(method="pixelate", voice="keep")
        users = [twin, pipe] if first_is_the_variant else [pipe, twin]
        for user in [*users, twin.variant(method="blur")]:
            assert user._check_voices(None, sound, sound).verdict == "protected"
        assert len(loads) == 1 and all(encoder is loads[0] for encoder in used), used
        loads.clear()
        used.clear()
