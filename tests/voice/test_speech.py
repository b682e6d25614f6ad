"""`veil scan` says when a video's sound holds speech: a voice names its speaker as a face
does, and clean would give it a new voice (issue 18)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from helpers import backdrop
from veil.cli import format_scan
from veil.pipeline import Pipeline
from veil.settings import Settings
from voice_helpers import RATE, syllables

pytest.importorskip("scipy", reason="the test vowels are made with scipy's filters")


def _clip(path: Path, *sounds: np.ndarray | None) -> Path:
    """Two seconds of a faceless picture, with each of ``sounds`` (16 kHz mono) as an AAC
    track of its own (None: no sound)."""
    tracks = [s for s in sounds if s is not None]
    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = 96, 64, "yuv420p"
        audio = [out.add_stream("aac", rate=RATE) for _ in tracks]
        for stream in audio:
            stream.layout = "mono"
        for i in range(20):
            frame = av.VideoFrame.from_ndarray(backdrop(64, 96), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode())
        for stream, sound in zip(audio, tracks, strict=True):
            size = stream.codec_context.frame_size or 1024
            for start in range(0, len(sound) - size + 1, size):
                chunk = av.AudioFrame.from_ndarray(
                    sound[None, start : start + size].astype(np.float32),
                    format="fltp",
                    layout="mono",
                )
                chunk.sample_rate, chunk.pts = RATE, start
                out.mux(stream.encode(chunk))
            out.mux(stream.encode())
    return path


def test_speech_in_a_video_is_found_and_said(tmp_path: Path) -> None:
    clip = _clip(tmp_path / "talk.mp4", syllables(2.0))
    report = Pipeline(Settings(faces=False)).scan(clip)
    assert report.error is None and report.speech is not None and report.speech > 0.6
    assert "speech in" in format_scan(report) and "new voice" in format_scan(report)


def test_speech_on_a_second_sound_track_is_found(tmp_path: Path) -> None:
    """A quiet first track and speech on the second (a commentary): scan reports the speech,
    as clean, which gives every track's speech a new voice, does."""
    clip = _clip(tmp_path / "two.mp4", np.zeros(2 * RATE, np.float32), syllables(2.0))
    report = Pipeline(Settings(faces=False)).scan(clip)
    assert report.error is None and report.speech is not None and report.speech > 0.6


def test_silence_a_steady_chord_and_no_sound_say_nothing_of_voices(tmp_path: Path) -> None:
    """webrtcvad alone takes a steady chord for speech: its loudness does not swing."""
    pipe = Pipeline(Settings(faces=False))
    t = np.arange(2 * RATE) / RATE
    chord = (0.1 * (np.sin(2 * np.pi * 440 * t) + np.sin(2 * np.pi * 554 * t))).astype(np.float32)
    quiet = pipe.scan(_clip(tmp_path / "quiet.mp4", np.zeros(2 * RATE, np.float32)))
    music = pipe.scan(_clip(tmp_path / "chord.mp4", chord))
    mute = pipe.scan(_clip(tmp_path / "mute.mp4", None))
    assert quiet.speech == 0.0 and music.speech == 0.0
    assert mute.speech is None and mute.speech_note is None
    assert not any("voices" in format_scan(r) for r in (quiet, music, mute))
