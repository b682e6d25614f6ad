"""Sound for the voice tests: files read as 16 kHz mono, and made-up speech-like signals (a
pulse train through resonances, so that pitch and formants are known)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from veil.voice.sound import read_mono

RATE = 16_000
Wave = npt.NDArray[np.float32]


def load(path: Path) -> Wave:
    return read_mono(path, RATE)


def vowel(pitch_hz: float, formants_hz: tuple[float, ...], seconds: float = 1.0) -> Wave:
    """A steady vowel: a pulse train at ``pitch_hz`` through two-pole resonators."""
    from scipy.signal import lfilter

    count = int(RATE * seconds)
    pulses = np.zeros(count)
    pulses[:: round(RATE / pitch_hz)] = 1.0
    sound = pulses
    for formant in formants_hz:
        radius = np.exp(-np.pi * 80.0 / RATE)  # 80 Hz bandwidth
        theta = 2 * np.pi * formant / RATE
        sound = lfilter([1.0], [1.0, -2 * radius * np.cos(theta), radius**2], sound)
    return (0.3 * sound / np.max(np.abs(sound))).astype(np.float32)


def syllables(seconds: float = 2.0) -> Wave:
    """Speech-like sound: 180 ms vowels of changing pitch and formants, 120 ms pauses between
    (loudness rising and falling as syllables do, which a steady vowel does not)."""
    rng = np.random.default_rng(3)
    parts: list[Wave] = []
    while sum(len(p) for p in parts) < seconds * RATE:
        formants = (rng.uniform(300, 800), rng.uniform(900, 2200), rng.uniform(2400, 3000))
        parts.append(vowel(rng.uniform(100, 180), formants, seconds=0.18))
        parts.append(np.zeros(int(0.12 * RATE), np.float32))
    return np.concatenate(parts)[: int(seconds * RATE)]


def pitch_of(wave: Wave, low: float = 60.0, high: float = 500.0) -> float:
    """The fundamental by autocorrelation of the middle half."""
    middle = wave[len(wave) // 4 : 3 * len(wave) // 4].astype(np.float64)
    middle -= middle.mean()
    corr = np.correlate(middle, middle, "full")[len(middle) - 1 :]
    lags = np.arange(int(RATE / high), int(RATE / low))
    return RATE / float(lags[np.argmax(corr[lags])])


def envelope_peak(wave: Wave, below_hz: float = 4000.0) -> float:
    """Where the smoothed spectrum peaks (the strongest formant), in Hz."""
    spectrum = np.abs(np.fft.rfft(wave.astype(np.float64) * np.hanning(len(wave))))
    smooth = np.convolve(spectrum, np.ones(201) / 201, "same")
    freqs = np.fft.rfftfreq(len(wave), 1 / RATE)
    keep = freqs < below_hz
    return float(freqs[keep][np.argmax(smooth[keep])])


def tagged_wav(path: Path, seconds: float = 3.0) -> bytes:
    """``seconds`` of `syllables` as a 16 kHz 16-bit WAV recording whose artist is "Jane Doe";
    returns its samples as stored, to find (or not) in a cleaned copy."""
    import av

    pcm = np.round(syllables(seconds) * 32767).astype(np.int16)[None, :]
    with av.open(str(path), "w", format="wav") as out:
        out.metadata["artist"] = "Jane Doe"
        stream = out.add_stream("pcm_s16le", rate=RATE)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate, frame.pts = RATE, 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return pcm.tobytes()
