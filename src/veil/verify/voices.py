"""Does an output still carry the original speaker's voice? (``veil verify``, ``clean --verify``)

The GE2E encoder of `veil.verify.speaker` prints the voice of the original and of the output
over the same time spans, and a span whose two prints are as close as two utterances of one
speaker usually are is a leak. Same spans, not whole files: a voice left as it was in one
minute of an hour would vanish in a whole-file average.

* Speech only: the spans are cut by speech time (the encoder's own voice-activity detection on
  the original), about `PIECE_SPEECH_S` of speech each, so that each print rests on as much
  speech as the next; silences between belong to whichever span they fall in. A long file is
  judged on at most `MAX_PIECES` of them spread evenly across it, which caps the cost.
* Too little speech (under `MIN_SPEECH_S` in the whole original) cannot be judged: a print of
  a second or two of speech scatters as widely as prints of two different people. The check
  says so (``unjudged_note``) rather than call the output protected.
* A span whose output has no speech left (silenced, cut) keeps no voice: checked, no leak.

Prints live in memory only, as in `veil.verify.speaker`: they are biometric templates.

Calibration (``python benchmarks/voice_verify.py``; 2026-12-03, 2-core CPU, the dev voices:
LibriSpeech test-other, 10 speakers x 10 utterances, 767 s; cosine of piece prints):

    spans compared                     n    min   1%    median  99%   max   >= 0.75
    same speaker, other utterance    565  0.70  0.73  0.87    0.96  0.97   97.9%
    other speakers                  5639  0.30  0.37  0.52    0.70  0.74    0.0%
    untouched                        112  1.00  1.00  1.00    1.00  1.00    100%
    gain -10 dB                      112  0.85  0.86  0.97    1.00  1.00    100%
    white noise at 30 dB SNR         112  0.94  0.95  0.99    1.00  1.00    100%
    MP3 32 kbit/s                    112  0.97  0.98  1.00    1.00  1.00    100%
    AAC 48 kbit/s                    112  0.96  0.97  0.99    1.00  1.00    100%
    pitch +1 semitone                112  0.79  0.79  0.90    0.94  0.95    100%
    pitch -1 semitone                112  0.79  0.80  0.89    0.95  0.95    100%
    veil anonymised (3 draws)        336  0.32  0.36  0.48    0.65  0.66    0.0%
    long (77 s), untouched            59  1.00  1.00  1.00    1.00  1.00    100%
    long (77 s), veil (3 draws)      177  0.37  0.38  0.51    0.65  0.66    0.0%
    pitch +-2 semitones (informative) 112  0.66  0.68  0.82    0.89  0.91   92.9%

`THRESHOLD` is 0.75: every span of the voices left as they were or mildly changed above
(gain, noise, codecs, a semitone: 843 spans, the lowest 0.79) is flagged, and none of veil's
513 anonymised spans is (the highest 0.66; none of the 30 long recordings either): 0 false
alarms, under 0.6% a span at 95% confidence. It lies just above every pair of two different
dev speakers (the highest 0.74), so a flagged output sounds more like the original than any
other person measured does, and below 97.9% of the same speaker's other utterances. A pitch
shift of 2 semitones alone, a weak disguise that still sounds like the speaker, is flagged in
92.9% of spans. Speed: 1.25 s of one core per minute of original sound (both sounds printed;
the encoder is most of it).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..errors import UsageError
from ..result import Leak
from ..voice.speech import WINDOW
from .speaker import SAMPLE_RATE, SpeakerEncoder, louder, speech_mask

Wave = npt.NDArray[np.float32]

#: Cosine of the original's and the output's prints at or above which a span leaks.
THRESHOLD = 0.75
#: Less speech than this in the whole original cannot be judged.
MIN_SPEECH_S = 3.0
#: Speech in each span compared (a file is cut into spans of equal speech, at most this).
PIECE_SPEECH_S = 12.0
#: At most this many spans of a long file are compared, spread evenly across it.
MAX_PIECES = 16


@dataclass(frozen=True)
class VoiceCheck:
    """What the voice check found: ``leaks`` (one per span that still sounds like the original
    speaker), how many spans it compared, why it could not judge (``unjudged_note``, None when
    it could) and the highest similarity it saw (None when it compared none)."""

    leaks: list[Leak]
    pieces_checked: int
    unjudged_note: str | None
    best_score: float | None


@dataclass(frozen=True)
class Piece:
    """One span compared: samples ``start`` to ``stop`` of both sounds."""

    start: int
    stop: int

    def words(self) -> str:
        return f"{self.start / SAMPLE_RATE:.1f}-{self.stop / SAMPLE_RATE:.1f} s"


def speech_seconds(wave: Wave) -> float:
    """Seconds of ``wave`` the encoder keeps as speech (after its silence cutting)."""
    return float(speech_mask(louder(wave)).sum()) * WINDOW / SAMPLE_RATE


def plan_pieces(
    wave: Wave, piece_speech_s: float = PIECE_SPEECH_S, max_pieces: int = MAX_PIECES
) -> list[Piece]:
    """The spans of ``wave`` to compare: equal shares of its speech, each at most
    ``piece_speech_s`` of it, contiguous and covering the whole sound; at most ``max_pieces``
    of them, spread evenly when there are more. No span when there is no speech."""
    mask = speech_mask(louder(wave))
    spoken = np.cumsum(mask)
    total = int(spoken[-1]) if len(spoken) else 0
    if total == 0:
        return []
    count = int(np.ceil(total * WINDOW / SAMPLE_RATE / piece_speech_s))
    targets = np.arange(1, count) * total / count
    cuts = (np.searchsorted(spoken, targets) + 1) * WINDOW  # sample where each share ends
    bounds = [0, *(int(c) for c in cuts), len(wave)]
    pieces = [Piece(a, b) for a, b in itertools.pairwise(bounds) if b > a]
    if len(pieces) > max_pieces:
        chosen = np.unique(np.round(np.linspace(0, len(pieces) - 1, max_pieces)).astype(int))
        pieces = [pieces[i] for i in chosen]
    return pieces


def _mono(wave: Wave, name: str) -> Wave:
    array = np.asarray(wave)
    if array.ndim != 1:
        raise UsageError(f"the {name} sound must be mono (one channel), not of shape {array.shape}")
    return array.astype(np.float32, copy=False)


def piece_scores(
    original: Wave, output: Wave, encoder: SpeakerEncoder
) -> list[tuple[Piece, float | None]]:
    """Each span of `plan_pieces` whose original has a print, with the cosine of the
    original's and the output's prints there (None when the output has no speech left
    there: no voice to leak)."""
    scores: list[tuple[Piece, float | None]] = []
    for piece in plan_pieces(original):
        before = encoder.embed(original[piece.start : piece.stop])
        if before is None:
            continue
        after = encoder.embed(output[piece.start : piece.stop])
        scores.append((piece, None if after is None else float(before @ after)))
    return scores


def check_voices(
    original: Wave, output: Wave, encoder: SpeakerEncoder, threshold: float = THRESHOLD
) -> VoiceCheck:
    """Whether ``output`` still carries the voice of whoever speaks in ``original`` (both
    16 kHz mono float32, the same timeline: veil keeps every sound's length and timing)."""
    original, output = _mono(original, "original"), _mono(output, "output")
    spoken = speech_seconds(original)
    if spoken < MIN_SPEECH_S:
        short = (
            f"unjudged: too little speech ({spoken:.1f} s; a voice needs {MIN_SPEECH_S:.0f} s "
            "to be compared)"
        )
        return VoiceCheck([], 0, short, None)
    scores = piece_scores(original, output, encoder)
    leaks = [
        Leak(
            kind="voice",
            detail=f"speech at {piece.words()} still sounds like the original speaker "
            f"(similarity {score:.2f}, threshold {threshold:.2f})",
        )
        for piece, score in scores
        if score is not None and score >= threshold
    ]
    found = [score for _, score in scores if score is not None]
    note = None if scores else "unjudged: too little speech"
    return VoiceCheck(leaks, len(scores), note, max(found) if found else None)


def check_voice_files(original: Path, output: Path, encoder: SpeakerEncoder) -> VoiceCheck:
    """`check_voices` of two files' first sound tracks. Raises `CorruptInput` when either has
    no sound or its sound cannot be decoded."""
    from ..voice.sound import read_mono

    return check_voices(read_mono(original, SAMPLE_RATE), read_mono(output, SAMPLE_RATE), encoder)
