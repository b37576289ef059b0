"""The sequence datasets: spoken digits (FSDD), names, and lines of handwritten digits."""

import io
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest

import lamina
from lamina import datasets
from lamina.datasets import speech, text

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SHARED_FSDD = SHARED_DATA / "fsdd" / speech.FSDD_ARCHIVE
SHARED_NAMES = SHARED_DATA / "names" / "names.txt"
needs_fsdd = pytest.mark.skipif(not SHARED_FSDD.exists(), reason="needs ../shared/data/fsdd")
needs_names = pytest.mark.skipif(not SHARED_NAMES.exists(), reason="needs ../shared/data/names")


@pytest.fixture
def shared_data(monkeypatch):
    monkeypatch.setenv("LAMINA_DATA", str(SHARED_DATA))


def serve(monkeypatch, payload):
    """Make every download answer with `payload` (bytes), or fail when it is an exception."""
    def urlopen(url, timeout):
        if isinstance(payload, Exception):
            raise payload
        return io.BytesIO(payload)

    monkeypatch.setattr(datasets.cache.urllib.request, "urlopen", urlopen)


# --- spoken digits ---------------------------------------------------------------------------------
@needs_fsdd
def test_spoken_digits_official_split(shared_data):
    (x_train, y_train, s_train), (x_test, y_test, s_test) = datasets.spoken_digits()
    assert len(x_train) == len(y_train) == len(s_train) == 2700 and len(x_test) == 300
    assert all(w.dtype == np.float32 and w.ndim == 1 for w in x_train[:50] + x_test[:50])
    assert min(map(len, x_train + x_test)) == 1148 and max(map(len, x_train + x_test)) == 18262
    assert max(np.abs(w).max() for w in x_test) <= 1
    assert np.bincount(y_test).tolist() == [30] * 10 and sorted(set(s_test)) == list(datasets.SPEAKERS)
    assert [(s_test == s).sum() for s in datasets.SPEAKERS] == [50] * 6


@needs_fsdd
def test_spoken_digits_held_out_speaker_and_features(shared_data):
    (x_train, y_train, s_train), (x_test, y_test, s_test) = datasets.spoken_digits("theo", features="logmel")
    assert x_train.shape == (2500, 80, 40) and x_test.shape == (500, 80, 40) and x_train.dtype == np.float32
    assert set(s_test) == {"theo"} and "theo" not in set(s_train) and np.bincount(y_test).tolist() == [50] * 10
    assert np.isfinite(x_train).all() and np.abs(x_train.mean(axis=1)).mean() < 0.05  # each normalized alone
    assert (x_train[:, -1] == 0).all(axis=1).mean() > 0.9  # most recordings are shorter than 0.8 s: padded
    (m_train, _, _), _ = datasets.spoken_digits(features="mfcc", frames=50)
    assert m_train.shape == (2700, 50, 13)
    with pytest.raises(ValueError, match="test_speaker must be one of george, .*not 'zoe'"):
        datasets.spoken_digits("zoe")
    with pytest.raises(ValueError, match="features must be None, 'logmel' or 'mfcc'"):
        datasets.spoken_digits(features="wavelets")


@needs_fsdd
@pytest.mark.slow
def test_an_mlp_learns_spoken_digits_from_log_mel_features(shared_data):
    lamina.manual_seed(0)
    (x_train, y_train), (x_test, y_test) = datasets.load("spoken-digits")
    x_train, x_test = x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)
    model = lamina.nn.Sequential(lamina.nn.Linear(80 * 40, 128), lamina.nn.ReLU(), lamina.nn.Linear(128, 10))
    model.compile(lamina.optim.Adam(model.parameters(), lr=1e-3), "cross_entropy", ["accuracy"])
    model.fit(x_train, y_train, epochs=8, batch_size=64, verbose=0)
    assert model.evaluate(x_test, y_test)["accuracy"] > 0.85  # chance is 0.1; 30 epochs reach ~0.97


@needs_fsdd
def test_spoken_digits_downloads_once_checks_and_writes_atomically(tmp_path, monkeypatch):
    serve(monkeypatch, SHARED_FSDD.read_bytes())
    (x_train, _, _), _ = datasets.spoken_digits(root=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [speech.FSDD_ARCHIVE] and len(x_train) == 2700
    serve(monkeypatch, urllib.error.URLError("network is unreachable"))
    (again, _, _), _ = datasets.spoken_digits(root=tmp_path)  # read from the file now, not the network
    np.testing.assert_array_equal(again[7], x_train[7])


@needs_fsdd
def test_fsdd_checksum_is_over_the_recordings_not_the_wrapping():
    """GitHub's archive of the commit has another folder name, other files and other gzip bytes."""
    with tarfile.open(SHARED_FSDD) as tar:
        files = {f"free-spoken-digit-dataset-{speech.FSDD_COMMIT}/recordings/{m.name.rsplit('/', 1)[1]}":
                 tar.extractfile(m).read() for m in tar if m.isfile() and "/recordings/" in m.name}
    files["free-spoken-digit-dataset-x/utils/trimmer.py"] = b"print('never run')"
    links = [("free-spoken-digit-dataset-x/docs/link", "../README.md")]  # links elsewhere are skipped
    recordings = speech.read_recordings(io.BytesIO(tar_gz(dict(reversed(files.items())), links)), "github")
    assert len(recordings) == 3000 and recordings[7, "theo", 12][:4] == b"RIFF"


def test_spoken_digits_download_failures_leave_nothing_behind(tmp_path, monkeypatch):
    serve(monkeypatch, urllib.error.URLError("network is unreachable"))
    with pytest.raises(datasets.DatasetError, match=f"could not download .*put {speech.FSDD_ARCHIVE} into"):
        datasets.spoken_digits(root=tmp_path / "fsdd")
    serve(monkeypatch, tar_gz({"x/recordings/0_george_0.wav": b"RIFF"}))
    with pytest.raises(datasets.DatasetError, match="1 recordings have SHA-256 .* damaged or not FSDD"):
        datasets.spoken_digits(root=tmp_path / "fsdd")
    assert not (tmp_path / "fsdd").exists() or not any((tmp_path / "fsdd").iterdir())
    with pytest.raises(datasets.DatasetError, match="fsdd.*is missing; pass download=True"):
        datasets.spoken_digits(root=tmp_path / "fsdd", download=False)


def tar_gz(files, links=()):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in links:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buffer.getvalue()


@pytest.mark.parametrize("archive, message", [
    (tar_gz({}, links=[("fsdd/recordings/0_george_0.wav", "/etc/passwd")]), "0_george_0.wav is a link"),
    (tar_gz({"fsdd/recordings/1_theo_3.wav": bytes(2 << 20)}), r"1_theo_3.wav \(2,097,152 bytes\).*refusing"),
    (tar_gz({f"fsdd/recordings/{i % 10}_theo_{i}.wav": b"" for i in range(3001)}), "larger than FSDD's 3,000"),
    (b"\x1f\x8b\x08" + bytes(50), "not a readable .tar.gz"),
    (b"plain text", "not a readable .tar.gz"),
    (tar_gz({"fsdd/README.md": b"hello"}), "its 0 recordings have SHA-256"),
], ids=["symlink", "huge member", "too many members", "damaged gzip", "not gzip", "no recordings"])
def test_fsdd_archive_reader_refuses_hostile_archives(archive, message):
    with pytest.raises(datasets.DatasetError, match=message):
        speech.read_recordings(io.BytesIO(archive), "evil.tar.gz")


# --- names -----------------------------------------------------------------------------------------
@needs_names
def test_names_split_is_fixed_and_disjoint(shared_data):
    train, test = datasets.names()
    assert len(train) == 28_830 and len(test) == 3_203 and train[:3] == ["jovie", "anessa", "bo"]
    assert sorted(train + test) == sorted(SHARED_NAMES.read_text().split())  # (29,494 distinct: some repeat)
    assert set("".join(train)) == set(datasets.VOCABULARY[1:])
    assert datasets.names()[1][:5] == test[:5] != datasets.names(seed=1)[1][:5]
    assert len(datasets.VOCABULARY) == 27 and datasets.VOCABULARY[0] == "."


def test_name_windows_predict_each_character_from_the_ones_before():
    x, y = datasets.name_windows(["emma", "bo"], context=5)
    assert x.shape == (8, 5) and y.shape == (8,) and x.dtype == y.dtype == np.int64
    assert [datasets.decode(row) for row in x[:5]] == [".....", "....e", "...em", "..emm", ".emma"]
    assert datasets.decode(y) == "emma.bo."
    x, _ = datasets.name_windows(["abcdefg"], context=3)
    assert datasets.decode(x[-1]) == "efg"  # a context shorter than the name slides along it
    with pytest.raises(ValueError, match="name_windows: context must be at least 1"):
        datasets.name_windows(["ab"], context=0)


def test_name_sequences_for_a_causal_model():
    x, y = datasets.name_sequences(["ava", "bo"], context=5)
    assert datasets.decode(x[0]) == ".ava." and datasets.decode(y[0][:4]) == "ava."
    assert y[0, 4] == text.IGNORE and y[1, 3:].tolist() == [text.IGNORE] * 2
    with pytest.raises(ValueError, match="context 3 is too short for a 3-letter name; use at least 4"):
        datasets.name_sequences(["ava"], context=3)


def test_encode_and_decode_name_what_they_cannot_handle():
    assert datasets.decode(datasets.encode("zoe.")) == "zoe."
    with pytest.raises(ValueError, match="encode: 'Z' in 'Zoe' is not in the vocabulary"):
        datasets.encode("Zoe")
    with pytest.raises(ValueError, match=r"decode: indices must lie in \[0, 27\), got 3..27"):
        datasets.decode([3, 27])


@needs_names
def test_names_download_is_checked_and_written_once(tmp_path, monkeypatch):
    serve(monkeypatch, b"not\nnames\n")
    with pytest.raises(datasets.DatasetError, match="SHA-256 is .*not makemore's names.txt"):
        datasets.names(root=tmp_path)
    assert not list(tmp_path.iterdir())
    serve(monkeypatch, SHARED_NAMES.read_bytes())
    train, _ = datasets.names(root=tmp_path)
    assert (tmp_path / "names.txt").read_bytes() == SHARED_NAMES.read_bytes() and len(train) == 28_830
    (tmp_path / "names.txt").write_bytes(b"emma\n")
    with pytest.raises(datasets.DatasetError, match="names.txt: SHA-256 is"):
        datasets.names(root=tmp_path)


# --- lines of handwritten digits -------------------------------------------------------------------
def test_number_lines_shapes_labels_and_padding():
    (x, targets, lengths), (x_test, t_test, l_test) = datasets.number_lines(n_train=300, n_test=50)
    assert x.shape == (300, 28, 224) and x.dtype == np.uint8 and targets.shape == (300, 8)
    assert lengths.min() == 3 and lengths.max() == 8 and lengths.dtype == targets.dtype == np.int64
    assert ((targets == datasets.PAD) == (np.arange(8) >= lengths[:, None])).all()
    assert targets[targets != datasets.PAD].min() >= 0 and targets.max() <= 9
    assert x_test.shape == (50, 28, 224)
    (_, _, _), (five, t_five, l_five) = datasets.number_lines(n_train=1, n_test=20, digits_per_line=5)
    assert five.shape == (20, 28, 140) and (l_five == 5).all() and (t_five >= 0).all()
    again, _ = datasets.number_lines(n_train=300, n_test=7)
    np.testing.assert_array_equal(again[0], x)  # the same lines, whatever the test set's size
    with pytest.raises(ValueError, match=r"digits_per_line must be .* got \(5, 3\)"):
        datasets.number_lines(digits_per_line=(5, 3))


def test_number_lines_draw_test_lines_from_test_digits_only(monkeypatch):
    def fake_digits():  # training digits are drawn in ink 1, test digits in ink 2, each its label's width
        def pool(ink):
            images = np.zeros((10, 28, 28), np.uint8)
            for label in range(10):
                images[label, 5:20, 4:4 + 2 * label + 2] = ink
            return images, np.arange(10, dtype=np.int64)
        return pool(1), pool(2)

    monkeypatch.setattr(datasets, "digits", fake_digits)
    (x, targets, lengths), (x_test, t_test, l_test) = datasets.number_lines(n_train=40, n_test=40)
    assert set(np.unique(x)) == {0, 1} and set(np.unique(x_test)) == {0, 2}
    for line, target, length in zip(x_test, t_test, l_test):  # the ink, read left to right, spells the label
        edges = np.diff(np.concatenate([[0], line[10] > 0, [0]]).astype(int))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        assert ((ends - starts) // 2 - 1).tolist() == target[:length].tolist()  # gaps of at least 2 separate them


def test_make_lines_fits_the_widest_digits_with_the_widest_gaps():
    wide = np.full((3, 28, 28), 255, np.uint8)
    lines, targets, lengths = datasets.make_lines(wide, np.array([1, 2, 3]), 20, digits_per_line=4, gap=(8, 8))
    assert lines.shape == (20, 28, 112) and (lines.sum(axis=(1, 2)) == 255 * 28 * 28 * 4).all()
    with pytest.raises(ValueError, match=r"make_lines: gap must be .* got \(8, 2\)"):
        datasets.make_lines(wide, np.array([1, 2, 3]), 1, gap=(8, 2))


def test_load_knows_the_sequence_sets_and_lists_them_when_asked_for_another():
    with pytest.raises(datasets.DatasetError, match="unknown dataset 'speech'; choose from .*spoken-digits, numbers"):
        datasets.load("speech")
    if SHARED_NAMES.exists():
        (x, y), (x_test, y_test) = datasets.load("names", data_dir=SHARED_NAMES.parent)
        assert x.shape[1] == 32 and len(x) == len(y) and x_test.dtype == np.int64
