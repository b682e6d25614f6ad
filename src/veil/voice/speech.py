"""Where people speak: webrtcvad's verdict on each 30 ms of 16 kHz sound."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .sound import Wave

VAD_RATE = 16_000
WINDOW = 480  # 30 ms at 16 kHz, one of the three lengths webrtcvad takes


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
