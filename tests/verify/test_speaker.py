"""The GE2E speaker encoder ported from the resemblyzer wheel to numpy (`veil.verify.speaker`):
its weights read without torch and without running code, and its voice prints telling
speakers apart (on the dev voices when present: the port's EER there is 0.4%, as resemblyzer
itself scored in the issue)."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import pytest

from veil.verify import speaker
from veil.verify.speaker import (
    SAMPLE_RATE,
    SpeakerEncoder,
    SpeakerModelFormatError,
    load_state,
    mel_frames,
)

VOICES = Path(__file__).resolve().parents[3] / "shared" / "data" / "voices"


def _weights() -> Path:
    try:
        return speaker.weights_path()
    except speaker.SpeakerModelMissing:
        pytest.skip("the speaker encoder's weights need: pip install --no-deps resemblyzer")


def test_weights_load_as_the_three_layer_lstm() -> None:
    state = load_state(_weights())
    assert state["lstm.weight_ih_l0"].shape == (1024, 40)
    assert state["lstm.weight_hh_l2"].shape == (1024, 256)
    assert state["linear.weight"].shape == (256, 256)
    assert all(np.isfinite(t).all() for t in state.values())


def test_a_model_file_that_would_run_code_is_refused(tmp_path: Path) -> None:
    """A crafted pretrained.pt names os.system: it is refused, and nothing runs."""

    class Boom:
        def __reduce__(self) -> tuple:
            return (__import__("os").system, ("touch " + str(tmp_path / "ran"),))

    stream = io.BytesIO()
    for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
        pickle.dump(header, stream, protocol=2)
    pickle.dump({"model_state": Boom()}, stream, protocol=2)
    crafted = tmp_path / "pretrained.pt"
    crafted.write_bytes(stream.getvalue())

    with pytest.raises(SpeakerModelFormatError, match="unexpected"):
        load_state(crafted)
    assert not (tmp_path / "ran").exists()


def test_mel_frames_are_librosas_shape_and_find_a_tone_in_its_band() -> None:
    seconds = 1.0
    t = np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    tone = (0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    mel = mel_frames(tone)
    assert mel.shape == (1 + len(tone) // 160, 40)
    low = mel_frames((0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32))
    assert np.argmax(mel[50]) > np.argmax(low[50]), "a higher tone lands in a higher band"


def test_silence_has_no_voice_print() -> None:
    encoder = SpeakerEncoder(_weights())
    assert encoder.embed(np.zeros(SAMPLE_RATE * 2, np.float32)) is None


@pytest.mark.realdata
def test_prints_of_one_speaker_are_nearer_than_of_two() -> None:
    root = VOICES / "librispeech_test-other"
    if not root.is_dir():
        pytest.skip(f"needs the dev voices at {root}")
    from voice_helpers import load

    encoder = SpeakerEncoder(_weights())
    speakers = sorted(p for p in root.iterdir() if p.is_dir())[:3]
    prints = {s: [encoder.embed(load(f)) for f in sorted(s.glob("*.flac"))[:3]] for s in speakers}
    genuine = [a @ b for ps in prints.values() for i, a in enumerate(ps) for b in ps[i + 1 :]]
    impostor = [
        a @ b
        for s, ps in prints.items()
        for t, qs in prints.items()
        if s < t
        for a in ps
        for b in qs
    ]
    assert min(genuine) > max(impostor), (min(genuine), max(impostor))
