"""What new voices cost in `veil clean` (issue 18's speed targets): at least 20x real time per
core, and under 10% of the time of a 10-minute 1080p video.

A long sound track is made from the dev utterances (``../shared/data/voices``, repeated to
the length asked for), as 48 kHz stereo AAC at 128 kbit/s, in an MP4 whose picture is a tiny
still (so that the picture costs nothing). It is cleaned with ``--faces off`` two ways:
``keep`` (decoding the sound and finding its speech, which the report needs anyway) and
``anonymize`` (new voices, re-encoded). Then a 1080p clip of 30 fps made here is cleaned with
faces on, and the share of a 10-minute 1080p video's time that its sound would take is worked
out from the two rates (an extrapolation: a real 10-minute 1080p clean takes most of an hour
here).

    python benchmarks/sound_cost.py               # 10 minutes of sound
    python benchmarks/sound_cost.py --minutes 2   # a quick look
    OPENBLAS_NUM_THREADS=1 taskset -c 0 python benchmarks/sound_cost.py   # one core
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from common import cpu_model

ROOT = Path(__file__).resolve().parents[1]
VOICES = ROOT.parent / "shared" / "data" / "voices"
RATE = 48_000


def _speech(minutes: float) -> npt.NDArray[np.float32]:
    """The dev utterances one after another at 48 kHz, repeated to ``minutes``."""
    from veil.voice.sound import read_mono

    files = sorted(VOICES.rglob("*.flac"))
    if not files:
        sys.exit(f"no voices under {VOICES} (see ../shared/data/README)")
    parts, total = [], 0
    while total < minutes * 60 * RATE:
        for path in files:
            wave = read_mono(path, RATE)
            parts.append(wave)
            total += len(wave)
            if total >= minutes * 60 * RATE:
                break
    return np.concatenate(parts)[: int(minutes * 60 * RATE)]


def _sound_clip(path: Path, sound: npt.NDArray[np.float32]) -> None:
    """An MP4: a 64x64 still at 1 fps, and ``sound`` as 48 kHz stereo AAC."""
    seconds = len(sound) // RATE
    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=1)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        audio = out.add_stream("aac", rate=RATE)
        audio.layout, audio.bit_rate = "stereo", 128_000
        for i in range(seconds):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 90, np.uint8), "rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode())
        step = RATE  # a second at a time
        for start in range(0, len(sound) - step + 1, step):
            piece = sound[start : start + step]
            stereo = np.stack([piece, 0.8 * piece]).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(stereo, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = RATE, start
            out.mux(audio.encode(frame))
        out.mux(audio.encode())


def _hd_clip(path: Path, frames: int) -> None:
    """1080p H.264 at 30 fps: the astronaut's face sliding over a textured background."""
    from skimage import data

    face = data.astronaut()[::2, ::2]
    rng = np.random.default_rng(0)
    background = rng.integers(0, 255, (1080, 1920, 3), np.uint8)
    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = 1920, 1080, "yuv420p"
        video.bit_rate = 8_000_000
        for i in range(frames):
            canvas = background.copy()
            canvas[300:556, 200 + 4 * i : 456 + 4 * i] = face
            frame = av.VideoFrame.from_ndarray(canvas, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode())


def _timed(settings: object, src: Path, dst: Path) -> tuple[float, object]:
    from veil.pipeline import Pipeline

    pipe = Pipeline(settings)  # type: ignore[arg-type]
    begin = time.perf_counter()
    result = pipe.clean_file(src, dst)
    return time.perf_counter() - begin, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the sound")
    parser.add_argument("--hd-frames", type=int, default=90, help="frames of the 1080p clip")
    args = parser.parse_args(argv)
    from veil.settings import Settings

    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        src = work / "talk.mp4"
        _sound_clip(src, _speech(args.minutes))
        seconds = args.minutes * 60
        keep, kept = _timed(Settings(faces=False, voice="keep"), src, work / "keep.mp4")
        new, made = _timed(Settings(faces=False), src, work / "new.mp4")
        hd = work / "hd.mp4"
        _hd_clip(hd, args.hd_frames)
        video, _ = _timed(Settings(voice="keep"), hd, work / "hd-out.mp4")
    fps = args.hd_frames / video
    ten_minutes_video = 10 * 60 * 30 / fps
    per_minute = new / args.minutes
    share = 10 * per_minute / (10 * per_minute + ten_minutes_video)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"# sound cost, {date.today()}, {cpu_model()}, {cores} core(s) used")
    print(f"sound: {args.minutes:g} min of dev speech, 48 kHz stereo AAC 128 kbit/s")
    print(f"  --voice keep (decode, find speech): {keep:7.1f} s ({seconds / keep:5.1f}x real time)")
    print(f"  --voice anonymize:                  {new:7.1f} s ({seconds / new:5.1f}x real time)")
    print(f"  reported: keep {kept.voice}, anonymize {made.voice}")  # type: ignore[attr-defined]
    print(f"1080p30 H.264, faces on, balanced: {fps:.1f} frames/s ({args.hd_frames} frames)")
    print(
        f"a 10-minute 1080p30 video: picture about {ten_minutes_video / 60:.1f} min, sound "
        f"{10 * per_minute:.0f} s: sound is {100 * share:.1f}% of the time"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
