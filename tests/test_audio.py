"""lamina.audio: reading WAV files (and refusing the ones it cannot read), spectrograms, mel bands, MFCC."""

import io
import struct
import wave

import numpy as np
import pytest

from lamina import audio

RATE = 8000


def wav_bytes(samples, rate=RATE, width=2, channels=1):
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples).tobytes())
    return buffer.getvalue()


def tone(hz, seconds=0.5, rate=RATE, amplitude=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_read_wav_round_trips_16_bit_mono(tmp_path):
    pcm = np.array([0, 1, -1, 32767, -32768, 1000], dtype="<i2")
    path = tmp_path / "six.wav"
    path.write_bytes(wav_bytes(pcm, rate=16000))
    samples, rate = audio.read_wav(path)
    assert rate == 16000 and samples.dtype == np.float32
    np.testing.assert_array_equal(samples, pcm / np.float32(32768))
    again, _ = audio.read_wav(path.read_bytes(), name="six.wav")
    np.testing.assert_array_equal(again, samples)


def float_wav_header():
    """A 32-bit float WAV (format tag 3): valid, but not the PCM lamina reads."""
    fmt = struct.pack("<HHIIHH", 3, 1, RATE, RATE * 4, 4, 32)
    data = np.zeros(10, np.float32).tobytes()
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize("make, message", [
    (lambda: wav_bytes(np.zeros(10, np.uint8), width=1), "8-bit with 1 channel"),
    (lambda: wav_bytes(np.zeros(20, "<i2"), channels=2), "16-bit with 2 channel"),
    (lambda: wav_bytes(np.zeros(10, "<i4"), width=4), "32-bit with 1 channel"),
    (lambda: wav_bytes(np.zeros(100, "<i2"))[:-51], "truncated: the header promises 100 samples, the file holds 74"),
    (lambda: wav_bytes(np.zeros(100, "<i2"))[:20], "not a WAV file"),
    (lambda: b"\x89PNG\r\n\x1a\n" + bytes(100), "not a WAV file"),
    (lambda: b"", "not a WAV file"),
    (float_wav_header, "not a WAV file lamina can read .*format"),
])
def test_read_wav_refuses_what_it_cannot_read_naming_the_file(tmp_path, make, message):
    path = tmp_path / "hostile.wav"
    path.write_bytes(make())
    with pytest.raises(audio.AudioError, match=message) as info:
        audio.read_wav(path)
    assert str(path) in str(info.value)


def test_a_header_claiming_gigabytes_is_refused_without_allocating_them():
    data = bytearray(wav_bytes(np.zeros(8, "<i2")))
    data[40:44] = struct.pack("<I", 0xFFFF0000)  # the data chunk's size
    with pytest.raises(audio.AudioError, match="truncated.*holds 8"):
        audio.read_wav(bytes(data), name="liar.wav")


def test_frames_cover_every_sample_and_keep_leading_axes():
    x = np.arange(10, dtype=np.float32)
    framed = audio.frames(x, 4, 3)  # starts 0, 3, 6; the last frame ends at 10 exactly
    assert framed.shape == (3, 4) and framed[-1].tolist() == [6, 7, 8, 9]
    assert audio.frames(np.arange(11.0), 4, 3)[-1].tolist() == [9, 10, 0, 0]  # the tail, zero-padded
    assert audio.frames(np.ones(2), 4, 3).tolist() == [[1, 1, 0, 0]]  # shorter than a frame: one frame
    assert audio.frames(np.zeros((2, 5, 10)), 4, 3).shape == (2, 5, 3, 4)


@pytest.mark.parametrize("hz", [150, 440, 1000, 2500, 3600])
def test_a_tone_lands_in_the_mel_band_nearest_its_pitch(hz):
    features = audio.log_mel(tone(hz), RATE)
    assert features.shape == (48, 40) and features.dtype == np.float32
    centres = audio.mel_to_hz(np.linspace(audio.hz_to_mel(0), audio.hz_to_mel(RATE / 2), 42))[1:-1]
    loudest = features.mean(axis=0).argmax()
    assert loudest in np.argsort(np.abs(centres - hz))[:2]  # between two centres, either may win
    assert features.mean(axis=0)[loudest] - np.median(features) > 5  # and far above the rest


def test_log_mel_is_louder_for_a_louder_sound_and_finite_for_silence():
    quiet, loud = audio.log_mel(tone(440, amplitude=0.01), RATE), audio.log_mel(tone(440, amplitude=0.5), RATE)
    assert (loud.max(axis=1) > quiet.max(axis=1) + 5).all()  # 50x the amplitude: log(2500) ~ 7.8
    silence = audio.log_mel(np.zeros(800, np.float32), RATE)
    np.testing.assert_allclose(silence, np.log(np.float32(1e-6)))


def test_mel_filterbank_has_no_dead_bands_and_covers_the_range():
    bank = audio.mel_filterbank(40, 256, RATE)
    assert bank.shape == (40, 129) and bank.dtype == np.float32 and bank.min() >= 0 and bank.max() <= 1
    assert (bank.sum(axis=1) > 0).all()  # every band sees at least one FFT bin
    assert (bank[:, 1:-1].sum(axis=0) > 0).all()  # every bin between 0 Hz and Nyquist is heard
    np.testing.assert_allclose(audio.mel_to_hz(audio.hz_to_mel([0.0, 700.0, 4000.0])), [0, 700, 4000], atol=1e-9)
    with pytest.raises(ValueError, match="mel_filterbank: need 0 <= f_min < f_max"):
        audio.mel_filterbank(40, 256, RATE, f_max=5000)


def test_power_spectrogram_of_a_bin_centred_sine():
    n_fft, amplitude = 256, 0.5
    bin_index = 32  # 1000 Hz at 8 kHz: exactly on an FFT bin
    power = audio.power_spectrogram(tone(1000, amplitude=amplitude), n_fft, 80)
    assert power.dtype == np.float32 and power.argmax(axis=1)[:-1].tolist() == [bin_index] * (len(power) - 1)
    # a periodic Hann window's coefficients sum to n_fft / 2, so the peak is (amplitude / 2 * n_fft / 2) ** 2
    np.testing.assert_allclose(power[:-1, bin_index], (amplitude * n_fft / 4) ** 2, rtol=1e-3)


@pytest.mark.torch
def test_power_spectrogram_matches_torch_stft():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    ours = audio.power_spectrogram(x, 256, 80)
    spec = torch.stft(torch.tensor(x), 256, 80, window=torch.hann_window(256), center=False, return_complex=True)
    theirs = spec.abs().square().T.detach().numpy()  # torch drops the zero-padded tail frame; compare the others
    np.testing.assert_allclose(ours[:len(theirs)], theirs, rtol=1e-4, atol=1e-3)


def test_dct_matrix_is_the_orthonormal_dct_ii():
    basis = audio.dct_matrix(40, 40)
    np.testing.assert_allclose(basis @ basis.T, np.eye(40), atol=1e-5)
    x = np.random.default_rng(1).standard_normal(40)
    n = np.arange(40)
    direct = [np.sqrt((1 if k == 0 else 2) / 40) * (x * np.cos(np.pi * k * (2 * n + 1) / 80)).sum() for k in range(3)]
    np.testing.assert_allclose(audio.dct_matrix(3, 40) @ x, direct, rtol=1e-5, atol=1e-5)
    scipy_fft = pytest.importorskip("scipy.fft")
    np.testing.assert_allclose(basis @ x, scipy_fft.dct(x, norm="ortho"), rtol=1e-5, atol=1e-5)


def test_mfcc_first_coefficient_is_the_scaled_mean_log_energy():
    samples = tone(700)
    coefficients, bands = audio.mfcc(samples, RATE, n_mfcc=13), audio.log_mel(samples, RATE)
    assert coefficients.shape == (48, 13) and coefficients.dtype == np.float32
    np.testing.assert_allclose(coefficients[:, 0], bands.sum(axis=1) / np.sqrt(40), rtol=1e-4)


def test_speech_features_ignore_loudness_and_sample_rate():
    words = tone(300, 0.3) + tone(1200, 0.3, amplitude=0.2)
    features = audio.speech_features(words, RATE)
    assert features.shape == (80, 40) and features.dtype == np.float32 and (features[30:] == 0).all()
    np.testing.assert_allclose(audio.speech_features(words * 0.05, RATE), features, atol=1e-4)
    twice_the_rate = audio.speech_features(tone(300, 0.3, 16000) + tone(1200, 0.3, 16000, 0.2), 16000)
    assert np.corrcoef(twice_the_rate[:28].ravel(), features[:28].ravel())[0, 1] > 0.95
    assert audio.speech_features(words, RATE, frames=20, kind="mfcc").shape == (20, 13)
    with pytest.raises(ValueError, match="speech_features: need a sample rate of at least 8 kHz, got 4000 Hz"):
        audio.speech_features(words, 4000)


def test_fix_frames_crops_or_pads_with_the_fill():
    features = np.arange(12, dtype=np.float32).reshape(6, 2)
    assert audio.fix_frames(features, 4, 0).tolist() == features[:4].tolist()
    padded = audio.fix_frames(features, 8, np.array([-1, -2], np.float32))
    assert padded.shape == (8, 2) and padded.dtype == np.float32 and padded[6:].tolist() == [[-1, -2], [-1, -2]]
