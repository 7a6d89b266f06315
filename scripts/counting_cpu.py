"""CPU of turning DeepSeek-R1's 163 safetensors headers into a summary, on one thread, step by step.

    python scripts/counting_cpu.py                          # this tree alone
    python scripts/counting_cpu.py --baseline /tmp/old/src  # side by side with another tree, alternating
    python scripts/counting_cpu.py --layout by-dtype        # tensors laid out as safetensors' writer lays them out

The headers are the benchmark's (gpumem_dev.fakehub: the real config, FP8 with block scales, 91,991 tensors, model
order); `by-dtype` re-lays each file by dtype alignment, then name, as safetensors' own writer does (a module's
FP8 weight and F32 scale then lie apart). Steps, as the Hub reader runs them: parse_header per header, NameParts
per header, merge (fetch's merge of the tables + NameParts.concat), summarize_table. Process CPU per step,
min / median over the runs, and garbage collections per read. A baseline tree (e.g. `git archive COMMIT src | tar
-x -C /tmp/old`) is imported under another package name and alternated run by run with this one.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import shutil
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

STEPS = ("parse", "nameparts", "merge", "summarize", "total")
_ALIGNMENT = {"F64": 8, "I64": 8, "U64": 8, "C64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2,
              "U16": 2}


def deepseek_headers(layout: str) -> tuple[list[tuple[str, bytes, int]], dict]:
    """(path, header bytes, file size) per shard of DeepSeek-R1 as the benchmark's fake Hub serves it, and its config."""
    from gpumem_dev.fakehub import formats as fmt
    from gpumem_dev.fakehub.layouts import deepseek_v3_layout

    config = json.loads((ROOT / "fixtures" / "hub" / "deepseek-ai__DeepSeek-R1" / "config.json").read_text())
    repo = fmt.sharded_repo("deepseek-ai/DeepSeek-R1", config, fmt.as_tuples(deepseek_v3_layout(config)), 163,
                            name_format="model-{i:05d}-of-{n:06d}.safetensors")
    headers = [(path, bytes(f.prefix), f.size) for path, f in sorted(repo.files.items()) if path.endswith(".safetensors")]
    return (headers if layout == "model" else [_by_dtype(*header) for header in headers]), config


def _by_dtype(path: str, data: bytes, size: int) -> tuple[str, bytes, int]:
    length = struct.unpack("<Q", data[:8])[0]
    entries = json.loads(data[8:8 + length])
    laid_out, offset = {"__metadata__": entries.pop("__metadata__")}, 0
    for name, entry in sorted(entries.items(), key=lambda item: (-_ALIGNMENT.get(item[1]["dtype"], 1), item[0])):
        nbytes = entry["data_offsets"][1] - entry["data_offsets"][0]
        laid_out[name] = {**entry, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    text = json.dumps(laid_out, separators=(",", ":"))
    text += " " * (-len(text) % 8)
    return path, struct.pack("<Q", len(text)) + text.encode(), 8 + len(text) + offset


def load_tree(package: str):
    return tuple(importlib.import_module(f"{package}.{module}")
                 for module in ("model.safetensors_header", "model.params", "reading.fetch"))


def one_read(tree, headers, config) -> tuple[list[float], object]:
    parser, params, fetch = tree
    marks = [time.process_time()]
    parsed = [parser.parse_header(data, path, size) for path, data, size in headers]
    marks.append(time.process_time())
    parts = [params.NameParts.of(header.table.names) for header in parsed]
    marks.append(time.process_time())
    table, names = fetch._merge_tables(parsed), params.NameParts.concat(parts)
    marks.append(time.process_time())
    summary = params.summarize_table(table, config, None, names=names)
    marks.append(time.process_time())
    steps = [after - before for before, after in zip(marks, marks[1:])]
    return [*steps, sum(steps)], summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="src/ of another tree to run side by side")
    parser.add_argument("--layout", choices=("model", "by-dtype"), default="model")
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    headers, config = deepseek_headers(args.layout)
    trees = {"this": load_tree("gpumem")}
    if args.baseline:
        copy = Path(tempfile.mkdtemp())
        shutil.copytree(args.baseline / "gpumem", copy / "gpumem_baseline")
        sys.path.insert(0, str(copy))
        trees["baseline"] = load_tree("gpumem_baseline")
    collections = [0]
    gc.callbacks.append(lambda phase, info: collections.__setitem__(0, collections[0] + (phase == "start")))
    times: dict[str, list[list[float]]] = {name: [] for name in trees}
    counts: dict[str, list[int]] = {name: [] for name in trees}
    summaries = {}
    print(f"load {os.getloadavg()[0]:.2f}", flush=True)
    for run in range(args.runs):
        for name in (list(trees) if run % 2 else list(trees)[::-1]):
            gc.collect()
            collections[0] = 0
            steps, summaries[name] = one_read(trees[name], headers, config)
            times[name].append(steps)
            counts[name].append(collections[0])
    print(f"load {os.getloadavg()[0]:.2f}; ms min/median over {args.runs} runs, layout {args.layout}")
    for name, rows in times.items():
        columns = list(zip(*rows))
        cells = " ".join(f"{step} {min(c) * 1e3:.0f}/{statistics.median(c) * 1e3:.0f}" for step, c in zip(STEPS, columns))
        print(f"{name:9} {cells}  gc {statistics.median(counts[name]):.0f}")
    if len(summaries) == 2:
        same = repr(summaries["this"]) == repr(summaries["baseline"])  # (the trees' types are not each other's)
        print("summaries", "identical" if same else "DIFFER")


if __name__ == "__main__":
    main()
