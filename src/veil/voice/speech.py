"""Where people speak: webrtcvad's verdict on each 30 ms of 16 kHz sound, and how much of a
file's sound is speech."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from ..errors import CorruptInput
from .sound import Wave, read_mono

VAD_RATE = 16_000
WINDOW = 480  # 30 ms at 16 kHz, one of the three lengths webrtcvad takes
#: Loudness of speech swings with its syllables: the spread of 30 ms levels over a second.
_SWING_S, _SWING_DB = 1.0, 3.0


def speech_share(path: Path) -> float | None:
    """The share of a file's sound that is speech (`share_of_speech`), the most of any of its
    sound tracks, as `clean` reports it (a commentary track counts as much as the first); None
    when the file has no sound. Raises `CorruptInput` when its sound cannot be decoded."""
    try:
        with av.open(str(path)) as container:
            tracks = len(container.streams.audio)
    except (av.FFmpegError, OSError) as exc:
        raise CorruptInput(f"cannot read the sound of {path.name}: {exc}") from exc
    if not tracks:
        return None
    return max(share_of_speech(read_mono(path, VAD_RATE, track=i)) for i in range(tracks))


def share_of_speech(wave: Wave) -> float:
    """The share of 30 ms windows of ``wave`` (16 kHz mono) that webrtcvad (mode 2) takes for
    speech and whose loudness swings as syllables do."""
    windows = speech_found(wave)
    return float(windows.mean()) if len(windows) else 0.0


def speech_found(wave: Wave) -> npt.NDArray[np.bool_]:
    """Per whole 30 ms window of ``wave`` (16 kHz mono): webrtcvad (mode 2) takes it for
    speech and its loudness swings as syllables do. What clean changes and scan reports."""
    flags: npt.NDArray[np.bool_] = speech_windows(wave, aggressiveness=2) & _fluctuating(wave)
    return flags


def _fluctuating(wave: Wave) -> npt.NDArray[np.bool_]:
    """Per 30 ms window: whether the loudness around it (one second) rises and falls as
    syllables do. webrtcvad alone takes a steady tone, hum or chord for speech (measured:
    100% of a 440 Hz chord); speech's loudness swings by many decibels a second."""
    usable = len(wave) - len(wave) % WINDOW
    frames = wave[:usable].reshape(-1, WINDOW).astype(np.float64)
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-10)
    span = round(_SWING_S * VAD_RATE / WINDOW)
    padded = np.pad(level, (span // 2, span - 1 - span // 2), mode="edge")
    swing = np.lib.stride_tricks.sliding_window_view(padded, span).std(axis=1)
    flags: npt.NDArray[np.bool_] = swing >= _SWING_DB
    return flags


def speech_windows(wave: Wave, aggressiveness: int) -> npt.NDArray[np.bool_]:
    """For each whole 30 ms window of ``wave`` (16 kHz mono float): speech or not.
    ``aggressiveness`` is webrtcvad's mode, 0 (calls more sound speech) to 3 (less)."""
    import webrtcvad  # the voice extra

    usable = len(wave) - len(wave) % WINDOW
    pcm = np.round(np.clip(wave[:usable], -1, 1) * 32767).astype("<i2").tobytes()
    vad = webrtcvad.Vad(aggressiveness)
    step = WINDOW * 2  # bytes
    return np.array(
        [vad.is_speech(pcm[i : i + step], VAD_RATE) for i in range(0, len(pcm), step)], dtype=bool
    )
