"""Build the digits set bundled with lamina from the real MNIST files.

Takes the first 10,000 training images and all 10,000 test images, after
checking the four files against MNIST's SHA-256 sums, and writes them as
gzip-compressed IDX files into lamina/datasets/digits/.

    python scripts/make_digits.py [MNIST_DIR]   (default: ../shared/data/mnist)
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lamina.datasets import MNIST_FILES, read_idx, verify_file  # noqa: E402
from lamina.datasets.idx import write_idx  # noqa: E402


def main():
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data" / "mnist"
    for name in MNIST_FILES.values():
        verify_file(source / name)
    out = ROOT / "lamina" / "datasets" / "digits"
    write_idx(out / "train-images-idx3-ubyte.gz", read_idx(source / MNIST_FILES["train_images"])[:10_000])
    write_idx(out / "train-labels-idx1-ubyte.gz", read_idx(source / MNIST_FILES["train_labels"])[:10_000])
    write_idx(out / "t10k-images-idx3-ubyte.gz", read_idx(source / MNIST_FILES["test_images"]))
    write_idx(out / "t10k-labels-idx1-ubyte.gz", read_idx(source / MNIST_FILES["test_labels"]))
    for path in sorted(out.glob("*.gz")):
        print(f"{path.relative_to(ROOT)}: {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
