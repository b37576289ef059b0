"""The Free Spoken Digit Dataset: 3,000 recordings of the digits 0-9 spoken by 6 speakers, 8 kHz.

By Zohar Jackson et al. (github.com/Jakobovski/free-spoken-digit-dataset, DOI 10.5281/zenodo.1342401),
under CC BY-SA 4.0. Not bundled: read from $LAMINA_DATA/fsdd/ (or ~/.cache/lamina/fsdd/), where the
tarball of the recordings at a pinned commit lives, downloaded once from GitHub when missing.
"""

import hashlib
import io
import re
import tarfile
import zlib

import numpy as np

from lamina import audio
from lamina.datasets.cache import DatasetError, data_dir, download_once
from lamina.files import regular_file_size

FSDD_COMMIT = "26eb9aaf76e81b692f806f9140c2d2777410d7a1"  # tag v1.0.10 plus 27 commits
FSDD_ARCHIVE = "free-spoken-digit-dataset-v1.0.10-27.tar.gz"
FSDD_URL = f"https://github.com/Jakobovski/free-spoken-digit-dataset/archive/{FSDD_COMMIT}.tar.gz"
# SHA-256 over the recordings themselves (see _digest), not over the tarball: GitHub's archive of the
# commit and the copy in ../shared/data/fsdd hold the same 3,000 files in different wrappings.
FSDD_RECORDINGS_SHA256 = "61a272ed8401ecbae6aa84bc84d2bfdafe4f4d125e44e1fbbcd96d8e4bdca77d"
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
SAMPLE_RATE = 8000
RECORDINGS = 3000
_RECORDING = re.compile(r"(?:^|/)recordings/([0-9])_([a-z]+)_([0-9]+)\.wav$")
_MAX_RECORDING_BYTES = 1 << 20  # the longest recording is 37 kB; a member claiming more is not one
_MAX_ARCHIVE_BYTES = 64 << 20  # the archive is about 16 MB


def _digest(recordings):
    """SHA-256 over every recording's file name and bytes, in name order."""
    digest = hashlib.sha256()
    for (digit, speaker, index), data in sorted(recordings.items()):
        digest.update(f"{digit}_{speaker}_{index}.wav {len(data)}\n".encode())
        digest.update(data)
    return digest.hexdigest()


def read_recordings(archive, name):
    """{(digit, speaker, index): WAV bytes} from a .tar.gz of FSDD, read in memory, checked.

    Members are streamed and never extracted to disk, so their names cannot point anywhere; a
    recording that is a link or absurdly large, or a damaged archive, raises DatasetError naming it.
    """
    recordings = {}
    try:
        with tarfile.open(fileobj=archive, mode="r|gz") as tar:
            for member in tar:
                match = _RECORDING.search(member.name)
                if match is None:
                    continue
                if not member.isfile():
                    raise DatasetError(f"{name}: {member.name} is a link or special file, not a recording")
                if member.size > _MAX_RECORDING_BYTES or len(recordings) >= RECORDINGS:
                    raise DatasetError(f"{name}: {member.name} ({member.size:,} bytes) makes this archive "
                                       f"larger than FSDD's {RECORDINGS:,} short recordings; refusing it")
                digit, speaker, index = match.groups()
                recordings[int(digit), speaker, int(index)] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise DatasetError(f"{name}: not a readable .tar.gz ({e})") from None
    actual = _digest(recordings)
    if actual != FSDD_RECORDINGS_SHA256:
        raise DatasetError(f"{name}: its {len(recordings):,} recordings have SHA-256 {actual}, expected "
                           f"{FSDD_RECORDINGS_SHA256} (FSDD at commit {FSDD_COMMIT[:7]}); the file is damaged "
                           "or not FSDD")
    return recordings


def _load_recordings(root, download, timeout):
    path = data_dir("fsdd", root) / FSDD_ARCHIVE
    if path.exists():
        regular_file_size(path, DatasetError, "datasets")  # a FIFO or a device would block or never end
        with open(path, "rb") as f:
            return read_recordings(f, str(path))
    if not download:
        raise DatasetError(f"{path} is missing; pass download=True, or put {FSDD_ARCHIVE} there")
    found = {}
    download_once(FSDD_URL, path, lambda data: found.update(read_recordings(io.BytesIO(data), FSDD_URL)),
                  _MAX_ARCHIVE_BYTES, timeout)
    return found


def spoken_digits(test_speaker=None, features=None, frames=80, root=None, download=True, timeout=60):
    """FSDD as ((x_train, y_train, speakers_train), (x_test, y_test, speakers_test)).

    The official split puts recordings 0-4 of each speaker and digit in the test set (300) and 5-49 in
    the training set (2,700). `test_speaker` (one of SPEAKERS) instead holds out everything that speaker
    said (500 test, 2,500 training): can the network understand a voice it never heard?

    x: with features=None, a list of float32 waveforms in [-1, 1) at 8 kHz, of different lengths
    (1,148 to 18,262 samples; audio.frames / audio.log_mel take them one at a time or padded);
    with features="logmel" (40 bands) or "mfcc" (13 coefficients), one float32 array of shape
    (n, frames, bands) made by audio.speech_features: 10 ms frames, each recording normalized on its
    own, cropped or padded to `frames` (80 = 0.8 s keeps all of 98% of the recordings). The same
    function turns any other WAV into the same kind of input. Add a channel axis (x[:, None]) for a
    CNN; feed (n, frames, bands) to a batch_first RNN.
    y: int64 digits. speakers: the speaker's name for each recording.
    """
    if test_speaker is not None and test_speaker not in SPEAKERS:
        raise ValueError(f"spoken_digits: test_speaker must be one of {', '.join(SPEAKERS)}, not {test_speaker!r}")
    if features not in (None, "logmel", "mfcc"):
        raise ValueError(f"spoken_digits: features must be None, 'logmel' or 'mfcc', not {features!r}")
    recordings = _load_recordings(root, download, timeout)
    keys = sorted(recordings, key=lambda k: (k[1], k[0], k[2]))  # speaker, digit, repetition
    waves = [audio.read_wav(recordings[k], f"{k[0]}_{k[1]}_{k[2]}.wav")[0] for k in keys]
    labels = np.array([k[0] for k in keys], dtype=np.int64)
    speakers = np.array([k[1] for k in keys])
    test = speakers == test_speaker if test_speaker else np.array([k[2] < 5 for k in keys])
    if features is not None:
        waves = np.stack([audio.speech_features(w, SAMPLE_RATE, frames, features) for w in waves])
    train_idx, test_idx = np.flatnonzero(~test), np.flatnonzero(test)

    def take(indices):
        x = [waves[i] for i in indices] if features is None else waves[indices]
        return x, labels[indices], speakers[indices]

    return take(train_idx), take(test_idx)


__all__ = ["FSDD_ARCHIVE", "FSDD_COMMIT", "FSDD_URL", "SAMPLE_RATE", "SPEAKERS", "read_recordings", "spoken_digits"]
