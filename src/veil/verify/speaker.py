"""The GE2E speaker encoder that ships in the ``resemblyzer`` wheel, run in numpy.

The attacker of METRICS.md section 5 and veil's own check of anonymised speech: a 3-layer LSTM
(40 mel bands in, 256 hidden) whose last state, through a linear layer and a ReLU, is a
256-number voice print; two prints of one voice have a high cosine. resemblyzer itself needs
torch and librosa (gigabytes) for what is a few small matrix products, so veil reads the
weights from the wheel's ``pretrained.pt`` and repeats resemblyzer's steps here: volume up to
-30 dBFS, long silences cut with webrtcvad, a power mel spectrogram (librosa's defaults: 25 ms
Hann window, 10 ms hop, Slaney mel bands), 1.6 s partials at 1.3 a second, their prints
averaged. Prints live in memory only: they are biometric templates.

``pretrained.pt`` is torch's legacy format: a few pickles, then the raw tensor storages. It is
read by an unpickler that knows only the three names a state dict needs and refuses any other,
so the file cannot run code.
"""

from __future__ import annotations

import collections
import importlib.util
import io
import pickle
import struct
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from ..errors import VeilError
from ..voice.speech import WINDOW, speech_windows

Wave = npt.NDArray[np.float32]
SAMPLE_RATE = 16_000
_N_FFT, _HOP, _MELS = 400, 160, 40  # 25 ms window, 10 ms step
_PARTIAL = 160  # frames in a partial utterance (1.6 s)
_RATE, _MIN_COVERAGE = 1.3, 0.75  # partials a second; the last one is kept if this full
_VAD_SMOOTH, _VAD_MAX_SILENCE = 8, 6
_TARGET_DBFS = -30.0
_INT16_MAX = 2**15 - 1


class SpeakerModelMissing(VeilError):
    """The speaker encoder's weights (the ``resemblyzer`` wheel) are not installed."""


class SpeakerModelFormatError(VeilError):
    """``pretrained.pt`` is not the state dict this module knows how to read."""


def weights_path() -> Path:
    """Where the wheel put ``pretrained.pt``, found without importing resemblyzer (its own
    ``__init__`` imports torch and librosa, which veil does not install)."""
    spec = importlib.util.find_spec("resemblyzer")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / "pretrained.pt"
        if path.is_file():
            return path
    raise SpeakerModelMissing(
        "the speaker encoder ships in the resemblyzer wheel: pip install --no-deps "
        "'resemblyzer==0.1.4' (its torch and librosa are not needed)"
    )


# -- reading torch's legacy format --------------------------------------------------------
class _Storage:
    def __init__(self, key: str, size: int) -> None:
        self.key, self.size = key, size


def _rebuild_tensor(storage: _Storage, offset: int, size: Any, stride: Any, *_: Any) -> Any:
    return ("tensor", storage, offset, tuple(size), tuple(stride))


class _StateDictUnpickler(pickle.Unpickler):
    _NAMES: ClassVar[dict[tuple[str, str], Any]] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch", "FloatStorage"): "FloatStorage",
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._NAMES[(module, name)]
        except KeyError:
            raise SpeakerModelFormatError(f"unexpected {module}.{name} in the model") from None

    def persistent_load(self, pid: Any) -> _Storage:
        kind, storage_type, key, _location, size = pid[:5]
        if kind != "storage" or storage_type != "FloatStorage":
            raise SpeakerModelFormatError(f"unexpected storage {pid!r} in the model")
        return _Storage(str(key), int(size))


def load_state(path: Path) -> dict[str, npt.NDArray[np.float32]]:
    """The model's tensors by name, from torch's legacy (non-zip) serialisation."""
    data = path.read_bytes()
    stream = io.BytesIO(data)
    try:
        for _ in range(3):  # magic number, protocol version, system info
            pickle.load(stream)
        checkpoint = _StateDictUnpickler(stream).load()
        keys = pickle.load(stream)
        storages: dict[str, npt.NDArray[np.float32]] = {}
        for key in keys:
            (count,) = struct.unpack("<q", stream.read(8))
            raw = stream.read(count * 4)
            if len(raw) != count * 4:
                raise SpeakerModelFormatError("the model file is truncated")
            storages[str(key)] = np.frombuffer(raw, "<f4")
        state = checkpoint["model_state"]
        tensors = {}
        for name, (_, storage, offset, size, stride) in state.items():
            flat = storages[storage.key]
            tensors[name] = np.lib.stride_tricks.as_strided(
                flat[offset:], size, tuple(s * 4 for s in stride)
            ).astype(np.float32)
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError) as exc:
        raise SpeakerModelFormatError(f"cannot read the speaker model: {exc}") from exc
    return tensors


# -- resemblyzer's preprocessing ----------------------------------------------------------
def _hz_to_mel(hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Slaney's mel scale (librosa's default): linear to 1 kHz, logarithmic above."""
    linear = hz / (200.0 / 3)
    log = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log, linear)


def _mel_to_hz(mel: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    linear = mel * (200.0 / 3)
    log = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
    return np.where(mel >= 15.0, log, linear)


def _mel_filters() -> npt.NDArray[np.float32]:
    """librosa.filters.mel(sr=16000, n_fft=400, n_mels=40): triangles, Slaney-normalised."""
    fft_hz = np.linspace(0, SAMPLE_RATE / 2, 1 + _N_FFT // 2)
    edges = _mel_to_hz(np.linspace(0.0, _hz_to_mel(np.array(SAMPLE_RATE / 2.0)), _MELS + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


_MEL = _mel_filters()
_WINDOW = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(_N_FFT) / _N_FFT)).astype(np.float32)


def mel_frames(wave: Wave) -> npt.NDArray[np.float32]:
    """The power mel spectrogram, frames x 40 (librosa's centred, zero-padded STFT)."""
    padded = np.pad(wave.astype(np.float32), _N_FFT // 2)
    count = 1 + (len(padded) - _N_FFT) // _HOP
    index = np.arange(_N_FFT)[None, :] + _HOP * np.arange(count)[:, None]
    power = np.abs(np.fft.rfft(padded[index] * _WINDOW, axis=1)) ** 2
    return (power.astype(np.float32) @ _MEL.T).astype(np.float32)


def louder(wave: Wave) -> Wave:
    """Raised to -30 dBFS when quieter (never lowered)."""
    rms = float(np.sqrt(np.mean((wave.astype(np.float64) * _INT16_MAX) ** 2)))
    if rms == 0.0:
        return wave
    change = _TARGET_DBFS - 20 * np.log10(rms / _INT16_MAX)
    return wave if change < 0 else (wave * 10 ** (change / 20)).astype(np.float32)


def speech_mask(wave: Wave) -> npt.NDArray[np.bool_]:
    """Per 30 ms window: speech or not (webrtcvad, most aggressive), smoothed over 8 windows
    and widened by 3 each way, as resemblyzer trims silences."""
    flags = speech_windows(wave, aggressiveness=3).astype(np.float64)
    if not len(flags):
        return np.zeros(0, bool)
    width = _VAD_SMOOTH
    padded = np.concatenate((np.zeros((width - 1) // 2), flags, np.zeros(width // 2)))
    sums = np.cumsum(padded)
    sums[width:] = sums[width:] - sums[:-width]
    voiced = np.round(sums[width - 1 :] / width)
    # scipy's binary dilation by 7 ones, centred: a voiced window marks 3 on each side.
    widened: npt.NDArray[np.bool_] = np.convolve(voiced, np.ones(_VAD_MAX_SILENCE + 1), "same") > 0
    return widened


def without_long_silences(wave: Wave) -> Wave:
    mask = speech_mask(wave)
    usable = len(mask) * WINDOW
    return wave[:usable][np.repeat(mask, WINDOW)]


def _partials(samples: int) -> list[slice]:
    """resemblyzer's ``compute_partial_slices``: 160-frame windows every 1/1.3 s; the last
    kept when at least 75% of it is audio."""
    frames = int(np.ceil((samples + 1) / _HOP))
    step = int(np.round((SAMPLE_RATE / _RATE) / _HOP))
    starts = range(0, max(1, frames - _PARTIAL + step + 1), step)
    slices = [slice(s, s + _PARTIAL) for s in starts]
    last = slices[-1]
    coverage = (samples - last.start * _HOP) / (_PARTIAL * _HOP)
    if coverage < _MIN_COVERAGE and len(slices) > 1:
        slices = slices[:-1]
    return slices


class SpeakerEncoder:
    """Voice prints of 16 kHz mono speech; ``prints`` of nothing audible is None."""

    def __init__(self, path: Path | None = None) -> None:
        state = load_state(path or weights_path())
        try:
            self._layers = [
                (
                    np.ascontiguousarray(state[f"lstm.weight_ih_l{i}"].T),
                    np.ascontiguousarray(state[f"lstm.weight_hh_l{i}"].T),
                    state[f"lstm.bias_ih_l{i}"] + state[f"lstm.bias_hh_l{i}"],
                )
                for i in range(3)
            ]
            self._linear = (np.ascontiguousarray(state["linear.weight"].T), state["linear.bias"])
        except KeyError as exc:
            raise SpeakerModelFormatError(f"the speaker model lacks {exc}") from exc

    def embed(self, wave: Wave) -> npt.NDArray[np.float32] | None:
        """The L2-normed voice print of an utterance (after resemblyzer's preprocessing), or
        None when no speech is left once silences are cut."""
        speech = without_long_silences(louder(wave))
        if len(speech) < _HOP:
            return None
        slices = _partials(len(speech))
        end = slices[-1].stop * _HOP
        if end > len(speech):
            speech = np.pad(speech, (0, end - len(speech)))
        mel = mel_frames(speech)
        batch = np.stack([mel[s] for s in slices])
        partial = self._forward(batch)
        mean = partial.mean(axis=0)
        voice_print: npt.NDArray[np.float32] = (mean / np.linalg.norm(mean)).astype(np.float32)
        return voice_print

    def _forward(self, mels: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """The LSTM over (batch, 160, 40) frames; gates in torch's order i, f, g, o."""
        x = mels
        for w_in, w_hidden, bias in self._layers:
            batch, steps, _ = x.shape
            hidden = w_hidden.shape[0]
            projected = x @ w_in + bias  # every step's input part at once
            h = np.zeros((batch, hidden), np.float32)
            c = np.zeros((batch, hidden), np.float32)
            out = np.empty((batch, steps, hidden), np.float32)
            for t in range(steps):
                gates = projected[:, t] + h @ w_hidden
                i, f, g, o = np.split(gates, 4, axis=1)
                c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
                h = _sigmoid(o) * np.tanh(c)
                out[:, t] = h
            x = out
        w, b = self._linear
        raw = np.maximum(x[:, -1] @ w + b, 0.0)
        prints: npt.NDArray[np.float32] = (raw / np.linalg.norm(raw, axis=1, keepdims=True)).astype(
            np.float32
        )
        return prints


def _sigmoid(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    out: npt.NDArray[np.float32] = (0.5 * (np.tanh(0.5 * x) + 1.0)).astype(np.float32)
    return out
