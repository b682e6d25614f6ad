"""The voice-leak check of ``veil verify`` (`veil.verify.voices`): too little speech is
unjudged, not protected; a voice left as it was is a leak, named by its time span; veil's
anonymised voice is not (the last on the dev voices, skipped where they are absent)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from veil.errors import UsageError
from veil.result import Verification
from veil.verify import speaker, voices
from veil.verify.speaker import SAMPLE_RATE, SpeakerEncoder, mel_frames
from veil.verify.voices import (
    MIN_SPEECH_S,
    THRESHOLD,
    VoiceCheck,
    check_voice_files,
    check_voices,
    plan_pieces,
    speech_seconds,
)

pytest.importorskip("webrtcvad", reason="speech is found by webrtcvad (the voice extra)")
pytest.importorskip("scipy", reason="the test syllables are made with scipy's filters")

from voice_helpers import load, syllables

Wave = npt.NDArray[np.float32]


class SpectrumEncoder(SpeakerEncoder):
    """A stand-in print (no weights needed): the unit mean mel spectrum, None for silence.
    Identical sound prints identically, which is all the span logic needs."""

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, wave: Wave) -> npt.NDArray[np.float32] | None:
        self.calls += 1
        if not len(wave) or float(np.max(np.abs(wave))) < 1e-4:
            return None
        mean = mel_frames(wave).mean(axis=0)
        return (mean / np.linalg.norm(mean)).astype(np.float32)


def _encoder() -> SpeakerEncoder:
    try:
        return SpeakerEncoder(speaker.weights_path())
    except speaker.SpeakerModelMissing:
        pytest.skip("the speaker encoder's weights need: pip install --no-deps resemblyzer")


def _speech(seconds: float) -> Wave:
    """Synthetic syllables with a second of silence either side."""
    pause = np.zeros(SAMPLE_RATE, np.float32)
    return np.concatenate([pause, syllables(seconds), pause])


def test_too_little_speech_is_unjudged_not_protected() -> None:
    short = _speech(1.5)
    encoder = SpectrumEncoder()
    result = check_voices(short, short, encoder)
    assert result == VoiceCheck([], 0, result.unjudged_note, None)
    assert result.unjudged_note is not None
    assert result.unjudged_note.startswith("unjudged: too little speech")
    assert encoder.calls == 0, "no print is made of what cannot be judged"
    silence = np.zeros(10 * SAMPLE_RATE, np.float32)
    assert check_voices(silence, silence, encoder).unjudged_note is not None


def test_enough_speech_is_judged() -> None:
    wave = _speech(MIN_SPEECH_S + 3)
    result = check_voices(wave, wave, SpectrumEncoder())
    assert result.unjudged_note is None
    assert result.pieces_checked == 1


def test_long_sound_is_cut_into_spans_of_equal_speech_covering_it() -> None:
    wave = _speech(54.0)
    spoken = speech_seconds(wave)
    assert 50.0 < spoken < 60.0, spoken
    pieces = plan_pieces(wave, piece_speech_s=12.0)
    assert len(pieces) == 5  # over 48 s of speech, at most 12 s a span
    assert pieces[0].start == 0 and pieces[-1].stop == len(wave)
    assert all(a.stop == b.start for a, b in itertools.pairwise(pieces))
    lengths = [p.stop - p.start for p in pieces]
    assert max(lengths) < 1.5 * min(lengths), lengths
    spread = plan_pieces(wave, piece_speech_s=4.0, max_pieces=4)
    assert len(spread) == 4
    assert spread[0].start == 0 and spread[-1].stop == len(wave), "spread over the whole file"


def test_each_span_left_as_it_was_is_a_leak_named_by_its_time() -> None:
    original = _speech(40.0)
    pieces = plan_pieces(original)
    assert len(pieces) >= 3
    output = original.copy()
    silenced = pieces[1]
    output[silenced.start : silenced.stop] = 0.0  # this span's voice is gone
    result = check_voices(original, output, SpectrumEncoder())
    assert result.pieces_checked == len(pieces)
    assert len(result.leaks) == len(pieces) - 1
    assert result.best_score == pytest.approx(1.0, abs=1e-5)
    first = result.leaks[0]
    assert first.kind == "voice" and first.box is None
    assert first.detail.startswith(f"speech at 0.0-{pieces[0].stop / SAMPLE_RATE:.1f} s ")
    assert f"(similarity 1.00, threshold {THRESHOLD:.2f})" in first.detail
    span = f"{silenced.start / SAMPLE_RATE:.1f}-{silenced.stop / SAMPLE_RATE:.1f} s"
    assert not any(span in leak.detail for leak in result.leaks)
    summary = Verification(verdict="leak", leaks=result.leaks[:1]).summary()
    assert summary.startswith("voice: speech at 0.0-")


def test_a_stereo_array_is_refused() -> None:
    wave = _speech(4.0)
    with pytest.raises(UsageError, match="mono"):
        check_voices(np.stack([wave, wave]), wave, SpectrumEncoder())


def test_identical_output_is_a_leak_with_the_real_encoder() -> None:
    wave = _speech(8.0)
    result = check_voices(wave, wave, _encoder())
    assert result.pieces_checked == 1
    assert len(result.leaks) == 1
    assert result.best_score is not None and result.best_score > 0.99


@pytest.fixture(scope="module")
def utterance(shared_data: Path) -> Path:
    """The longest utterance of the first dev speaker (about 20 s: two spans)."""
    root = shared_data / "voices" / "librispeech_test-other"
    if not root.is_dir():
        pytest.skip(f"needs the dev voices at {root}")
    first = sorted(p for p in root.iterdir() if p.is_dir())[0]
    return max(first.glob("*.flac"), key=lambda p: p.stat().st_size)


@pytest.mark.realdata
def test_a_real_voice_left_or_barely_changed_is_a_leak(utterance: Path) -> None:
    from veil.voice.anonymize import Voice, anonymize

    encoder = _encoder()
    untouched = check_voice_files(utterance, utterance, encoder)
    assert untouched.pieces_checked >= 1 and untouched.unjudged_note is None
    assert len(untouched.leaks) == untouched.pieces_checked
    wave = load(utterance)
    nudged = anonymize(wave, SAMPLE_RATE, Voice(pitch=1.0, alpha=1.0))  # a semitone up
    assert check_voices(wave, nudged, encoder).leaks


@pytest.mark.realdata
def test_veils_anonymised_voice_is_not_a_leak(utterance: Path) -> None:
    from veil.voice.anonymize import Voice, anonymize_speech

    encoder = _encoder()
    wave = load(utterance)
    for seed in range(3):
        output, _ = anonymize_speech(wave, SAMPLE_RATE, Voice.draw(np.random.default_rng(seed)))
        result = check_voices(wave, output, encoder)
        assert result.unjudged_note is None and result.pieces_checked >= 1
        assert result.leaks == [], (seed, result.leaks)
        assert result.best_score is not None and result.best_score < THRESHOLD - 0.05


def test_the_threshold_is_the_documented_one() -> None:
    assert f"`THRESHOLD` is {THRESHOLD:.2f}" in (voices.__doc__ or "")
