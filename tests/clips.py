"""Test clips made with PyAV: the astronaut's face sliding over a smooth background, with a
tone for sound. Where the face is at each frame is known (`face_box`), so each output frame
can be checked."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import numpy.typing as npt

from helpers import ASTRONAUT_FACE, astronaut, backdrop

Array = npt.NDArray[np.uint8]
WIDTH, HEIGHT = 320, 240
PORTRAIT = 200  # the astronaut is pasted at this size


@dataclass(frozen=True)
class Kind:
    name: str
    suffix: str
    muxer: str
    codec: str
    audio: str | None
    decoder: str  # what the output's video should be


KINDS = [
    Kind("mp4", ".mp4", "mp4", "libx264", "aac", "h264"),
    Kind("mov", ".mov", "mov", "libx264", "aac", "h264"),
    Kind("mkv", ".mkv", "matroska", "libx264", "libopus", "h264"),
    Kind("webm", ".webm", "webm", "libvpx-vp9", "libopus", "vp9"),
    Kind("avi", ".avi", "avi", "mpeg4", "mp3", "mpeg4"),
    Kind("hevc", ".mp4", "mp4", "libx265", None, "hevc"),
    Kind("av1", ".mkv", "matroska", "libsvtav1", None, "av1"),
    Kind("wmv", ".wmv", "asf", "wmv2", "wmav2", "wmv2"),  # Windows Media (ASF)
]


def face_box(index: int) -> tuple[int, int, int, int]:
    """Where the face is in frame ``index`` (displayed pixels)."""
    scale = PORTRAIT / 512
    left = 10 + 6 * (index % 18)  # slides right, then starts again
    x1, y1, x2, y2 = ASTRONAUT_FACE
    return (
        round(left + x1 * scale),
        round(20 + y1 * scale),
        round(left + x2 * scale),
        round(20 + y2 * scale),
    )


def picture(index: int) -> Array:
    canvas = backdrop(HEIGHT, WIDTH)
    left = 10 + 6 * (index % 18)  # slides right, then starts again
    canvas[20 : 20 + PORTRAIT, left : left + PORTRAIT] = cv2.resize(
        astronaut(), (PORTRAIT, PORTRAIT), interpolation=cv2.INTER_AREA
    )
    return canvas


def make_clip(
    path: Path,
    kind: Kind = KINDS[0],
    frames: int = 12,
    rotation: int | None = None,
    times: list[int] | None = None,
    sound: npt.NDArray[np.float32] | None = None,
) -> None:
    """A clip of ``frames`` frames at 10 fps (``times``: pts in 1/1000 s, for variable rate);
    ``rotation`` stores the pictures turned so that a player turning them back shows them
    upright; ``sound`` (48 kHz mono) replaces the tone."""
    with av.open(str(path), "w", format=kind.muxer) as out:
        out.metadata["title"] = "Dam square, Amsterdam"
        video = out.add_stream(kind.codec, rate=10)
        turned = rotation is not None and rotation % 180 != 0
        video.width, video.height = (HEIGHT, WIDTH) if turned else (WIDTH, HEIGHT)
        video.pix_fmt = "yuv420p"
        video.bit_rate = 800_000
        if times is not None:
            video.codec_context.time_base = Fraction(1, 1000)
        if rotation is not None:
            video.set_display_rotation(rotation)
        audio = out.add_stream(kind.audio, rate=48000) if kind.audio else None
        if audio is not None:
            audio.layout = "mono"
            if kind.audio == "wmav2":
                audio.bit_rate = 64_000  # it has no default
        for i in range(frames):
            pixels = picture(i)
            if rotation:
                pixels = np.ascontiguousarray(np.rot90(pixels, -round(rotation / 90)))
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = times[i] if times is not None else i
            out.mux(video.encode(frame))
        out.mux(video.encode())
        if audio is not None:
            rate, size = 48000, audio.codec_context.frame_size or 1024
            tone = (np.sin(np.arange(rate * frames // 10) / 8.0) * 0.2).astype(np.float32)
            if sound is not None:
                tone = sound
            for start in range(0, len(tone) - size + 1, size):
                sound = av.AudioFrame.from_ndarray(
                    tone[None, start : start + size], format="flt", layout="mono"
                )
                sound.sample_rate, sound.pts = rate, start
                out.mux(audio.encode(sound))
            out.mux(audio.encode())


def frames_of(path: Path) -> list[Array]:
    """Decoded frames, upright (the display rotation applied)."""
    with av.open(str(path)) as container:
        out = []
        for frame in container.decode(video=0):
            rgb = frame.to_ndarray(format="rgb24")
            out.append(np.rot90(rgb, round(frame.rotation / 90) % 4))
        return out


def plate_clip(path: Path, scene: Array, frames: int = 12) -> None:
    """``scene`` (a picture with a plate, `helpers.plate_scene`) sliding right by 4 px a frame,
    10 fps H.264: frame i shows it moved by 4 * i."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = scene.shape[1], scene.shape[0], "yuv420p"
        for i in range(frames):
            picture = np.ascontiguousarray(np.roll(scene, 4 * i, axis=1))
            for packet in video.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
