"""Calibrating the voice-leak check of ``veil verify`` (`veil.verify.voices`): how close the
prints of an original and its output come when the voice is still there, and when veil
changed it.

Every number is a cosine of two GE2E prints (`veil.verify.speaker`) of one span of speech, the
spans `veil.verify.voices.plan_pieces` cuts (at most `PIECE_SPEECH_S` of speech each):

* reference: the same speaker's other utterances (what "sounds like the same person" means
  to the encoder), and other speakers;
* should be flagged (a leak): the original against itself untouched, 10 dB quieter, under
  white noise 30 dB below it, re-encoded as MP3 (32 kbit/s) and AAC (48 kbit/s), and pitch
  moved one semitone up or down (phase vocoder, formants left: `anonymize` with alpha 1);
* should pass: veil's anonymiser (`anonymize_speech`, a fresh `Voice.draw` per utterance, for
  each of ``--seeds`` seeds);
* the same on long recordings (each speaker's utterances one after another, about 77 s): many
  spans per file, so a file's false alarm is any of its spans';
* informative: pitch moved 2 semitones only, the edge of what is still the speaker.

It prints the table, the threshold that flags 99% of the should-be-flagged spans, and the
speed of `check_voices` in seconds per minute of original sound.

    python benchmarks/voice_verify.py                  # all 100 utterances, 3 seeds (~5 min)
    python benchmarks/voice_verify.py --per-speaker 3 --seeds 1      # a quick look
"""

from __future__ import annotations

import argparse
import io
import itertools
import sys
import time
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path

import numpy as np
import numpy.typing as npt

from common import cpu_model, positive_int, require_modules
from voice import DEFAULT_DATA, RATE, dev_voices

Wave = npt.NDArray[np.float32]
Transform = Callable[[Wave, np.random.Generator], Wave]


def _codec(wave: Wave, container: str, codec: str, bit_rate: int) -> Wave:
    """``wave`` through a lossy codec and back (PyAV, in memory)."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as out:
        stream = out.add_stream(codec, rate=RATE, layout="mono")
        stream.bit_rate = bit_rate
        frame = av.AudioFrame.from_ndarray(wave[None, :], format="flt", layout="mono")
        frame.sample_rate = RATE
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    buffer.seek(0)
    with av.open(buffer) as back:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
        parts = [o.to_ndarray()[0] for f in back.decode(audio=0) for o in resampler.resample(f)]
        parts += [o.to_ndarray()[0] for o in resampler.resample(None)]
    decoded = np.concatenate(parts).astype(np.float32)
    return np.pad(decoded, (0, max(0, len(wave) - len(decoded))))[: len(wave)]


def _pitch(semitones: float) -> Transform:
    from veil.voice.anonymize import Voice, anonymize

    return lambda wave, rng: anonymize(wave, RATE, Voice(pitch=semitones, alpha=1.0))


def _veil(wave: Wave, rng: np.random.Generator) -> Wave:
    from veil.voice.anonymize import Voice, anonymize_speech

    return anonymize_speech(wave, RATE, Voice.draw(rng))[0]


def _noise(wave: Wave, rng: np.random.Generator) -> Wave:
    level = np.sqrt(np.mean(np.square(wave, dtype=np.float64))) * 10 ** (-30 / 20)
    return (wave + rng.normal(0.0, level, len(wave))).astype(np.float32)


LEAKS: dict[str, Transform] = {
    "untouched": lambda wave, rng: wave,
    "gain -10 dB": lambda wave, rng: (wave * 10 ** (-10 / 20)).astype(np.float32),
    "noise 30 dB SNR": _noise,
    "MP3 32 kbit/s": lambda wave, rng: _codec(wave, "mp3", "libmp3lame", 32_000),
    "AAC 48 kbit/s": lambda wave, rng: _codec(wave, "adts", "aac", 48_000),
    "pitch +1 st": _pitch(1.0),
    "pitch -1 st": _pitch(-1.0),
}


def _row(scores: Sequence[float | None], threshold: float, files: Sequence[float] = ()) -> str:
    """One line of the table: spans, spread of their scores, share at or above threshold."""
    values = np.array([s for s in scores if s is not None])
    gone = sum(s is None for s in scores)
    spread = " | ".join(f"{q:.2f}" for q in np.percentile(values, [0, 1, 5, 50, 95, 99, 100]))
    flagged = f"{100 * np.mean(values >= threshold):.1f}%"
    per_file = f"{100 * np.mean(np.array(files) >= threshold):.1f}%" if len(files) else "-"
    return f"{len(values) + gone} | {spread} | {flagged} | {per_file}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--per-speaker", type=positive_int, help="utterances per speaker")
    parser.add_argument("--seeds", type=positive_int, default=3, help="draws of veil's voices")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--threshold", type=float, help="judge at this (default: veil's)")
    args = parser.parse_args(argv)
    require_modules(
        "voice_verify.py",
        ("webrtcvad", "scipy"),
        "pip install scipy; pip install --no-deps resemblyzer==0.1.4",
    )
    from veil.verify.speaker import SpeakerEncoder
    from veil.verify.voices import THRESHOLD, piece_scores, plan_pieces

    threshold = THRESHOLD if args.threshold is None else args.threshold
    paths, waves, seconds = dev_voices(args.data, args.per_speaker)
    encoder = SpeakerEncoder()
    speakers = sorted({p.parent.name for p in paths})
    print(f"{len(paths)} utterances of {len(speakers)} speakers, {seconds:.0f} s; {cpu_model()}")

    # reference: prints of the spans of every utterance, compared across utterances
    spans = [[w[p.start : p.stop] for p in plan_pieces(w)] for w in waves]
    prints = [[p for s in pieces if (p := encoder.embed(s)) is not None] for pieces in spans]
    same: list[float | None] = []
    other: list[float | None] = []
    for i, j in itertools.combinations(range(len(paths)), 2):
        pairs = [float(a @ b) for a in prints[i] for b in prints[j]]
        (same if paths[i].parent == paths[j].parent else other).extend(pairs)

    rows: dict[str, tuple[list[float | None], list[float]]] = {}
    leak_scores: list[float] = []
    clock: list[tuple[float, float]] = []  # (seconds of sound, seconds of check)

    def run(name: str, originals: list[Wave], transform: Transform, seed: int) -> None:
        rng = np.random.default_rng(seed)
        spans, files = rows.setdefault(name, ([], []))
        for wave in originals:
            output = transform(wave, rng)
            start = time.process_time()
            scores = [s for _, s in piece_scores(wave, output, encoder)]
            clock.append((len(wave) / RATE, time.process_time() - start))
            spans.extend(scores)
            found = [s for s in scores if s is not None]
            if found:
                files.append(max(found))
        print(f"  {name}: {len(spans)} spans", flush=True)

    for name, transform in LEAKS.items():
        run(name, waves, transform, args.seed)
        leak_scores += [s for s in rows[name][0] if s is not None]
    for k in range(args.seeds):
        run("veil anonymised", waves, _veil, args.seed + k)
    run("pitch ±2 st (informative)", waves[0::2], _pitch(2.0), args.seed)
    run("pitch ±2 st (informative)", waves[1::2], _pitch(-2.0), args.seed)

    long = [
        np.concatenate([w for w, p in zip(waves, paths, strict=True) if p.parent.name == s])
        for s in speakers
    ]
    run("long: untouched", long, LEAKS["untouched"], args.seed)
    leak_scores += [s for s in rows["long: untouched"][0] if s is not None]
    for k in range(args.seeds):
        run("long: veil anonymised", long, _veil, args.seed + 100 + k)

    suggested = float(np.floor(100 * np.percentile(leak_scores, 1)) / 100)
    sound = sum(s for s, _ in clock)
    cpu = sum(c for _, c in clock)
    print(
        f"\n{date.today()}, {cpu_model()}, {len(paths)} utterances, {seconds:.0f} s; "
        f"threshold {threshold:.2f}\n"
    )
    print("| spans | n | min | 1% | 5% | median | 95% | 99% | max | spans >= thr | files >= thr |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| same speaker, other utterance | {_row(same, threshold)} |")
    print(f"| other speakers | {_row(other, threshold)} |")
    for name, (spans, files) in rows.items():
        print(f"| {name} | {_row(spans, threshold, files)} |")
    print(f"\n99% of the should-be-flagged spans score >= {suggested:.2f}")
    print(f"speed: {60 * cpu / sound:.2f} s of CPU per minute of original sound (check only)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
