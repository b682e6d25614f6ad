"""Sound as numbers: a file's first audio track decoded to mono float32 at a chosen rate."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from ..errors import CorruptInput

Wave = npt.NDArray[np.float32]


def read_mono(path: Path, rate: int) -> Wave:
    """The first audio track of ``path``, mixed to mono and resampled to ``rate``, in [-1, 1]."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise CorruptInput(f"{path.name} has no sound")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            parts = [
                out.to_ndarray()[0]
                for frame in container.decode(audio=0)
                for out in resampler.resample(frame)
            ]
            parts += [out.to_ndarray()[0] for out in resampler.resample(None)]
    except (av.FFmpegError, ValueError) as exc:
        raise CorruptInput(f"cannot read the sound of {path.name}: {exc}") from exc
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)


def has_sound(path: Path) -> bool:
    """Whether ``path`` holds a sound track (False when it cannot be opened: the caller's own
    reading says why)."""
    try:
        with av.open(str(path)) as container:
            return bool(container.streams.audio)
    except (av.FFmpegError, OSError, ValueError):
        return False
