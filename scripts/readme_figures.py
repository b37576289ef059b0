"""The README's figures (test accuracy, seconds), measured on this machine, as a Markdown table.

    python scripts/readme_figures.py [--mnist DIR] [--jobs digits,moons,cnn]

Each job is a `lamina train` command run as the README prints it, in a fresh
process; the table gives its test accuracy, the training time it reports and
the whole command's wall-clock time (data loading and report.html included),
with the machine (CPU model, cores, BLAS threads) that gave them. --mnist DIR
adds the full-MNIST jobs (the MLP and the CNN), reading the four files there.
"""

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JOBS = {
    "digits": ("lamina train", []),
    "moons": ("lamina train --dataset moons", ["--dataset", "moons"]),
    "cnn": ("lamina train --model cnn", ["--model", "cnn"]),
    "mnist": ("lamina train --dataset mnist --data-dir DIR", ["--dataset", "mnist", "--data-dir"]),
    "mnist-cnn": ("lamina train --dataset mnist --model cnn --data-dir DIR",
                  ["--dataset", "mnist", "--model", "cnn", "--data-dir"]),
}


def machine():
    cpu = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    try:
        import numpy  # noqa: F401  (threadpoolctl sees only the BLAS of modules already loaded)
        from threadpoolctl import threadpool_info

        blas = ", ".join(f"{i['internal_api']} {i['num_threads']} thread(s)" for i in threadpool_info()
                         if i["user_api"] == "blas") or "unknown BLAS"
    except ImportError:
        blas = "BLAS threads: NumPy's default"
    return f"{cpu}, {os.cpu_count()} cores, {blas}, Python {platform.python_version()}"


def run(arguments):
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "lamina", "train", *arguments, "--out", out, "--verbose", "0"],
                                capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        wall = time.perf_counter() - start
    if result.returncode != 0:
        return None, None, wall, result.stderr.strip().splitlines()[-1]
    found = re.search(r"Test accuracy: ([\d.]+)% .* after ([\d.]+)s", result.stdout)
    return float(found[1]), float(found[2]), wall, ""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", metavar="DIR", help="folder of the four MNIST files: adds the full-MNIST jobs")
    parser.add_argument("--jobs", default="digits,moons,cnn", help="which jobs, comma-separated")
    args = parser.parse_args()
    jobs = args.jobs.split(",") + (["mnist", "mnist-cnn"] if args.mnist else [])
    print(f"Measured {time.strftime('%Y-%m-%d')} on: {machine()}\n")
    print("| command | test accuracy | training | whole command |")
    print("| --- | --- | --- | --- |")
    for name in jobs:
        shown, arguments = JOBS[name]
        if name.startswith("mnist"):
            arguments = [*arguments, args.mnist]
        accuracy, seconds, wall, error = run(arguments)
        if accuracy is None:
            print(f"| `{shown}` | failed: {error} | | {wall:.0f} s |")
        else:
            print(f"| `{shown}` | {accuracy:.2f}% | {seconds:.1f} s | {wall:.1f} s |", flush=True)


if __name__ == "__main__":
    main()
