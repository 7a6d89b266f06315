"""Benchmark gpumem against huggingface_hub (and hf-mem) on the loopback fake Hub, side by side.

    python scripts/benchmark.py            # HTTPS and HTTP at 50 ms per request (a few minutes)
    python scripts/benchmark.py --quick    # HTTPS only, 3 repeats
    python scripts/benchmark.py --stacks   # only the HTTP-stack waves (HTTPS, HTTP/1.1 and HTTP/2)

The fake Hub (gpumem_dev.fakehub) runs in its own process, as the real Hub is not in yours: sharing the
GIL with the client would charge the server's work to the client. It sleeps `latency` before every
answer and, as the real Hub does, answers small files with a 307 to /api/resolve-cache/... and weight
files with a 302 to a CDN host; over HTTPS with a throw-away CA (trustme). So a cold read of a sharded
repo costs at least 4 x latency on its critical path. Requests, bytes and connections come from the
server's own log. Repos: dense (gpt2, Llama-2-70B, the 191-shard Llama-3.1-405B) and MoE (Mixtral-8x7B,
the 163-shard, 92k-tensor DeepSeek-R1). First, the same shard-header waves (405B, DeepSeek-R1) through each HTTP
stack; over HTTPS the fake Hub offers HTTP/2 in ALPN beside HTTP/1.1, as the real Hub does.

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
sys.path.insert(0, str(ROOT / "src"))  # gpumem and gpumem_dev (the fake Hub), when run without PYTHONPATH=src

REPOS = {  # repo id -> shards
    "openai-community/gpt2": 1,
    "meta-llama/Llama-2-70b-hf": 15,
    "mistralai/Mixtral-8x7B-v0.1": 19,
    "deepseek-ai/DeepSeek-R1": 163,
    "meta-llama/Llama-3.1-405B": 191,
}
FIVE_X = ("deepseek-ai/DeepSeek-R1", "meta-llama/Llama-3.1-405B")  # >= 5x get_safetensors_metadata over HTTPS
MANY = [f"bench/llama-{i:03d}" for i in range(100)]  # 100 repos x 4 shards for `gpumem hf A B C ...`
HF_MEM_NOTE = ("hf-mem 0.5.6 (PyPI): n/a - every URL is hard-coded to https://huggingface.co (hf_mem/run.py), "
               "no HF_ENDPOINT or base-URL option, so it cannot be pointed at the fake Hub")


# -- the fake Hub, in a child process -----------------------------------------------------------

def deepseek_r1_repo():
    """deepseek-ai/DeepSeek-R1 as stored: the real config, FP8 + block scales, 163 shards (as tests/test_formats_e2e.py)."""
    from gpumem_dev.fakehub import formats as fmt
    from gpumem_dev.fakehub.layouts import deepseek_v3_layout

    config = json.loads((ROOT / "fixtures" / "hub" / "deepseek-ai__DeepSeek-R1" / "config.json").read_text())
    return fmt.sharded_repo("deepseek-ai/DeepSeek-R1", config, fmt.as_tuples(deepseek_v3_layout(config)), 163,
                            name_format="model-{i:05d}-of-{n:06d}.safetensors")


def serve(ca_file: str | None) -> None:
    """Child-process mode: serve the benchmark repos (over HTTPS with a throw-away CA written to `ca_file`,
    small files through the resolve-cache redirect as the real Hub does); answer one command per stdin line."""
    from gpumem_dev.fakehub import FakeHub, llama2_70b_repo, repo_from_fixture, synthetic_sharded_repo

    tls = None
    if ca_file:
        import trustme

        tls = trustme.CA()
        tls.cert_pem.write_to_path(ca_file)
    repos = [repo_from_fixture("openai-community__gpt2"), llama2_70b_repo(),
             repo_from_fixture("mistralai__Mixtral-8x7B-v0.1"), deepseek_r1_repo(), synthetic_sharded_repo()]
    repos += [synthetic_sharded_repo(repo_id, n_shards=4, num_layers=8) for repo_id in MANY]
    hub = FakeHub(repos, tls=tls, resolve_cache=True).start()
    print(hub.endpoint, flush=True)
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "latency":
            hub.latency = float(argument)
            answer = "ok"
        elif command == "reset":
            hub.reset_log()
            answer = "ok"
        elif command == "cpu":  # this process's CPU seconds so far (user + system, every thread)
            answer = str(time.process_time())
        elif command == "log":
            answer = json.dumps([[r.host, r.path, r.status, r.bytes_sent, r.timestamp, r.peer] for r in hub.requests])
        elif command == "headers":  # header bytes (8-byte length + JSON) of every safetensors file of a repo
            files = hub.repos[argument].files
            answer = json.dumps({p: len(f.prefix) for p, f in files.items() if p.endswith(".safetensors")})
        else:
            answer = f"unknown command {command!r}"
        print(answer, flush=True)
    hub.stop()


class HubProcess:
    """Start and drive the fake Hub child process (HTTPS when `ca_file` is given: the CA is written there)."""

    def __init__(self, ca_file: str | None = None) -> None:
        self.ca_file = ca_file
        self.scheme = "https" if ca_file else "http"
        command = [sys.executable, __file__, "--serve"] + (["--ca-file", ca_file] if ca_file else [])
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
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
    scheme: str
    latency_ms: int
    repo: str
    tool: str
    wall: float | None
    requests: int | None
    bytes_read: int | None
    connections: int | None = None
    note: str = ""


def traffic(log: list) -> tuple[int, int, int]:
    """(requests, body bytes, connections) in a fake-Hub log."""
    return len(log), sum(r[3] for r in log), len({r[5] for r in log})


def weight_traffic(log: list) -> tuple[int, int]:
    """(requests, bytes) of weight-file reads (resolve + CDN), excluding model info, config and index."""
    rows = [r for r in log if r[1].endswith(".safetensors")]
    return len(rows), sum(r[3] for r in rows)


def client_env(hub: HubProcess, **extra: str) -> dict:
    env = {**os.environ, "HF_ENDPOINT": hub.endpoint, **extra}
    if hub.ca_file:  # requests/urllib3 read REQUESTS_CA_BUNDLE, httpx and the ssl module SSL_CERT_FILE
        env.update(REQUESTS_CA_BUNDLE=hub.ca_file, SSL_CERT_FILE=hub.ca_file)
    return env


def in_process(hub: HubProcess, repo: str, cache: Path) -> tuple[float, list]:
    """gpumem.api.inspect_repo in this process, timed around the call only."""
    from gpumem import api
    from gpumem_dev.fakehub import GOOD_TOKEN

    os.environ["GPUMEM_CACHE_DIR"] = str(cache)
    if hub.ca_file:
        os.environ["REQUESTS_CA_BUNDLE"] = hub.ca_file
    hub.ask("reset")
    started = time.perf_counter()
    api.inspect_repo(repo, options=api.HubOptions(endpoint=hub.endpoint, token=GOOD_TOKEN))
    return time.perf_counter() - started, hub.log()


def gpumem_command() -> list[str]:
    script = Path(sys.executable).parent / "gpumem"
    return [str(script)] if script.exists() else [sys.executable, "-m", "gpumem"]


def cli(hub: HubProcess, repos: list[str], cache: Path, pycache: Path) -> tuple[float, list, str]:
    """`gpumem hf REPO... --json` as a subprocess: wall time includes interpreter start-up and imports."""
    from gpumem_dev.fakehub import GOOD_TOKEN

    env = client_env(hub, GPUMEM_CACHE_DIR=str(cache), HF_HOME=str(cache / "hf"), PYTHONPYCACHEPREFIX=str(pycache),
                     PYTHONPATH=str(ROOT / "src"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # measure start-up as an installed package runs: from bytecode
    hub.ask("reset")
    started = time.perf_counter()
    done = subprocess.run([*gpumem_command(), "hf", *repos, "--json", "-q", "--token", GOOD_TOKEN],
                          env=env, capture_output=True, text=True)
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
    from gpumem_dev.fakehub import GOOD_TOKEN

    env = client_env(hub, HF_HOME=str(home), HF_HUB_DISABLE_PROGRESS_BARS="1")
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


# -- HTTP stacks side by side: the same shard-header wave through each client --------------------------------

_STACK_SNIPPET = """
import json, os, sys, time
from concurrent.futures import ThreadPoolExecutor
sys.path.insert(0, sys.argv[5])
stack, endpoint, repo, sizes = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
ca = os.environ.get("REQUESTS_CA_BUNDLE")
urls = {f"{endpoint}/{repo}/resolve/main/{p}": n for p, n in sizes.items()}
if stack == "requests":
    import requests
    from requests.adapters import HTTPAdapter
    session = requests.Session()
    session.mount("https://", HTTPAdapter(pool_connections=16, pool_maxsize=256))
    session.mount("http://", HTTPAdapter(pool_connections=16, pool_maxsize=256))
    read = lambda url: session.get(url, headers={"Range": f"bytes=0-{urls[url] - 1}"}, timeout=30).content
elif stack == "urllib3":
    import ssl, urllib3
    context = ssl.create_default_context(cafile=ca) if ca else None
    pool = urllib3.PoolManager(num_pools=16, maxsize=256, ssl_context=context)
    read = lambda url: pool.request("GET", url, headers={"Range": f"bytes=0-{urls[url] - 1}"}, timeout=30).data
elif stack.startswith("pycurl"):
    import io, pycurl
    multi = pycurl.CurlMulti()
    multi.setopt(pycurl.M_MAX_TOTAL_CONNECTIONS, 48)
    def add(url, n):
        handle = pycurl.Curl()
        handle.body = io.BytesIO()
        handle.range_bytes = n
        handle.setopt(pycurl.URL, url)
        handle.setopt(pycurl.WRITEDATA, handle.body)
        handle.setopt(pycurl.HTTPHEADER, [f"Range: bytes=0-{n - 1}", "Accept-Encoding: identity"])
        handle.setopt(pycurl.PIPEWAIT, 1)
        if ca:
            handle.setopt(pycurl.CAINFO, ca)
        if stack == "pycurl multi, HTTP/1.1":
            handle.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
        multi.add_handle(handle)
else:
    import threading
    from gpumem.reading.hub import HubClient
    client = HubClient(endpoint, False)
    ended, left = threading.Event(), [len(urls)]
    def done(data, error):  # on the HTTP thread, as fetch's header wave takes each answer
        assert error is None and data is not None, error
        left[0] -= 1
        if not left[0]:
            ended.set()
wall, cpu = time.perf_counter(), time.process_time()
if stack == "gpumem (HubClient, libcurl)":  # every read in flight at once, driven from the HTTP thread
    for url in urls:
        client.start(client.range_steps(repo, "main", url.rsplit("/", 1)[1], 0, urls[url]), done)
    ended.wait()
elif stack.startswith("pycurl"):  # one thread drives every transfer; each 302 is followed by hand, as gpumem does
    for url, n in urls.items():
        add(url, n)
    running, left = len(urls), len(urls)
    while left:
        while multi.perform()[0] == pycurl.E_CALL_MULTI_PERFORM:
            pass
        while True:
            queued, done, failed = multi.info_read()
            for handle in done:
                multi.remove_handle(handle)
                if handle.getinfo(pycurl.RESPONSE_CODE) in (301, 302, 307):
                    add(handle.getinfo(pycurl.REDIRECT_URL), handle.range_bytes)
                else:
                    assert len(handle.body.getvalue()) == handle.range_bytes, handle.getinfo(pycurl.RESPONSE_CODE)
                    left -= 1
                handle.close()
            if failed:
                raise SystemExit(f"pycurl: {failed[0][2]}")
            if not queued:
                break
        if left:  # wait for a socket, or as long as libcurl asks (it may hold decoded data already)
            wait = multi.timeout()
            multi.select(min(1.0, wait / 1000) if wait >= 0 else 1.0)
else:
    with ThreadPoolExecutor(len(urls)) as workers:
        list(workers.map(read, urls))
print(json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}))
"""
STACKS = ("requests", "urllib3", "gpumem (HubClient, libcurl)", "pycurl multi, HTTP/1.1", "pycurl multi, HTTP/2")
STACK_REPOS = ("meta-llama/Llama-3.1-405B", "deepseek-ai/DeepSeek-R1")


def stack_wave(hub: HubProcess, stack: str, repo: str, sizes: dict[str, int]) -> dict:
    """One wave of shard-header reads (resolve -> 302 -> CDN range of each header's size) through one HTTP
    stack, in a fresh process (imports and set-up excluded from the timing): wall, client CPU, requests,
    connections, and the HTTP versions the fake Hub saw."""
    hub.ask("reset")
    server_cpu = float(hub.ask("cpu"))
    done = subprocess.run([sys.executable, "-c", _STACK_SNIPPET, stack, hub.endpoint, repo, json.dumps(sizes),
                           str(ROOT / "src")], env=client_env(hub), capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{stack} wave failed: {done.stderr.strip()[-500:]}")
    server_cpu = float(hub.ask("cpu")) - server_cpu
    requests_, _, connections = traffic(hub.log())
    return {**json.loads(done.stdout.splitlines()[-1]), "requests": requests_, "connections": connections,
            "server_cpu": server_cpu}


def stack_waves(hub: HubProcess, header_bytes: dict, repeats: int) -> list[tuple[str, str, str, dict]]:
    """Every stack on every STACK_REPOS wave: (scheme, repo, stack, the median run's figures)."""
    return [(hub.scheme, repo, stack, median_run(lambda: (lambda r: (r["wall"], r))(
                stack_wave(hub, stack, repo, header_bytes[repo])), repeats)[1])
            for repo in STACK_REPOS for stack in STACKS]


def print_stacks(stacks: list[tuple[str, str, str, dict]], latency_ms: int, repeats: int) -> None:
    print(f"HTTP stacks: one wave of shard-header reads (resolve -> 302 -> CDN range of the header's size each), "
          f"{latency_ms} ms per request, median of {repeats}:")
    print()
    print("| scheme | repo (shards) | stack | wall s | client CPU s | CPU ms / request | fake Hub CPU s | requests | "
          "connections |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for scheme, repo, stack, r in stacks:
        print(f"| {scheme} | {repo} ({REPOS[repo]}) | {stack} | {r['wall']:.3f} | {r['cpu']:.3f} | "
              f"{1000 * r['cpu'] / r['requests']:.2f} | {r['server_cpu']:.3f} | {r['requests']} | {r['connections']} |")


def stacks_only(latency_ms: int, repeats: int) -> int:
    """`--stacks`: only the HTTP-stack waves, over HTTPS."""
    work = Path(tempfile.mkdtemp(prefix="gpumem-bench-"))
    hub = HubProcess(str(work / "ca.pem"))
    try:
        header_bytes = {repo: json.loads(hub.ask(f"headers {repo}")) for repo in STACK_REPOS}
        hub.ask(f"latency {latency_ms / 1000}")
        stacks = stack_waves(hub, header_bytes, repeats)
    finally:
        hub.close()
        shutil.rmtree(work, ignore_errors=True)
    print_stacks(stacks, latency_ms, repeats)
    return 0


def startup(pycache: Path, repeats: int) -> dict[str, float]:
    """Median wall seconds of `python -c pass`, `gpumem --help` and `gpumem calc --params 70B`."""
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(pycache), "PYTHONPATH": str(ROOT / "src")}
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

def run(latency_ms: int, repeats: int, schemes: list[str]) -> int:
    work = Path(tempfile.mkdtemp(prefix="gpumem-bench-"))
    hubs = {scheme: HubProcess(str(work / "ca.pem") if scheme == "https" else None) for scheme in schemes}
    pycache = work / "pycache"
    rows: list[Row] = []
    stacks: list[tuple[str, str, str, dict]] = []
    goals: list[tuple[str, bool]] = []
    counter = iter(range(10**6))

    def fresh() -> Path:
        return work / f"cache-{next(counter)}"

    try:
        first = hubs[schemes[0]]
        header_bytes = {repo: json.loads(first.ask(f"headers {repo}")) for repo in REPOS}
        cli(first, ["openai-community/gpt2"], fresh(), pycache)  # warm the bytecode cache for the CLI rows
        for scheme, hub in hubs.items():
            hub.ask(f"latency {latency_ms / 1000}")
            stacks += stack_waves(hub, header_bytes, repeats)
            for repo, shards in REPOS.items():
                wall, log = in_process(hub, repo, fresh())  # a first cold run warms this process's imports
                wall, log = median_run(lambda: in_process(hub, repo, fresh()), repeats)
                cold = Row(scheme, latency_ms, repo, "gpumem cold (in-process)", wall, *traffic(log))
                rows.append(cold)
                if scheme == schemes[0] and shards > 1:  # the bound is for sharded repos (index-sized reads)
                    requests_w, bytes_w = weight_traffic(log)
                    headers = sum(header_bytes[repo].values())
                    limit = 1.25 * headers + 16 * 1024 * len(header_bytes[repo])
                    goals.append((f"{repo}: weight-file bytes {bytes_w:,} <= 1.25 x {headers:,} header bytes + "
                                  f"16 KiB x {len(header_bytes[repo])} files = {limit:,.0f}", bytes_w <= limit))
                    goals.append((f"{repo}: one read per shard ({requests_w} weight-file requests for {shards} "
                                  f"shards: resolve + CDN each)", requests_w == 2 * shards))
                cache = fresh()
                wall, log, _ = median_run(lambda: cli(hub, [repo], fresh(), pycache), max(1, repeats // 2))
                rows.append(Row(scheme, latency_ms, repo, "gpumem cold (CLI, with start-up)", wall, *traffic(log)))
                in_process(hub, repo, cache)
                wall, log = in_process(hub, repo, cache)  # the same cache: now warm
                rows.append(Row(scheme, latency_ms, repo, "gpumem cached (in-process)", wall, *traffic(log)))
                goals.append((f"{repo} over {scheme}: cached run makes {len(log)} request(s) <= 1", len(log) <= 1))
                wall, log = hf_hub(hub, repo, fresh())
                rows.append(Row(scheme, latency_ms, repo, "huggingface_hub get_safetensors_metadata", wall,
                                *traffic(log)))
                if repo in FIVE_X and scheme == "https":
                    goals.append((f"{repo} over https @ {latency_ms} ms: gpumem cold {cold.wall:.3f} s >= 5x faster "
                                  f"than get_safetensors_metadata {wall:.3f} s ({wall / cold.wall:.1f}x)",
                                  wall >= 5 * cold.wall))
                rows.append(Row(scheme, latency_ms, repo, "hf-mem", None, None, None, note="n/a (see note)"))

        times = startup(pycache, max(5, repeats * 2))
        base = times["python -c pass"]
        for name in ("gpumem --help", "gpumem calc --params 70B"):
            goals.append((f"{name}: {times[name] * 1000:.0f} ms, {(times[name] - base) * 1000:.0f} ms over "
                          f"`python -c pass` ({base * 1000:.0f} ms) <= 150 ms", times[name] - base <= 0.150))

        hub = hubs[schemes[0]]
        wall, log, out = cli(hub, MANY, fresh(), pycache)
        reports = json.loads(out)
        many = (f"100 repos x 4 shards over {hub.scheme} @ {latency_ms} ms, `gpumem hf` x100 in one process: "
                f"{wall:.2f} s wall (start-up included), {len(log)} requests, {traffic(log)[2]} connections, "
                f"{len(reports)} reports")
        goals.append((many + " < 3 s", wall < 3 and len(reports) == 100))
    finally:
        for hub in hubs.values():
            hub.close()
        shutil.rmtree(work, ignore_errors=True)

    print_stacks(stacks, latency_ms, repeats)
    print()
    print_table(rows)
    print()
    print("Start-up (median of runs, bytecode cached):")
    for name, seconds in times.items():
        print(f"  {name:28s} {seconds * 1000:6.0f} ms")
    print()
    print("Note: " + HF_MEM_NOTE)
    print()
    print("Goals:")
    for text, ok in goals:
        print(f"  {'PASS' if ok else 'FAIL'}  {text}")
    return 0 if all(ok for _, ok in goals) else 1


def print_table(rows: list[Row]) -> None:
    cold = {(r.scheme, r.repo): r for r in rows if r.tool.startswith("gpumem cold (in")}
    print("| scheme | repo (shards) | tool | wall s | requests | connections | bytes read | x wall | x bytes |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        base = cold[(r.scheme, r.repo)]
        x_wall = f"{r.wall / base.wall:.2f}" if r.wall is not None else ""
        x_bytes = f"{r.bytes_read / base.bytes_read:.2f}" if r.bytes_read is not None else ""
        wall = f"{r.wall:.3f}" if r.wall is not None else r.note
        numbers = ["" if v is None else f"{v:,}" for v in (r.requests, r.connections, r.bytes_read)]
        print(f"| {r.scheme} | {r.repo} ({REPOS[r.repo]}) | {r.tool} | {wall} | {' | '.join(numbers)} | "
              f"{x_wall} | {x_bytes} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ca-file", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="HTTPS only, fewer repeats")
    parser.add_argument("--stacks", action="store_true", help="only the HTTP-stack comparison (HTTPS, 3 repeats)")
    parser.add_argument("--latency", type=int, default=50, help="milliseconds per request (default 50)")
    args = parser.parse_args()
    if args.serve:
        serve(args.ca_file)
        return
    if args.stacks:
        sys.exit(stacks_only(args.latency, 3))
    sys.exit(run(args.latency, 3 if args.quick else 5, ["https"] if args.quick else ["https", "http"]))


if __name__ == "__main__":
    main()
