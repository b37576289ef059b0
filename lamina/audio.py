"""Sound as numbers: reading WAV files, and the log-mel spectrogram a speech network listens to.

A recording is a long row of air-pressure samples (8,000 a second for the spoken digits). Networks
hear better through the representation the ear uses: short overlapping frames, the energy of each
frame per frequency (a power spectrum), pooled into bands evenly spaced on the mel scale (fine at
low pitch, coarse at high pitch, as human hearing is), on a log scale (loudness is heard in ratios).
MFCCs go one step further and decorrelate the bands with a DCT, for small models.

Everything here is plain NumPy and works on float32; features come out as (..., frames, bands).

>>> t = np.arange(8000) / 8000
>>> features = log_mel(np.sin(2 * np.pi * 440 * t), 8000)
>>> features.shape, features.dtype
((98, 40), dtype('float32'))
"""

import io
import os
import wave

import numpy as np

from lamina.errors import LaminaError
from lamina.files import regular_file_size


class AudioError(LaminaError, ValueError):
    """A file is not audio lamina can read: not a WAV, not 16-bit PCM mono, or cut short."""


def read_wav(source, name=None):
    """(samples, sample_rate) of a 16-bit PCM mono WAV: float32 samples in [-1, 1).

    `source` is a path or the file's bytes (then `name` says what to call it in errors). Anything else
    (8- or 24-bit, float, stereo, compressed, truncated, not a WAV) raises AudioError naming the file.
    The file is read whole first, so a header that claims more samples than the file holds cannot make
    the reader allocate more than the file's size.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name = bytes(source), name or "<WAV bytes>"
    else:
        name = name or os.fspath(source)
        regular_file_size(source, AudioError, "audio")  # a FIFO or a device would block or never end
        with open(source, "rb") as f:
            data = f.read()
    try:
        with wave.open(io.BytesIO(data)) as w:
            channels, width, rate, frames = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            if width != 2 or channels != 1:
                raise AudioError(f"{name}: {8 * width}-bit with {channels} channel(s); lamina reads only "
                                 "16-bit PCM mono WAV (convert it, e.g. sox in.wav -b 16 -c 1 out.wav)")
            pcm = w.readframes(frames)
    except (wave.Error, EOFError) as e:  # EOFError: the file ends inside its header
        raise AudioError(f"{name}: not a WAV file lamina can read ({e or 'it ends inside the header'})") from None
    if len(pcm) != 2 * frames:
        raise AudioError(f"{name}: truncated: the header promises {frames} samples, the file holds {len(pcm) // 2}")
    if rate <= 0:
        raise AudioError(f"{name}: sample rate {rate} in the header")
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) * np.float32(1 / 32768), rate


def frames(samples, frame_length, hop_length):
    """Overlapping frames along the last axis: (..., n) -> (..., count, frame_length), a view.

    The end is padded with zeros so that every sample lands in a frame, and a signal shorter than one
    frame still gives one frame.
    """
    samples = np.asarray(samples)
    n = samples.shape[-1]
    count = 1 + max(0, -(-(n - frame_length) // hop_length))  # ceil, so the tail is covered
    padding = (count - 1) * hop_length + frame_length - n
    padded = np.pad(samples, [(0, 0)] * (samples.ndim - 1) + [(0, padding)])
    return np.lib.stride_tricks.sliding_window_view(padded, frame_length, axis=-1)[..., ::hop_length, :]


def power_spectrogram(samples, n_fft=256, hop_length=80):
    """|rFFT|^2 of Hann-windowed frames: (..., n) -> (..., frames, n_fft // 2 + 1), float32."""
    window = np.hanning(n_fft + 1)[:-1].astype(np.float32)  # periodic Hann: overlapping frames sum evenly
    spectrum = np.fft.rfft(frames(np.asarray(samples, dtype=np.float32), n_fft, hop_length) * window, axis=-1)
    return (spectrum.real ** 2 + spectrum.imag ** 2).astype(np.float32, copy=False)


def hz_to_mel(hz):
    """The mel scale (HTK's formula): equal steps sound equally far apart in pitch."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_mels, n_fft, sample_rate, f_min=0.0, f_max=None):
    """(n_mels, n_fft // 2 + 1) triangular filters, centres evenly spaced in mel between f_min and f_max.

    Each filter rises from its left neighbour's centre to its own and falls to its right neighbour's,
    with peak 1, so a pure tone lands in the band (or two) whose centre is nearest its pitch.
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"mel_filterbank: need 0 <= f_min < f_max <= sample_rate / 2, "
                         f"got f_min={f_min}, f_max={f_max}, sample_rate={sample_rate}")
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    bins = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising, falling = (bins - left) / (centre - left), (right - bins) / (right - centre)
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


def mel_spectrogram(samples, sample_rate, n_mels=40, n_fft=256, hop_length=80, f_min=0.0, f_max=None):
    """The energy in each mel band of each frame: (..., n) samples -> (..., frames, n_mels) float32."""
    return power_spectrogram(samples, n_fft, hop_length) @ mel_filterbank(n_mels, n_fft, sample_rate, f_min, f_max).T


def log_mel(samples, sample_rate, n_mels=40, n_fft=256, hop_length=80, f_min=0.0, f_max=None, floor=1e-6):
    """Log-mel spectrogram: (..., n) samples -> (..., frames, n_mels) float32, natural log.

    Defaults suit 8 kHz speech: 32 ms frames every 10 ms, 40 bands up to 4 kHz. `floor` is added
    before the log so silence gives log(floor) instead of -inf.
    """
    bands = mel_spectrogram(samples, sample_rate, n_mels, n_fft, hop_length, f_min, f_max)
    return np.log(bands + np.float32(floor))


def dct_matrix(n_out, n_in):
    """The first n_out rows of the orthonormal DCT-II of length n_in, as a float32 (n_out, n_in) matrix."""
    k, n = np.arange(n_out)[:, None], np.arange(n_in)[None, :]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * np.sqrt(2.0 / n_in)
    basis[0] /= np.sqrt(2.0)
    return basis.astype(np.float32)


def mfcc(samples, sample_rate, n_mfcc=13, **log_mel_args):
    """Mel-frequency cepstral coefficients: the DCT-II of each log-mel frame, first n_mfcc kept."""
    bands = log_mel(samples, sample_rate, **log_mel_args)
    return bands @ dct_matrix(n_mfcc, bands.shape[-1]).T


def speech_features(samples, sample_rate, frames=80, kind="logmel", n_mels=40, n_mfcc=13):
    """A recording as one fixed-size float32 input for a speech network: (frames, n_mels or n_mfcc).

    32 ms windows every 10 ms and bands from 0 to 4 kHz whatever the sample rate (at least 8 kHz), so
    a 16 or 44.1 kHz recording gives the same kind of picture as FSDD's 8 kHz ones without resampling.
    The log is floored 60 dB below the recording's loudest band, each band has the recording's own
    mean subtracted and everything is divided by the recording's standard deviation: loudness and
    microphone colour drop out, and no training-set statistics are needed to read a new file. Then
    cropped or padded with zeros (the recording's average) to `frames`.
    """
    if sample_rate < 8000:
        raise ValueError(f"speech_features: need a sample rate of at least 8 kHz, got {sample_rate} Hz")
    if kind not in ("logmel", "mfcc"):
        raise ValueError(f"speech_features: kind must be 'logmel' or 'mfcc', not {kind!r}")
    n_fft, hop = round(0.032 * sample_rate), round(0.010 * sample_rate)
    energy = mel_spectrogram(samples, sample_rate, n_mels, n_fft, hop, f_max=4000.0)
    bands = np.log(energy + (energy.max() * np.float32(1e-6) + np.float32(1e-30)))
    if kind == "mfcc":
        bands = bands @ dct_matrix(n_mfcc, n_mels).T
    bands = (bands - bands.mean(axis=0)) / (bands.std() + np.float32(1e-5))
    return fix_frames(bands, frames, 0).astype(np.float32, copy=False)


def fix_frames(features, count, fill):
    """Crop or pad (with `fill`) a (frames, bands) array to exactly `count` frames, keeping the start.

    For models that need one input size; recordings trimmed to the word lose only trailing frames.
    """
    features = np.asarray(features)
    if len(features) >= count:
        return features[:count]
    padding = np.full((count - len(features),) + features.shape[1:], fill, dtype=features.dtype)
    return np.concatenate([features, padding])


__all__ = ["AudioError", "dct_matrix", "fix_frames", "frames", "hz_to_mel", "log_mel", "mel_filterbank", "mel_to_hz",
           "mel_spectrogram", "mfcc", "power_spectrogram", "read_wav", "speech_features"]
