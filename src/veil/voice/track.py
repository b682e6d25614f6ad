"""A file's sound tracks with their speakers replaced, re-encoded as the cleaned file is muxed.

`NewVoices.prepare` decodes every sound track of a file once, looks for speech, and when there
is some gives each track a pseudo-speaker drawn for this file alone (`Voice.draw`, never
stored). The muxers (`formats.video`, `transcode`) then ask for the new track's packets as the
original's go by (`NewVoices.until`), so sound and picture stay interleaved as they were.

Speech is changed at 16 kHz, the rate the anonymiser is tuned and measured at
(`benchmarks/voice.py`): the mix of all channels is anonymised there and brought back to the
track's rate and every channel, so in speech the sound is mono and stops at 8 kHz (what a
wide-band phone call carries), while away from speech every channel keeps the
original's full band. A channel kept apart would keep the voice it holds.

A whole track is held decoded (10 minutes of 48 kHz stereo: 230 MB); the anonymiser works
through it in pieces, so its own memory stays bounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import av
import numpy as np
import numpy.typing as npt
from av.audio.stream import AudioStream
from av.container import OutputContainer
from av.packet import Packet
from av.stream import Stream

from ..errors import CorruptInput, EncodeFailed, UnsupportedFormat
from ..result import VoiceRecord
from .anonymize import Voice, Wave, anonymize, speech_weight
from .speech import VAD_RATE, share_of_speech

#: Speech is found and changed at one rate, the speech finder's.
WORK_RATE = VAD_RATE
#: Less speech than this in a file is taken for a false alarm of the speech finder (a cough,
#: a door): the sound is then copied unchanged.
MIN_SPEECH_S = 0.3
_PIECE_S, _OVERLAP_S = 30.0, 1.0
# The encoder for each decoder, where the FFmpeg in PyAV's wheel has one: the same codec, so
# the container takes it and the file stays what it was. Vorbis's own encoder is FFmpeg's
# experimental one (no libvorbis in the wheel).
_ENCODERS = {
    "aac": "aac",
    "mp3": "libmp3lame",
    "mp3float": "libmp3lame",
    "opus": "libopus",
    "vorbis": "vorbis",
    "flac": "flac",
    "alac": "alac",
    "ac3": "ac3",
    "mp2": "mp2",
    "mp2float": "mp2",
    # Windows Media Audio (WMA, and WMV's sound): FFmpeg writes versions 1 and 2, not 9 Pro.
    "wmav1": "wmav1",
    "wmav2": "wmav2",
}
_EXPERIMENTAL = {"vorbis"}


@dataclass
class _Track:
    """One decoded sound track and where its new version has got to."""

    samples: npt.NDArray[np.float32]  # channels x samples, float, at ``rate``
    rate: int
    layout: str
    codec: str
    bit_rate: int | None
    start: int  # first sample's time, in samples
    #: When the original's first packet starts, in seconds (None: it has no time).
    first_packet: Fraction | None = None
    stream: AudioStream | None = None
    sent: int = 0  # samples handed to the encoder so far
    #: Added to the new packets' times: see `_in_step`.
    shift: Fraction | None = None


class NewVoices:
    """The anonymised sound tracks of one file, by input stream index."""

    def __init__(self, tracks: dict[int, _Track]) -> None:
        self._tracks = tracks

    @classmethod
    def prepare(
        cls, path: Path, kind: str, anonymize: bool
    ) -> tuple[NewVoices | None, VoiceRecord | None]:
        """Decode ``path``'s sound and find its speech. Returns the new voices when the sound
        is to be changed (``anonymize`` and speech found), else None: the sound is copied as it
        is; and what the report says (None for a file without sound)."""
        tracks = _decode(path, kind)
        if not tracks:
            return None, None
        # Each track's channels mixed, at the rate speech is found and changed at: once.
        mixes = {i: _to_rate(t.samples.mean(axis=0), t.rate, WORK_RATE) for i, t in tracks.items()}
        shares = {i: share_of_speech(mix) for i, mix in mixes.items()}
        seconds = sum(shares[i] * mix.size / WORK_RATE for i, mix in mixes.items())
        share = round(max(shares.values()), 3)
        if seconds < MIN_SPEECH_S:
            return None, VoiceRecord(share, "none")
        if not anonymize:
            return None, VoiceRecord(share, "kept")
        for index, track in tracks.items():
            _encoder_for(track.codec, kind)  # refused before any work is done
            voice = Voice.draw(np.random.default_rng())  # fresh entropy, never stored
            track.samples = _revoiced(track, mixes[index], voice)
        return cls(tracks), VoiceRecord(share, "anonymized")

    def __contains__(self, index: int) -> bool:
        return index in self._tracks

    def stream(self, output: OutputContainer, index: int, kind: str) -> AudioStream:
        """The output stream for input stream ``index``: its codec, rate and channels."""
        track = self._tracks[index]
        try:
            stream = cast(
                AudioStream, output.add_stream(_encoder_for(track.codec, kind), rate=track.rate)
            )
            stream.codec_context.layout = track.layout
            if track.bit_rate:
                stream.codec_context.bit_rate = track.bit_rate
            if track.codec in _EXPERIMENTAL:
                stream.codec_context.options = {"strict": "experimental"}
        except (av.FFmpegError, ValueError) as exc:
            raise EncodeFailed(f"cannot encode {kind} sound as {track.codec}: {exc}") from exc
        track.stream = stream
        return stream

    def until(self, index: int, seconds: float | None) -> list[Packet[Any]]:
        """The new track's packets up to ``seconds`` (the end of the original's packet just
        read), or all that are left when None."""
        track = self._tracks[index]
        assert track.stream is not None, "stream() first"
        total = track.samples.shape[1]
        end = total if seconds is None else round(seconds * track.rate) - track.start
        end = min(max(end, track.sent), total)
        try:
            packets = _encode(track, end)
            if seconds is None:
                packets += _in_step(track, list(track.stream.encode(None)))
        except (av.FFmpegError, ValueError) as exc:
            raise EncodeFailed(f"cannot encode the new sound: {exc}") from exc
        return packets


def _encode(track: _Track, end: int) -> list[Packet[Any]]:
    assert track.stream is not None
    if end <= track.sent:
        return []
    piece = np.ascontiguousarray(track.samples[:, track.sent : end])
    frame = av.AudioFrame.from_ndarray(piece, format="fltp", layout=track.layout)
    frame.rate = track.rate
    frame.time_base = Fraction(1, track.rate)
    frame.pts = track.start + track.sent
    track.sent = end
    return _in_step(track, list(track.stream.encode(frame)))


def _in_step(track: _Track, packets: list[Packet[Any]]) -> list[Packet[Any]]:
    """The new packets moved so that the first starts where the original's first did.

    An encoder starts with a few priming samples before time zero (AAC 1024, MP3 about
    1100). MP4 keeps such negative times (an edit list); AVI and Matroska cannot, and their
    muxers would move every stream, the picture too, later to make room. The original's
    encoder primed too, and its file settled that in its own way: starting where it started
    keeps the picture where it was and the sound within a few milliseconds of it."""
    for packet in packets:
        if packet.pts is None or packet.time_base is None:
            continue
        if track.shift is None:
            start = Fraction(packet.pts) * packet.time_base
            track.shift = Fraction(0) if track.first_packet is None else track.first_packet - start
        if track.shift:
            moved = round(track.shift / packet.time_base)
            packet.pts += moved
            if packet.dts is not None:
                packet.dts += moved
    return packets


def _encoder_for(codec: str, kind: str) -> str:
    name = _ENCODERS.get(codec) or (codec if codec.startswith("pcm_") else None)
    if name is None:
        raise UnsupportedFormat(
            f"{kind} sound in {codec!r} cannot be re-encoded with a new voice here; "
            "use --voice keep to copy it unchanged"
        )
    return name


def _decode(path: Path, kind: str) -> dict[int, _Track]:
    """Every kept sound track of ``path``, decoded to planar float at its own rate."""
    from ..formats.video import is_kept, open_input, packets

    tracks: dict[int, _Track] = {}
    with open_input(path, kind) as container:
        streams: list[Stream] = [s for s in container.streams.audio if is_kept(s)]
        if not streams:  # (demuxing no streams would demux them all)
            return tracks
        parts: dict[int, list[npt.NDArray[np.float32]]] = {s.index: [] for s in streams}
        resamplers: dict[int, Any] = {}
        starts: dict[int, int | None] = {s.index: None for s in streams}
        first_packets: dict[int, Fraction | None] = {}
        for stream in streams:
            context = cast(AudioStream, stream).codec_context
            layout = context.layout.name if context.layout else "mono"
            resamplers[stream.index] = av.AudioResampler("fltp", layout, context.sample_rate)
            tracks[stream.index] = _Track(
                np.zeros((0, 0), np.float32),
                context.sample_rate,
                layout,
                context.name,
                context.bit_rate or None,
                0,
            )
        try:
            for packet in packets(container, streams, kind):
                index = packet.stream.index
                if index not in first_packets:
                    pts, base = packet.pts, packet.time_base
                    first_packets[index] = None if pts is None else Fraction(pts) * base
                for frame in cast(list[av.AudioFrame], packet.decode()):
                    if starts[index] is None and frame.pts is not None and frame.time_base:
                        starts[index] = round(frame.pts * frame.time_base * frame.sample_rate)
                    for out in resamplers[index].resample(frame):
                        parts[index].append(out.to_ndarray())
            for index, resampler in resamplers.items():
                parts[index] += [out.to_ndarray() for out in resampler.resample(None)]
        except (av.FFmpegError, ValueError) as exc:
            raise CorruptInput(f"cannot decode the sound of {kind}: {exc}") from exc
    for index, track in list(tracks.items()):
        if not parts[index]:  # a sound stream with no sound in it: nothing to change
            del tracks[index]
            continue
        track.samples = np.concatenate(parts[index], axis=1).astype(np.float32)
        track.start = starts[index] or 0
        track.first_packet = first_packets.get(index)
    return tracks


def _revoiced(track: _Track, mix: Wave, voice: Voice) -> npt.NDArray[np.float32]:
    """The track with its speech given ``voice``: its ``mix`` (16 kHz mono) anonymised piece
    by piece, brought back to the track's rate and put in every channel."""
    new, weight = _in_pieces(mix, voice)
    length = track.samples.shape[1]
    new_full = _to_rate(new, WORK_RATE, track.rate, length)
    positions = np.arange(length) * (WORK_RATE / track.rate)
    weight_full = np.interp(positions, np.arange(len(weight)), weight).astype(np.float32)
    out: npt.NDArray[np.float32] = track.samples * (1.0 - weight_full) + new_full * weight_full
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def _in_pieces(wave: Wave, voice: Voice) -> tuple[Wave, npt.NDArray[np.float32]]:
    """`anonymize` and `speech_weight` over pieces of ``_PIECE_S`` seconds overlapping by
    ``_OVERLAP_S``, cross-faded: the same voice throughout, the memory of one piece. Returns
    the new sound and, per sample, how much of it is the new voice (1 in speech, 0 away)."""
    piece, overlap = round(_PIECE_S * WORK_RATE), round(_OVERLAP_S * WORK_RATE)
    out = np.zeros(len(wave), np.float32)
    weight = np.zeros(len(wave), np.float32)
    start = 0
    while start < len(wave):
        stop = min(len(wave), start + piece)
        changed = anonymize(wave[start:stop], WORK_RATE, voice)
        part_weight = speech_weight(wave[start:stop], WORK_RATE).astype(np.float32)
        fade = np.ones(stop - start, np.float32)
        if start > 0:  # fade in over the overlap with the piece before
            ramp = min(overlap, stop - start)
            fade[:ramp] = np.linspace(0.0, 1.0, ramp, dtype=np.float32)
            out[start : start + ramp] *= 1.0 - fade[:ramp]
            weight[start : start + ramp] *= 1.0 - fade[:ramp]
        out[start:stop] += fade * changed
        weight[start:stop] += fade * part_weight
        if stop == len(wave):
            break
        start = stop - overlap
    return out, weight


def _to_rate(
    wave: Wave, rate: int, target: int, length: int | None = None
) -> npt.NDArray[np.float32]:
    """``wave`` (mono) at ``target`` Hz through FFmpeg's resampler, ``length`` samples long
    when given (padded or cut: the resampler's delay leaves a few samples either way)."""
    if rate == target:
        out = wave.astype(np.float32)
    else:
        resampler = av.AudioResampler("flt", "mono", target)
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(wave.astype(np.float32)[None, :]), format="flt", layout="mono"
        )
        frame.rate = rate
        parts = [f.to_ndarray()[0] for f in resampler.resample(frame)]
        parts += [f.to_ndarray()[0] for f in resampler.resample(None)]
        out = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    if length is not None:
        out = np.pad(out[:length], (0, max(0, length - len(out))))
    return out.astype(np.float32)
