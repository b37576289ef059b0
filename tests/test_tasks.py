"""The sequence tasks: their models, decoding, sampling, metrics, and the lamina command around them."""

import wave
from pathlib import Path

import numpy as np
import pytest

import lamina
from lamina import cli, datasets, models, tasks

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_fsdd = pytest.mark.skipif(not (SHARED_DATA / "fsdd" / datasets.speech.FSDD_ARCHIVE).exists(),
                                reason="needs ../shared/data/fsdd")
needs_names = pytest.mark.skipif(not (SHARED_DATA / "names" / "names.txt").exists(),
                                 reason="needs ../shared/data/names")
needs_mnist = pytest.mark.skipif(not (SHARED_DATA / "mnist" / "train-images-idx3-ubyte.gz").exists(),
                                 reason="needs ../shared/data/mnist (numbers are lines of full MNIST)")


@pytest.fixture(autouse=True)
def shared_data(monkeypatch):
    """Datasets come from ../shared/data, never the network."""
    monkeypatch.setenv("LAMINA_DATA", str(SHARED_DATA))


# --- models ------------------------------------------------------------------------------------------
def test_speech_cnn_takes_spectrograms_of_any_length_and_names_a_wrong_rank():
    model = models.speech_cnn()
    assert model(lamina.randn(2, 80, 40)).shape == (2, 10)
    assert model(lamina.randn(1, 120, 40)).shape == (1, 10)  # a longer recording: the average over time
    with pytest.raises(ValueError, match=r"BandsAsChannels: expected spectrograms \(N, frames, bands\)"):
        model(lamina.randn(2, 1, 80, 40))


def test_line_reader_gives_a_frame_per_four_columns_and_names_a_wrong_height():
    reader = models.LineReader()
    assert reader(lamina.zeros(3, 28, 140)).shape == (3, 35, 11)
    with pytest.raises(ValueError, match=r"LineReader: expected lines of shape \(N, 1, 28"):
        reader(lamina.zeros(3, 1, 32, 140))


def test_ctc_greedy_decode_merges_repeats_and_drops_blanks():
    frames = [[0, 2, 2, 0, 2, 4, 4, 0], [0, 0, 0, 0, 0, 0, 0, 0]]  # classes: blank, then digit d as d + 1
    scores = np.eye(11)[frames]
    assert models.ctc_greedy_decode(scores) == [[1, 1, 3], []]


def test_line_accuracy_counts_whole_lines():
    metric = tasks.LineAccuracy()
    truth = np.array([[1, 1, 3, datasets.PAD], [5, 5, 5, 5]])
    metric.update(truth, np.eye(11)[[[2, 0, 2, 4], [6, 6, 0, 6]]])
    assert metric.result() == 0.5  # the second line reads 5 5, not 5 5 5 5


def test_line_ctc_loss_learns_to_read_a_tiny_set():
    lamina.manual_seed(0)
    (x, y, _), _ = datasets.number_lines(n_train=64, n_test=1, digits_per_line=(2, 3))
    x = datasets.scale(x)[:, None]
    reader = models.LineReader(hidden=32, channels=(8, 16))
    optimizer = lamina.optim.Adam(reader.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = models.line_ctc_loss(reader(lamina.tensor(x)), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_char_transformer_is_causal():
    lamina.manual_seed(0)
    model = models.CharTransformer(context=8, d_model=16, nhead=2, num_layers=2, dim_feedforward=32)
    model.eval()
    a = model(lamina.tensor([[0, 1, 2, 3, 4]])).detach().numpy()
    b = model(lamina.tensor([[0, 1, 2, 9, 9]])).detach().numpy()
    np.testing.assert_allclose(a[:, :3], b[:, :3], rtol=1e-5, atol=1e-6)  # positions 0-2 never see 3 and 4
    assert not np.allclose(a[:, 3:], b[:, 3:])
    weights = model.attention(lamina.tensor([[0, 1, 2]]))
    assert len(weights) == 2 and weights[0].shape == (1, 2, 3, 3)
    assert np.allclose(np.triu(weights[1][0, 0], 1), 0) and np.allclose(weights[1].sum(-1), 1, atol=1e-5)
    with pytest.raises(ValueError, match="CharTransformer: expected"):
        model(lamina.zeros(1, 9, dtype=lamina.int64))


@pytest.mark.parametrize("make", [lambda: models.CharTransformer(d_model=16, nhead=2, num_layers=1),
                                  lambda: models.CharGRU(hidden=16)])
def test_sampled_names_are_repeatable_words(make):
    model = make()
    first = models.sample_names(model, 5, generator=lamina.Generator().manual_seed(3))
    again = models.sample_names(model, 5, generator=lamina.Generator().manual_seed(3))
    assert first == again and len(first) == 5
    assert all(set(name) <= set(datasets.VOCABULARY[1:]) for name in first)
    with lamina.no_grad():
        model.head.bias[2] += 3.0  # 'b' a little likelier than the rest, at every position
    cold = models.sample_names(model, 3, temperature=0.01, generator=lamina.Generator().manual_seed(4))
    assert cold == ["b" * 15] * 3  # near zero temperature, always the likeliest letter, up to the context's end
    with pytest.raises(ValueError, match="temperature must be positive"):
        models.sample_names(model, 1, temperature=0)


@pytest.mark.parametrize("make", [models.LineReader, models.CharTransformer, models.CharGRU, models.speech_cnn])
def test_task_models_save_and_load_whole(tmp_path, make):
    model = make()
    lamina.save(model, tmp_path / "m.npz")
    loaded = lamina.load(tmp_path / "m.npz")
    assert type(loaded) is type(model)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy(), err_msg=name)


def test_names_learn_character_statistics():
    """A small Transformer goes well below the 3.3 nats of guessing among 27 letters within a few hundred steps."""
    lamina.manual_seed(0)
    words = ["anna", "emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper", "evelyn"] * 20
    x, y = datasets.name_sequences(words, 12)
    model = models.CharTransformer(context=12, d_model=32, nhead=2, num_layers=2, dim_feedforward=64)
    model.compile(lamina.optim.AdamW(model.parameters(), lr=3e-3), models.sequence_cross_entropy)
    model.fit(x, y, epochs=15, batch_size=32, verbose=0)
    assert tasks.Names.loss_per_character(model, x, y) < 1.0


# --- the command -------------------------------------------------------------------------------------
def _small(task, monkeypatch, n_train, n_test):
    """Make `task` load only the first samples of its data, so that a command-line run takes seconds."""
    load = task.load

    def small(settings):
        (x, y), (xt, yt) = load(settings)
        return (x[:n_train], y[:n_train]), (xt[:n_test], yt[:n_test])

    monkeypatch.setattr(task, "load", small)


def _write_wav(path, samples, rate=8000, width=2, channels=1):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())


@needs_fsdd
def test_spoken_digits_command_trains_predicts_a_wav_and_evaluates(tmp_path, monkeypatch, capsys):
    _small(tasks.TASKS["spoken-digits"], monkeypatch, 600, 100)
    assert cli.main(["train", "--dataset", "spoken-digits", "--epochs", "2", "--out", str(tmp_path / "run"),
                     "--verbose", "0"]) == 0
    out = capsys.readouterr().out
    assert "Training a CNN on spoken-digits (600 training samples, 100 test)" in out and "Test accuracy" in out
    t = np.arange(8000) / 8000
    _write_wav(tmp_path / "tone.wav", (8000 * np.sin(2 * np.pi * 300 * t)).astype("<i2"))
    assert cli.main(["predict", str(tmp_path / "run"), str(tmp_path / "tone.wav"), "--top", "2"]) == 0
    assert capsys.readouterr().out.startswith(f"{tmp_path / 'tone.wav'}: ")
    _write_wav(tmp_path / "stereo.wav", np.zeros(800, "<i2"), channels=2)
    assert cli.main(["predict", str(tmp_path / "run"), str(tmp_path / "stereo.wav")]) == 2
    assert "16-bit PCM mono" in capsys.readouterr().err
    assert cli.main(["predict", str(tmp_path / "run"), str(tmp_path / "digit.png")]) == 2
    assert "is an image, but this model was made for spoken-digits" in capsys.readouterr().err
    assert cli.main(["evaluate", str(tmp_path / "run")]) == 0
    assert "spoken-digits test set (100 samples): Test accuracy" in capsys.readouterr().out


@needs_mnist
def test_numbers_command_reads_a_line_image(tmp_path, monkeypatch, capsys):
    pytest.importorskip("PIL")
    from PIL import Image

    _small(tasks.TASKS["numbers"], monkeypatch, 256, 64)
    monkeypatch.setattr(tasks.Numbers, "five_digit_lines", lambda self, settings: self.load(settings)[1])
    assert cli.main(["train", "--dataset", "numbers", "--epochs", "1", "--out", str(tmp_path / "run"),
                     "--verbose", "0"]) == 0
    assert "5-digit test lines read right" in capsys.readouterr().out
    _, (lines, _, _) = datasets.number_lines(n_train=1, n_test=1, digits_per_line=4)
    Image.fromarray(255 - lines[0]).save(tmp_path / "line.png")  # dark ink on white paper, as scanned
    assert cli.main(["predict", str(tmp_path / "run"), str(tmp_path / "line.png")]) == 0
    answer = capsys.readouterr().out
    assert answer.startswith(f"{tmp_path / 'line.png'}: ")
    assert cli.main(["sample", str(tmp_path / "run")]) == 2
    assert "needs a model trained on names" in capsys.readouterr().err


@needs_names
def test_names_command_trains_and_samples_new_names(tmp_path, monkeypatch, capsys):
    _small(tasks.TASKS["names"], monkeypatch, 2000, 200)
    assert cli.main(["train", "--dataset", "names", "--model", "gru", "--epochs", "2", "--out",
                     str(tmp_path / "run"), "--verbose", "0"]) == 0
    assert "Test loss: " in capsys.readouterr().out
    assert cli.main(["sample", str(tmp_path / "run"), "-n", "7", "--temperature", "0.8", "--seed", "1"]) == 0
    captured = capsys.readouterr()
    names = captured.out.split()
    assert len(names) == 7 and "are new: not in the training set" in captured.err
    assert cli.main(["sample", str(tmp_path / "run"), "-n", "7", "--temperature", "0.8", "--seed", "1"]) == 0
    assert capsys.readouterr().out.split() == names
    assert cli.main(["predict", str(tmp_path / "run"), "x.wav"]) == 2
    assert "lamina sample" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "speech"], "invalid choice: 'speech'"),
    (["--dataset", "names", "--model", "cnn"], "--model cnn is for --dataset"),
    (["--dataset", "numbers", "--model", "transformer"], "--model transformer is for --dataset names"),
    (["--dataset", "digits", "--test-speaker", "theo"], "--test-speaker is for --dataset spoken-digits"),
    (["--dataset", "names", "--hidden", "64"], "--model transformer has a fixed architecture"),
])
def test_train_refuses_what_a_sequence_dataset_cannot_do(argv, message, capsys, tmp_path):
    assert cli.main(["train", *argv, "--out", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name, expected", [("numbers", "What the reader sees in each frame"),
                                            ("names", "Where each letter looks")])
def test_the_report_of_a_sequence_task_shows_what_it_learned(name, expected, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    folder, file = {"names": ("names", "names.txt"), "numbers": ("mnist", "train-images-idx3-ubyte.gz")}[name]
    if not (SHARED_DATA / folder / file).exists():
        pytest.skip(f"needs ../shared/data/{folder}")
    _small(tasks.TASKS[name], monkeypatch, 128, 32)
    monkeypatch.setattr(tasks.Numbers, "five_digit_lines", lambda self, settings: self.load(settings)[1])
    run = tmp_path / name
    assert cli.main(["train", "--dataset", name, "--epochs", "1", "--out", str(run), "--verbose", "0"]) == 0
    page = (run / "report.html").read_text()
    assert expected in page
    assert ("Twenty names it made up" in page) == (name == "names")
