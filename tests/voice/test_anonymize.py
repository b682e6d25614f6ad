"""veil's voice anonymiser (`veil.voice.anonymize`) on made-up vowels whose pitch and formants
are known: each transform moves what it says it moves, and nothing else about the file."""

from __future__ import annotations

import numpy as np
import pytest

from veil.voice.anonymize import Voice, anonymize, anonymize_speech
from voice_helpers import RATE, envelope_peak, pitch_of, vowel

pytest.importorskip("scipy", reason="the test vowels are made with scipy's filters")


def test_length_and_loudness_are_kept() -> None:
    sound = vowel(120, (700, 1200), seconds=2.3)
    out = anonymize(sound, RATE, Voice(pitch=4.0, alpha=0.55))
    assert out.dtype == np.float32 and len(out) == len(sound)
    assert np.isfinite(out).all() and np.max(np.abs(out)) <= 0.99
    rms = lambda x: float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))  # noqa: E731
    assert rms(out) == pytest.approx(rms(sound), rel=0.05)


@pytest.mark.parametrize("semitones", [-5.0, -3.0, 3.0, 6.0])
def test_pitch_moves_by_the_semitones_drawn(semitones: float) -> None:
    sound = vowel(140, (700, 1200))
    out = anonymize(sound, RATE, Voice(pitch=semitones, alpha=1.0))
    assert pitch_of(out) == pytest.approx(140 * 2 ** (semitones / 12), rel=0.04)


def test_alpha_moves_a_formant_where_mcadams_puts_it() -> None:
    """A resonance at 600 Hz is at 0.236 rad; 0.236 ** 0.6 = 0.420 rad, about 1070 Hz."""
    sound = vowel(110, (600,))
    assert envelope_peak(sound) == pytest.approx(600, rel=0.1)
    out = anonymize(sound, RATE, Voice(pitch=0.0, alpha=0.6))
    expected = (2 * np.pi * 600 / RATE) ** 0.6 * RATE / (2 * np.pi)
    assert envelope_peak(out) == pytest.approx(expected, rel=0.12)


def test_every_file_gets_a_voice_of_its_own() -> None:
    rng = np.random.default_rng(0)
    voices = [Voice.draw(rng) for _ in range(200)]
    assert len({(v.pitch, v.alpha) for v in voices}) == 200
    assert all(4 <= abs(v.pitch) <= 7 and 0.40 <= v.alpha <= 0.60 for v in voices)
    assert 60 < sum(v.pitch > 0 for v in voices) < 140, "up and down alike"


def test_too_short_to_analyse_is_returned_as_it_was() -> None:
    tiny = np.full(100, 0.1, np.float32)
    out = anonymize(tiny, RATE, Voice(pitch=3.0, alpha=0.5))
    assert np.array_equal(out, tiny) and out is not tiny


def test_only_speech_is_changed_and_its_share_is_told() -> None:
    """A second of near silence, a second of a vowel, a second of near silence: the quiet
    away from the vowel keeps every sample, the vowel is changed, the share is told."""
    pytest.importorskip("webrtcvad", reason="speech is found by webrtcvad (the voice extra)")
    quiet = np.random.default_rng(1).normal(0, 1e-4, RATE).astype(np.float32)
    sound = np.concatenate([quiet, vowel(130, (700, 1200, 2600)), quiet])
    out, share = anonymize_speech(sound, RATE, Voice(pitch=5.0, alpha=0.5))
    assert len(out) == len(sound)
    assert np.array_equal(out[: RATE // 2], sound[: RATE // 2]), "quiet away from speech kept"
    middle = slice(RATE + RATE // 4, 2 * RATE - RATE // 4)
    assert np.abs(out[middle] - sound[middle]).mean() > 0.01, "the vowel is changed"
    assert 1 / 3 < share < 0.6, share  # the vowel and 0.3 s each side
