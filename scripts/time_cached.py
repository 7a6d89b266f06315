"""Whole-process times of a cached 92k-tensor audit against `gpumem calc` (issue 10's goal: at most 4x).

    /work/venv/bin/python scripts/time_cached.py [--runs 10]

Serves deepseek-ai/DeepSeek-R1 (163 shards, 91,991 tensors; DeepSeek-V3's architecture) from the loopback
fake Hub in a child process, fills a fresh cache with one `gpumem hf` run, then times alternating runs of
`gpumem calc --params 70B`, `gpumem hf deepseek-ai/DeepSeek-R1` and `gpumem fit --gpu H200 ...` (each a
new interpreter, bytecode already compiled; the cached runs ask the Hub one question: where `main` points).
Prints the median and minimum of each and the ratios of medians. Not part of the test run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPO = "deepseek-ai/DeepSeek-R1"


def serve() -> None:
    """Child-process mode: serve the repo until stdin closes."""
    sys.path[:0] = [str(ROOT / "src")]  # gpumem and gpumem_dev
    from gpumem.reading.snapshot import load_snapshot
    from gpumem_dev.fakehub import FakeFile, FakeHub, FakeRepo
    from gpumem_dev.fakehub.repos import sharded_files, split_in_order

    # The shipped snapshot holds every tensor (in shard order) and the 163 shard names.
    (weights,) = load_snapshot(REPO).weight_sets
    runs = split_in_order([(t.name, t.dtype, t.shape) for t in weights.tensors], len(weights.files))
    files = sharded_files(dict(zip(weights.files, runs)), {"format": "pt"})
    files["config.json"] = FakeFile.of(json.dumps(weights.config).encode())
    hub = FakeHub([FakeRepo(REPO, files)]).start()
    print(hub.endpoint, flush=True)
    sys.stdin.read()
    hub.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    hub = subprocess.Popen([sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           text=True)
    endpoint = hub.stdout.readline().strip()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HOME": home, "PYTHONPATH": str(ROOT / "src"),
               "PYTHONPYCACHEPREFIX": str(Path(home) / "pycache")}
        env.pop("HF_TOKEN", None)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        base = [sys.executable, "-m", "gpumem"]
        commands = {"calc --params 70B": ["calc", "--params", "70B"], f"hf {REPO}": ["hf", REPO],
                    f"fit --gpu H200 {REPO}": ["fit", "--gpu", "H200", REPO]}
        started = time.perf_counter()
        subprocess.run(base + ["hf", REPO, "--quiet"], env=env, check=True, stdout=subprocess.DEVNULL)
        print(f"cold read (fills the cache): {time.perf_counter() - started:.2f} s")
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs + 1):  # the first round warms bytecode and the page cache, and is dropped
            for name, command in commands.items():
                started = time.perf_counter()
                subprocess.run(base + command, env=env, check=True, stdout=subprocess.DEVNULL)
                times[name].append(time.perf_counter() - started)
    hub.stdin.close()
    hub.wait(timeout=10)
    calc = statistics.median(times["calc --params 70B"][1:])
    print(f"{'command':<40} {'median s':>9} {'min s':>7} {'x calc':>7}")
    for name, values in times.items():
        median = statistics.median(values[1:])
        print(f"{name:<40} {median:>9.3f} {min(values[1:]):>7.3f} {median / calc:>7.2f}")


if __name__ == "__main__":
    main()
