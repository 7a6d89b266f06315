"""Measure serving memory on a real GPU, the way fixtures/measurements/ was measured (needs torch + transformers).

Each model is built from its real config.json with uninitialised bf16 weights directly on the GPU; a
prefill of batch x seq random tokens runs with use_cache=True and logits for the last position only.
Writes one JSON object per line (same fields as fixtures/measurements/h200-transformers-bf16.jsonl).

    python scripts/measure_gpu.py OUT.jsonl fixtures/hub/Qwen__Qwen2.5-7B/config.json:1x4096,8x4096 ...
"""

from __future__ import annotations

import gc
import json
import sys
import time

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM


def kv_bytes(cache) -> int:
    """Bytes of every key/value tensor a transformers cache holds."""
    total = 0
    for layer in getattr(cache, "layers", []):
        for name in ("keys", "values"):
            tensor = getattr(layer, name, None)
            if isinstance(tensor, torch.Tensor):
                total += tensor.numel() * tensor.element_size()
    return total


def measure(config_path: str, shapes: list[tuple[int, int]], base: dict) -> list[dict]:
    config = AutoConfig.from_pretrained(config_path)
    name = config_path.split("/")[-2].split("__")[-1]
    started = time.time()
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.eval()
    torch.cuda.synchronize()
    weights = torch.cuda.memory_allocated()
    params = sum(p.numel() for p in model.parameters())
    rows = [{"kind": "weights", "model": name, "params": params, "allocated_bytes": weights,
             "build_s": round(time.time() - started, 1), **base}]
    for batch, seq in shapes:
        ids = torch.randint(0, config.vocab_size, (batch, seq), device="cuda")
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        with torch.no_grad():
            out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
        torch.cuda.synchronize()
        rows.append({"kind": "serve", "model": name, "batch": batch, "seq": seq, "tokens": batch * seq,
                     "kv_bytes_measured": kv_bytes(out.past_key_values),
                     "prefill_peak_over_weights_bytes": torch.cuda.max_memory_allocated() - before,
                     "weights_bytes": weights, **base})
        del out, ids
        gc.collect()
        torch.cuda.empty_cache()
    del model
    gc.collect()
    torch.cuda.empty_cache()
    return rows


def main() -> None:
    out_path, *specs = sys.argv[1:]
    free, total = torch.cuda.mem_get_info()
    base = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "transformers": transformers.__version__}
    device_row = {"kind": "device", "total_bytes": total, "free_bytes": free,
                  "context_overhead_bytes": total - free, **base}
    with open(out_path, "w") as out:
        out.write(json.dumps(device_row) + "\n")
        for spec in specs:
            path, shapes = spec.split(":")
            pairs = [tuple(int(x) for x in s.split("x")) for s in shapes.split(",")]
            for row in measure(path, pairs, base):
                out.write(json.dumps(row) + "\n")
                out.flush()
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
