"""The README's figures (test accuracy, seconds), measured on this machine, as a Markdown table.

    python scripts/readme_figures.py [--mnist DIR] [--jobs digits,moons,cnn]

Each job is a `lamina train` command run as the README prints it, in a fresh
process with one BLAS thread (--threads to change it); the table gives its test
accuracy, the training time it reports, the whole command's wall-clock time
(data loading and report.html included) and the CPU time it used, with the
machine that gave them. On a machine shared with other work the wall-clock
times grow with the load; the CPU time (at one thread) is what the command
would take on the same machine idle. --mnist DIR adds the full-MNIST jobs (the
MLP and the CNN), reading the four files there.
"""

import argparse
import os
import platform
import re
import resource
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


def machine(threads):
    cpu = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    try:
        import numpy  # noqa: F401  (threadpoolctl sees only the BLAS of modules already loaded)
        from threadpoolctl import threadpool_info

        blas = ", ".join(i["internal_api"] for i in threadpool_info() if i["user_api"] == "blas") or "BLAS"
    except ImportError:
        blas = "BLAS"
    load = f", load average {os.getloadavg()[0]:.1f} at the start" if hasattr(os, "getloadavg") else ""
    return (f"{cpu}, {os.cpu_count()} cores, {blas} at {threads or 'its default number of'} thread(s), "
            f"Python {platform.python_version()}{load}")


def run(arguments, threads):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if threads:
        env.update({name: str(threads) for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    with tempfile.TemporaryDirectory() as out:
        start, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        result = subprocess.run([sys.executable, "-m", "lamina", "train", *arguments, "--out", out, "--verbose", "0"],
                                capture_output=True, text=True, cwd=ROOT, env=env)
        wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime
    if result.returncode != 0:
        return None, None, wall, cpu, result.stderr.strip().splitlines()[-1]
    found = re.search(r"Test accuracy: ([\d.]+)% .* after ([\d.]+)s", result.stdout)
    return float(found[1]), float(found[2]), wall, cpu, ""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", metavar="DIR", help="folder of the four MNIST files: adds the full-MNIST jobs")
    parser.add_argument("--jobs", default="digits,moons,cnn", help="which jobs, comma-separated")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads of each job (0: the default)")
    args = parser.parse_args()
    jobs = args.jobs.split(",") + (["mnist", "mnist-cnn"] if args.mnist else [])
    print(f"Measured {time.strftime('%Y-%m-%d')} on: {machine(args.threads)}\n")
    print("| command | test accuracy | training (wall clock) | whole command (wall clock) | whole command (CPU) |")
    print("| --- | --- | --- | --- | --- |")
    for name in jobs:
        shown, arguments = JOBS[name]
        if name.startswith("mnist"):
            arguments = [*arguments, args.mnist]
        accuracy, seconds, wall, cpu, error = run(arguments, args.threads)
        if accuracy is None:
            print(f"| `{shown}` | failed: {error} | | {wall:.0f} s | {cpu:.0f} s |", flush=True)
        else:
            print(f"| `{shown}` | {accuracy:.2f}% | {seconds:.1f} s | {wall:.1f} s | {cpu:.1f} s |", flush=True)


if __name__ == "__main__":
    main()
