"""Measure llama.cpp's own memory estimate (llama-fit-params --fit-print) for Llama-2-7B Q4_K_M shapes.

    LLAMA_FIT_PARAMS=/path/to/llama.cpp/build/bin/llama-fit-params \
        PYTHONPATH=src python scripts/measure_llamacpp.py fixtures/measurements/llamacpp-b11434-cpu.jsonl

Writes the model's header (fixtures/gguf/llama-2-7b.Q4_K_M.header.gguf's tensors, plus a 32,000-token
placeholder vocabulary) into a sparse file of the real size: llama.cpp sizes every buffer without allocating
or reading weights (`--fit-print` loads with no_alloc), so nothing but the header is ever written to disk.
Each run prints "device model_MiB context_MiB compute_MiB" for every device (here the host: a CPU build).
Used as held-out evidence for the current build (docs/llamacpp.md); needs a llama.cpp build, not a GPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from gpumem_dev import make_gguf_fixtures as make

ROOT = Path(__file__).resolve().parent.parent

# (flags as llama-server takes them, settings in gpumem's terms)
RUNS = (
    ("-c 4096", {"n_ctx": 4096}),
    ("-c 4096 -fa off", {"n_ctx": 4096, "flash_attn": False}),
    ("-c 8192 -np 4 -ctk q8_0 -ctv q8_0", {"n_ctx": 8192, "n_seq": 4, "type_k": "q8_0", "type_v": "q8_0"}),
    ("-c 16384 -ub 1024 -fa off", {"n_ctx": 16384, "n_ubatch": 1024, "flash_attn": False}),
    ("-c 32768 -ctk q4_0 -ctv q4_0", {"n_ctx": 32768, "type_k": "q4_0", "type_v": "q4_0"}),
    ("-c 2048 -ub 256 -b 256", {"n_ctx": 2048, "n_ubatch": 256, "n_batch": 256}),
)


def sparse_llama2(path: Path) -> None:
    """Llama-2-7B Q4_K_M: the real header, then a hole as long as the tensor data."""
    make.write_llama2_header(path, [f"<t{i}>" for i in range(32000)], data_hole=True)


def main(out: str) -> int:
    binary = os.environ.get("LLAMA_FIT_PARAMS", "llama-fit-params")
    # A build from a source archive reports "build 0": say which source it was (LLAMA_BUILD, e.g. "b11434 ...").
    version = os.environ.get("LLAMA_BUILD") or subprocess.run(
        [binary, "--version"], capture_output=True, text=True).stderr.strip().splitlines()[0]
    with tempfile.TemporaryDirectory() as folder:
        model = Path(folder) / "llama-2-7b.Q4_K_M.gguf"
        sparse_llama2(model)
        rows = []
        for flags, settings in RUNS:
            result = subprocess.run([binary, "-m", str(model), "--fit-print", "on", *flags.split()],
                                    capture_output=True, text=True, check=True)
            device, _, context, compute = result.stdout.split()[-4:]
            rows.append({"id": f"b11434-cpu-llama2-7b-q4km {flags}", "build": version,
                         "flags": flags, "settings": settings, "device": device,
                         "measured_MiB": {"kv_total": int(context), "compute_host": int(compute)}})
    Path(out).write_text("".join(json.dumps(row) + "\n" for row in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
