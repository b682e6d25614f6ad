"""A few seconds of a file's speech given a new voice, to hear before cleaning (``veil serve``).

The preview is made as cleaning makes it (`voice.track`): the sound mixed to mono at 16 kHz,
the rate the anonymiser is tuned at, a pseudo-speaker drawn from fresh entropy. It is drawn
for this preview alone and never stored, so the cleaned file, which draws its own, sounds
like another new speaker. Only the first minute is decoded: the preview is for a person
deciding, not a second cleaning, and a long recording must not make them wait.
"""

from __future__ import annotations

import io
import wave as wav
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UsageError
from .anonymize import SPEECH_MARGIN_S, Voice, anonymize_speech
from .sound import Wave, has_sound, read_mono
from .speech import VAD_RATE, WINDOW, speech_found
from .track import MIN_SPEECH_S

#: The preview's longest length, and how far into the sound its speech is looked for.
PREVIEW_S, SEARCH_S = 12.0, 60.0


@dataclass(frozen=True)
class Preview:
    """A stretch of speech given a new voice: 16 kHz mono 16-bit WAV bytes, and where the
    stretch starts in the file and how long it is, in seconds."""

    wav: bytes
    start: float
    seconds: float


def voice_preview(path: Path) -> Preview:
    """The first stretch of speech in ``path``'s sound (at most `PREVIEW_S` from the first
    `SEARCH_S`) given a new voice; raises `UsageError` when there is no sound or no speech
    there, `CorruptInput` when the sound cannot be decoded."""
    if not has_sound(path):
        raise UsageError("this file has no sound, so there is no voice to change")
    sound = read_mono(path, VAD_RATE, seconds=SEARCH_S)
    start = first_speech(sound)
    if start is None:
        raise UsageError(
            f"no speech found in the first {SEARCH_S:.0f} seconds, so there is no voice to preview"
        )
    piece = sound[start : start + round(PREVIEW_S * VAD_RATE)]
    voice = Voice.draw(np.random.default_rng())  # fresh entropy, for this preview alone
    changed, _ = anonymize_speech(piece, VAD_RATE, voice)
    return Preview(to_wav(changed, VAD_RATE), start / VAD_RATE, len(piece) / VAD_RATE)


def first_speech(sound: Wave) -> int | None:
    """The sample (16 kHz) `SPEECH_MARGIN_S` before the first 30 ms window of speech followed
    by at least `MIN_SPEECH_S` of speech within a second; None when there is none. The floor
    is the one a whole file needs to count as speech (`voice.track`), so a cough or a door is
    not taken for where people start to speak; the margin is the one cleaning widens by."""
    found = speech_found(sound)
    per_second = round(VAD_RATE / WINDOW)
    needed = int(np.ceil(MIN_SPEECH_S * VAD_RATE / WINDOW))
    # Speech windows in the second from each window on: a running sum over a second.
    ahead = np.convolve(found.astype(np.int32), np.ones(per_second, np.int32))[per_second - 1 :]
    starts = np.flatnonzero(found & (ahead >= needed))
    if not len(starts):
        return None
    return max(0, int(starts[0]) * WINDOW - round(SPEECH_MARGIN_S * VAD_RATE))


def to_wav(sound: Wave, rate: int) -> bytes:
    """``sound`` (mono float in [-1, 1]) as a 16-bit PCM WAV file, in memory."""
    pcm = np.round(np.clip(sound, -1.0, 1.0) * 32767).astype("<i2")
    out = io.BytesIO()
    with wav.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(pcm.tobytes())
    return out.getvalue()
