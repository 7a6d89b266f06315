"""Benchmark gpumem against huggingface_hub (and hf-mem) on the loopback fake Hub, side by side.

    .venv/bin/python scripts/benchmark.py            # full run (about a minute), prints tables and goals
    .venv/bin/python scripts/benchmark.py --quick    # one latency (50 ms), fewer repeats

The fake Hub (tests/fakehub) runs in its own process, as the real Hub is not in yours: sharing the
GIL with the client would charge the server's work to the client. It sleeps `latency` before every
answer, so a cold read of a sharded repo costs at least 3 x latency on its critical path (wave 1,
then resolve -> 302 -> CDN per shard). Requests and bytes come from the server's own log.

Not part of the test run; the structural checks (one wave, bytes bound, overlap) live in
tests/test_performance.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

REPOS = {  # repo id -> shards
    "openai-community/gpt2": 1,
    "meta-llama/Llama-2-70b-hf": 15,
    "meta-llama/Llama-3.1-405B": 191,
}
MANY = [f"bench/llama-{i:03d}" for i in range(100)]  # 100 repos x 4 shards for `gpumem hf A B C ...`
HF_MEM_NOTE = ("hf-mem 0.5.6 (PyPI): n/a - every URL is hard-coded to https://huggingface.co (hf_mem/run.py), "
               "no HF_ENDPOINT or base-URL option, so it cannot be pointed at the fake Hub")


# -- the fake Hub, in a child process -----------------------------------------------------------

def serve() -> None:
    """Child-process mode: serve the benchmark repos; answer one command per stdin line with one stdout line."""
    from fakehub import FakeHub, llama2_70b_repo, repo_from_fixture, synthetic_sharded_repo

    repos = [repo_from_fixture("openai-community__gpt2"), llama2_70b_repo(), synthetic_sharded_repo()]
    repos += [synthetic_sharded_repo(repo_id, n_shards=4, num_layers=8) for repo_id in MANY]
    hub = FakeHub(repos).start()
    print(hub.endpoint, flush=True)
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "latency":
            hub.latency = float(argument)
            answer = "ok"
        elif command == "reset":
            hub.reset_log()
            answer = "ok"
        elif command == "log":
            answer = json.dumps([[r.host, r.path, r.status, r.bytes_sent, r.timestamp] for r in hub.requests])
        elif command == "headers":  # header bytes (8-byte length + JSON) of every safetensors file of a repo
            files = hub.repos[argument].files
            answer = json.dumps({p: len(f.prefix) for p, f in files.items() if p.endswith(".safetensors")})
        else:
            answer = f"unknown command {command!r}"
        print(answer, flush=True)
    hub.stop()


class HubProcess:
    """Start and drive the fake Hub child process."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, __file__, "--serve"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        self.endpoint = self.process.stdout.readline().strip()

    def ask(self, command: str) -> str:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def log(self) -> list:
        return json.loads(self.ask("log"))

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=10)


# -- one measurement ----------------------------------------------------------------------------

@dataclass
class Row:
    latency_ms: int
    repo: str
    tool: str
    wall: float | None
    requests: int | None
    bytes_read: int | None
    note: str = ""


def weight_traffic(log: list) -> tuple[int, int]:
    """(requests, bytes) of weight-file reads (resolve + CDN), excluding model info, config and index."""
    rows = [r for r in log if r[1].endswith(".safetensors")]
    return len(rows), sum(r[3] for r in rows)


def in_process(hub: HubProcess, repo: str, cache: Path) -> tuple[float, list]:
    """gpumem.api.inspect_repo in this process, timed around the call only."""
    from fakehub import GOOD_TOKEN
    from gpumem import api

    os.environ["GPUMEM_CACHE_DIR"] = str(cache)
    hub.ask("reset")
    started = time.perf_counter()
    api.inspect_repo(repo, options=api.HubOptions(endpoint=hub.endpoint, token=GOOD_TOKEN))
    return time.perf_counter() - started, hub.log()


def cli_env(hub: HubProcess, cache: Path, pycache: Path) -> dict:
    env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "GPUMEM_CACHE_DIR": str(cache), "HF_HOME": str(cache / "hf"),
           "PYTHONPYCACHEPREFIX": str(pycache)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # measure start-up as an installed package runs: from bytecode
    return env


def gpumem_command() -> list[str]:
    script = Path(sys.executable).parent / "gpumem"
    return [str(script)] if script.exists() else [sys.executable, "-m", "gpumem"]


def cli(hub: HubProcess, repos: list[str], cache: Path, pycache: Path) -> tuple[float, list, str]:
    """`gpumem hf REPO... --json` as a subprocess: wall time includes interpreter start-up and imports."""
    from fakehub import GOOD_TOKEN

    hub.ask("reset")
    started = time.perf_counter()
    done = subprocess.run([*gpumem_command(), "hf", *repos, "--json", "-q", "--token", GOOD_TOKEN],
                          env=cli_env(hub, cache, pycache), capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"gpumem hf failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return wall, hub.log(), done.stdout


_HF_SNIPPET = """
import json, sys, time
import huggingface_hub
from huggingface_hub import constants
assert constants.ENDPOINT == sys.argv[1], (constants.ENDPOINT, sys.argv[1])
started = time.perf_counter()
meta = huggingface_hub.get_safetensors_metadata(sys.argv[2], token=sys.argv[3])
print(json.dumps({"wall": time.perf_counter() - started, "files": len(meta.files_metadata)}))
"""


def hf_hub(hub: HubProcess, repo: str, home: Path) -> tuple[float, list]:
    """huggingface_hub.get_safetensors_metadata in a subprocess with HF_ENDPOINT set (read at its import)."""
    from fakehub import GOOD_TOKEN

    env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HOME": str(home), "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    hub.ask("reset")
    done = subprocess.run([sys.executable, "-c", _HF_SNIPPET, hub.endpoint, repo, GOOD_TOKEN], env=env,
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"get_safetensors_metadata failed: {done.stderr.strip()[-500:]}")
    log = hub.log()
    if not log:
        raise SystemExit("get_safetensors_metadata made no request to the fake Hub: HF_ENDPOINT was not honoured")
    return json.loads(done.stdout.splitlines()[-1])["wall"], log


def median_run(function, repeats: int):
    """Run `function` `repeats` times; return the run with the median wall time (first element of its result)."""
    runs = sorted((function() for _ in range(repeats)), key=lambda result: result[0])
    return runs[len(runs) // 2]


def startup(pycache: Path, repeats: int) -> dict[str, float]:
    """Median wall seconds of `python -c pass`, `gpumem --help` and `gpumem calc --params 70B`."""
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(pycache)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    commands = {"python -c pass": [sys.executable, "-c", "pass"], "gpumem --help": [*gpumem_command(), "--help"],
                "gpumem calc --params 70B": [*gpumem_command(), "calc", "--params", "70B"]}
    result = {}
    for name, command in commands.items():
        subprocess.run(command, env=env, capture_output=True, check=True)  # warm the bytecode cache
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            subprocess.run(command, env=env, capture_output=True, check=True)
            times.append(time.perf_counter() - started)
        result[name] = statistics.median(times)
    return result


# -- the run ------------------------------------------------------------------------------------

def run(latencies: list[int], repeats: int) -> int:
    hub = HubProcess()
    work = Path(tempfile.mkdtemp(prefix="gpumem-bench-"))
    pycache = work / "pycache"
    rows: list[Row] = []
    goals: list[tuple[str, bool, str]] = []
    header_bytes = {repo: json.loads(hub.ask(f"headers {repo}")) for repo in REPOS}
    counter = iter(range(10**6))

    def fresh() -> Path:
        return work / f"cache-{next(counter)}"

    try:
        cli(hub, ["openai-community/gpt2"], fresh(), pycache)  # warm the bytecode cache for the CLI rows
        for latency_ms in latencies:
            hub.ask(f"latency {latency_ms / 1000}")
            for repo, shards in REPOS.items():
                cache = fresh()
                wall, log = in_process(hub, repo, cache)  # a first cold run warms this process's imports
                wall, log = median_run(lambda: in_process(hub, repo, fresh()), repeats)
                cold = Row(latency_ms, repo, "gpumem cold (in-process)", wall, len(log), sum(r[3] for r in log))
                rows.append(cold)
                requests_w, bytes_w = weight_traffic(log)
                budget = 4 * latency_ms / 1000 + 0.2
                goals.append((f"{repo} @ {latency_ms} ms: cold in-process {wall:.3f} s <= 4 x latency + 0.2 s "
                              f"= {budget:.2f} s", wall <= budget, ""))
                headers = sum(header_bytes[repo].values())
                limit = 1.25 * headers + 16 * 1024 * len(header_bytes[repo])
                if latency_ms == latencies[0] and shards > 1:  # the bound is for sharded repos (index-sized reads)
                    goals.append((f"{repo}: weight-file bytes {bytes_w:,} <= 1.25 x {headers:,} header bytes + "
                                  f"16 KiB x {len(header_bytes[repo])} files = {limit:,.0f}", bytes_w <= limit, ""))
                    goals.append((f"{repo}: one read per shard ({requests_w} weight-file requests for {shards} "
                                  f"shards: resolve + CDN each)", requests_w == 2 * shards, ""))

                wall, log, _ = median_run(lambda: cli(hub, [repo], fresh(), pycache), max(1, repeats // 2))
                rows.append(Row(latency_ms, repo, "gpumem cold (CLI, with start-up)", wall, len(log),
                                sum(r[3] for r in log)))
                wall, log = in_process(hub, repo, cache)  # the same cache as the first cold run: now warm
                rows.append(Row(latency_ms, repo, "gpumem cached (in-process)", wall, len(log), sum(r[3] for r in log)))
                goals.append((f"{repo} @ {latency_ms} ms: cached run makes {len(log)} request(s) <= 1",
                              len(log) <= 1, ""))
                wall, log = hf_hub(hub, repo, fresh())
                rows.append(Row(latency_ms, repo, "huggingface_hub get_safetensors_metadata", wall, len(log),
                                sum(r[3] for r in log)))
                if shards == 191 and latency_ms == 50:
                    goals.append((f"{repo} @ 50 ms: gpumem cold {cold.wall:.3f} s >= 5x faster than "
                                  f"get_safetensors_metadata {wall:.3f} s ({wall / cold.wall:.1f}x)",
                                  wall >= 5 * cold.wall, ""))
                rows.append(Row(latency_ms, repo, "hf-mem", None, None, None, "n/a (see note)"))

        times = startup(pycache, max(5, repeats * 2))
        base = times["python -c pass"]
        for name in ("gpumem --help", "gpumem calc --params 70B"):
            goals.append((f"{name}: {times[name] * 1000:.0f} ms, {(times[name] - base) * 1000:.0f} ms over "
                          f"`python -c pass` ({base * 1000:.0f} ms) <= 150 ms", times[name] - base <= 0.150, ""))

        hub.ask("latency 0.05")
        wall, log, out = cli(hub, MANY, fresh(), pycache)
        reports = json.loads(out)
        many = (f"100 repos x 4 shards @ 50 ms, `gpumem hf` x100 in one process: {wall:.2f} s wall "
                f"(start-up included), {len(log)} requests, {len(reports)} reports")
        goals.append((many + " < 3 s", wall < 3 and len(reports) == 100, ""))
    finally:
        hub.close()
        shutil.rmtree(work, ignore_errors=True)

    print_table(rows)
    print()
    print("Start-up (median of runs, bytecode cached):")
    for name, seconds in times.items():
        print(f"  {name:28s} {seconds * 1000:6.0f} ms")
    print()
    print("Note: " + HF_MEM_NOTE)
    print()
    print("Goals:")
    for text, ok, _ in goals:
        print(f"  {'PASS' if ok else 'FAIL'}  {text}")
    return 0 if all(ok for _, ok, _ in goals) else 1


def print_table(rows: list[Row]) -> None:
    cold = {(r.latency_ms, r.repo): r for r in rows if r.tool.startswith("gpumem cold (in")}
    head = f"| {'latency':>7} | {'repo (shards)':34} | {'tool':40} | {'wall s':>7} | {'requests':>8} | " \
           f"{'bytes read':>11} | {'x wall':>7} | {'x bytes':>7} |"
    print(head)
    print("|" + "|".join("-" * (len(part) + 0) for part in head.split("|")[1:-1]) + "|")
    for r in rows:
        base = cold[(r.latency_ms, r.repo)]
        x_wall = f"{r.wall / base.wall:.2f}" if r.wall is not None else ""
        x_bytes = f"{r.bytes_read / base.bytes_read:.2f}" if r.bytes_read is not None else ""
        wall = f"{r.wall:.3f}" if r.wall is not None else r.note
        requests = "" if r.requests is None else str(r.requests)
        bytes_read = "" if r.bytes_read is None else f"{r.bytes_read:,}"
        repo = f"{r.repo} ({REPOS[r.repo]})"
        print(f"| {r.latency_ms:>4} ms | {repo:34} | {r.tool:40} | {wall:>7} | {requests:>8} | {bytes_read:>11} | "
              f"{x_wall:>7} | {x_bytes:>7} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="50 ms only, fewer repeats")
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    sys.exit(run([50] if args.quick else [0, 20, 50], 3 if args.quick else 5))


if __name__ == "__main__":
    main()
