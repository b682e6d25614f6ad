"""Sound as numbers: a file's first audio track decoded to mono float32 at a chosen rate."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from ..errors import CorruptInput

Wave = npt.NDArray[np.float32]


def read_mono(path: Path, rate: int, seconds: float | None = None, track: int = 0) -> Wave:
    """Audio track ``track`` (the first by default) of ``path``, mixed to mono and resampled to
    ``rate``, in [-1, 1]; with ``seconds``, only its first ``seconds`` (the rest is not
    decoded)."""
    limit = None if seconds is None else max(0, round(seconds * rate))
    parts: list[Wave] = []
    count = 0
    try:
        with av.open(str(path)) as container:
            if len(container.streams.audio) <= track:
                raise CorruptInput(
                    f"{path.name} has no sound" + (f" track {track}" if track else "")
                )
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            for frame in container.decode(audio=track):
                for out in resampler.resample(frame):
                    parts.append(out.to_ndarray()[0])
                    count += len(parts[-1])
                if limit is not None and count >= limit:
                    break
            else:  # the whole track: what the resampler still holds belongs to it
                parts += [out.to_ndarray()[0] for out in resampler.resample(None)]
    except (av.FFmpegError, ValueError) as exc:
        raise CorruptInput(f"cannot read the sound of {path.name}: {exc}") from exc
    wave = np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)
    return wave if limit is None else wave[:limit]


def has_sound(path: Path) -> bool:
    """Whether ``path`` holds a sound track (False when it cannot be opened: the caller's own
    reading says why)."""
    try:
        with av.open(str(path)) as container:
            return bool(container.streams.audio)
    except (av.FFmpegError, OSError, ValueError):
        return False
