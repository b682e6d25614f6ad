"""A random pseudo-speaker for each file: its speaker hidden from speaker recognition.

What a speaker-verification model keys on is the shape of the vocal tract (where the formants
sit) and the pitch. Both are moved, by amounts drawn once per file and never stored:

1. pitch: a phase-vocoder time stretch and a resampling shift every harmonic by 4 to 7
   semitones, up or down;
2. vocal tract: each 20 ms frame's linear-prediction poles (the formants) are moved along the
   unit circle, angle to the power alpha (McAdams' transform, the VoicePrivacy baseline B2),
   alpha drawn from 0.40 to 0.60: further than the baseline's 0.5 to 0.9, which
   `benchmarks/voice.py` measured as too easy to see through (docs/benchmarks.md, Voices).

Moving the formants this far costs words: recognizers lose most of them (docs/benchmarks.md
measures the cost beside McAdams and gentler transforms that keep words and keep the speaker).

Everything is a short-time Fourier transform and array arithmetic over all frames at once: no
model, nothing to download.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Wave = npt.NDArray[np.float32]
_FRAME_S = 0.032  # phase vocoder window (512 samples at 16 kHz)
_LPC_FRAME_S, _LPC_STEP_S, _LPC_ORDER = 0.020, 0.010, 20  # McAdams' analysis
#: How far each stretch of speech is widened before it is changed.
SPEECH_MARGIN_S = 0.3
_FADE_S = 0.02


@dataclass(frozen=True)
class Voice:
    """One pseudo-speaker: how far the pitch moves and how the formants are warped."""

    #: Semitones, up or down.
    pitch: float
    #: Formant warp: each pole's angle (radians) to this power; below 1 squeezes the formants
    #: towards 2.5 kHz (at 16 kHz), which no real vocal tract does.
    alpha: float

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Voice:
        pitch = rng.uniform(4.0, 7.0)
        return cls(pitch=pitch if rng.random() < 0.5 else -pitch, alpha=rng.uniform(0.40, 0.60))


def anonymize(wave: Wave, rate: int, voice: Voice) -> Wave:
    """``wave`` (mono float32 in [-1, 1]) spoken by ``voice``: same length, same timing, the
    same loudness."""
    if len(wave) < int(_LPC_FRAME_S * rate) + 1:
        return wave.copy()
    n_fft = 1 << int(np.ceil(np.log2(_FRAME_S * rate)))
    shifted = _pitch_shift(wave.astype(np.float32), 2.0 ** (voice.pitch / 12.0), n_fft, n_fft // 4)
    out = _warp_formants(shifted, rate, voice.alpha)
    before = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64))))
    after = float(np.sqrt(np.mean(np.square(out, dtype=np.float64))))
    if after > 0:
        out *= before / after
    peak = float(np.max(np.abs(out)))
    if peak > 0.99:
        out *= 0.99 / peak
    return out.astype(np.float32)


def anonymize_speech(wave: Wave, rate: int, voice: Voice) -> tuple[Wave, float]:
    """`anonymize` where people may speak, the rest left as it was, and the share of the sound
    taken for speech: webrtcvad's mode 2 (its modes 0 and 1 take even near-silence for
    speech) where the loudness swings as syllables do (`speech.speech_found`: webrtcvad alone
    takes a steady tone or hum for speech), each stretch widened by 0.3 s, the change faded in
    and out over 20 ms. Music with a beat can pass for speech and is changed too: a voice left
    as it was would be a leak, a changed song is not."""
    out = anonymize(wave, rate, voice)
    speech = speech_weight(wave, rate)
    blended = out * speech + wave * (1.0 - speech)
    return blended.astype(np.float32), float(np.mean(speech > 0)) if len(speech) else 0.0


def speech_weight(wave: Wave, rate: int) -> npt.NDArray[np.float64]:
    """Per sample, 1 in speech, 0 away from it, a ramp between (see `anonymize_speech`)."""
    from .speech import VAD_RATE, WINDOW, speech_found

    at_vad_rate = _resample(wave, max(1, round(len(wave) * VAD_RATE / rate)))
    found = speech_found(at_vad_rate).astype(np.float64)
    reach = round(SPEECH_MARGIN_S * VAD_RATE / WINDOW)
    windows = np.convolve(found, np.ones(2 * reach + 1), "same") > 0
    per_sample = np.zeros(len(wave))
    window_samples = WINDOW * rate / VAD_RATE
    starts = np.round(np.arange(len(windows)) * window_samples).astype(np.int64)
    for start, is_speech in zip(starts, windows, strict=True):
        if is_speech:
            per_sample[start : start + round(window_samples) + 1] = 1.0
    if len(windows) and windows[-1]:  # the last part window belongs to the speech before it
        per_sample[starts[-1] :] = 1.0
    fade = max(1, round(_FADE_S * rate))
    return np.clip(np.convolve(per_sample, np.ones(fade) / fade, "same"), 0.0, 1.0)


def _warp_formants(wave: npt.NDArray[np.float32], rate: int, alpha: float) -> Wave:
    """McAdams' transform on every frame at once: the frame's prediction residual through the
    all-pole filter whose poles' angles are raised to ``alpha``; windowed overlap-add."""
    length = int(_LPC_FRAME_S * rate)
    step = int(_LPC_STEP_S * rate)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / (length - 1))
    window = np.sqrt(hann / (hann.sum() / step))
    count = 1 + (len(wave) - length) // step
    index = np.arange(length)[None, :] + step * np.arange(count)[:, None]
    tiny = np.finfo(np.float32).eps
    frames = (wave.astype(np.float64)[index] + tiny) * window
    order = _LPC_ORDER
    n = 1 << int(np.ceil(np.log2(4 * length)))
    spectrum = np.fft.rfft(frames, n, axis=1)
    autocorr = np.fft.irfft(np.abs(spectrum) ** 2, n, axis=1)[:, : order + 1]
    lpc = _levinson(autocorr, order)
    warped = _warped_polynomial(lpc, alpha)
    response = np.fft.rfft(lpc, n, axis=1) / np.fft.rfft(warped, n, axis=1)
    rebuilt = np.fft.irfft(spectrum * response, n, axis=1)[:, :length] * window
    out = np.zeros(len(wave))
    for i, frame in enumerate(rebuilt):  # overlap-add; cheap next to the transforms
        out[i * step : i * step + length] += frame
    return out.astype(np.float32)


def _levinson(autocorr: npt.NDArray[np.float64], order: int) -> npt.NDArray[np.float64]:
    """Prediction polynomials [1, a1, ..., a_order] of every frame (Levinson-Durbin)."""
    frames = len(autocorr)
    a = np.zeros((frames, order + 1))
    a[:, 0] = 1.0
    error = autocorr[:, 0].copy()
    for i in range(1, order + 1):
        acc = autocorr[:, i] + np.sum(a[:, 1:i] * autocorr[:, i - 1 : 0 : -1], axis=1)
        k = np.where(error > 0, -acc / np.where(error > 0, error, 1.0), 0.0)
        a[:, 1:i] = a[:, 1:i] + k[:, None] * a[:, i - 1 : 0 : -1]
        a[:, i] = k
        error = error * (1.0 - k * k)
    return a


def _warped_polynomial(lpc: npt.NDArray[np.float64], alpha: float) -> npt.NDArray[np.float64]:
    """The polynomials whose complex roots are ``lpc``'s with each angle raised to ``alpha``
    (conjugates stay conjugate, magnitudes and real roots stay)."""
    frames, order = len(lpc), lpc.shape[1] - 1
    companion = np.zeros((frames, order, order))
    companion[:, 0, :] = -lpc[:, 1:]
    companion[:, np.arange(1, order), np.arange(order - 1)] = 1.0
    roots = np.linalg.eigvals(companion)
    angle = np.angle(roots)
    complex_root = np.abs(roots.imag) > 1e-9
    moved = np.sign(angle) * np.minimum(np.abs(angle) ** alpha, np.pi)
    roots = np.where(complex_root, np.abs(roots) * np.exp(1j * moved), roots)
    poly = np.zeros((frames, order + 1), complex)
    poly[:, 0] = 1.0
    for j in range(order):  # multiply in (1 - r z^-1), one root at a time
        poly[:, 1 : j + 2] = poly[:, 1 : j + 2] - roots[:, j : j + 1] * poly[:, : j + 1]
    return poly.real


def _window(n_fft: int) -> npt.NDArray[np.float64]:
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)


def _stft(wave: npt.NDArray[np.float32], n_fft: int, hop: int) -> npt.NDArray[np.complex128]:
    padded = np.pad(wave.astype(np.float64), (n_fft // 2, n_fft // 2 + hop))
    count = 1 + (len(padded) - n_fft) // hop
    index = np.arange(n_fft)[None, :] + hop * np.arange(count)[:, None]
    return np.fft.rfft(padded[index] * _window(n_fft), axis=1)


def _istft(
    spectrum: npt.NDArray[np.complex128], n_fft: int, hop: int, length: int
) -> npt.NDArray[np.float32]:
    """Weighted overlap-add, normalised by the summed squared window."""
    frames = np.fft.irfft(spectrum, n=n_fft, axis=1) * _window(n_fft)
    total = hop * (len(frames) - 1) + n_fft
    out = np.zeros(total)
    norm = np.zeros(total)
    squared = _window(n_fft) ** 2
    for i, frame in enumerate(frames):
        out[i * hop : i * hop + n_fft] += frame
        norm[i * hop : i * hop + n_fft] += squared
    out /= np.maximum(norm, 1e-8)
    start = n_fft // 2
    return out[start : start + length].astype(np.float32)


def _pitch_shift(
    wave: npt.NDArray[np.float32], factor: float, n_fft: int, hop: int
) -> npt.NDArray[np.float32]:
    """Every frequency times ``factor``, duration kept: stretched by ``factor`` with a phase
    vocoder, then resampled back to the original length."""
    if abs(factor - 1.0) < 1e-3:
        return wave
    spectrum = _stft(wave, n_fft, hop)
    steps = np.arange(0, len(spectrum) - 1, 1.0 / factor)
    base = np.floor(steps).astype(np.int64)
    frac = (steps - base)[:, None]
    left, right = spectrum[base], spectrum[base + 1]
    magnitude = (1 - frac) * np.abs(left) + frac * np.abs(right)
    expected = 2 * np.pi * hop * np.arange(spectrum.shape[1]) / n_fft
    advance = np.angle(right) - np.angle(left) - expected
    advance = advance - 2 * np.pi * np.round(advance / (2 * np.pi)) + expected
    phase = np.angle(spectrum[0]) + np.concatenate(
        [np.zeros((1, spectrum.shape[1])), np.cumsum(advance[:-1], axis=0)]
    )
    stretched = _istft(magnitude * np.exp(1j * phase), n_fft, hop, int(len(wave) * factor))
    return _resample(stretched, len(wave))


def _resample(wave: npt.NDArray[np.float32], length: int) -> npt.NDArray[np.float32]:
    """``wave`` squeezed or spread to ``length`` samples in the frequency domain: what lies
    above the new Nyquist frequency is dropped, not folded back (no aliasing)."""
    if length == len(wave):  # sound already at the rate asked for (speech found at 16 kHz)
        return wave
    spectrum = np.fft.rfft(wave.astype(np.float64))
    bins = length // 2 + 1
    kept = np.zeros(bins, complex)
    kept[: min(bins, len(spectrum))] = spectrum[:bins]
    return (np.fft.irfft(kept, n=length) * (length / max(1, len(wave)))).astype(np.float32)
