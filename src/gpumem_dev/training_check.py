"""gpumem's training model against published fine-tuning measurements (fixtures/measurements/finetune-public-memory.jsonl).

Each usable row (a measured peak of a model in the built-in snapshot, with its settings known and nothing the
model leaves out: CPU offload, torch.compile, chunked loss, optimizer-in-backward, Unsloth kernels) is turned
into TrainingOptions and predicted. LitGPT's single-GPU rows fit ACTIVATION_FACTOR (the one fitted constant):
they are the only source whose sequence length (the longest Alpaca sample, run first on purpose) and
counter (max_memory_allocated) are both exact. Every other row is held out. Counters are compared like for like: torch's allocated/active
and reserved peaks against the prediction without the CUDA context and NCCL buffers, device-level figures
(nvidia-smi, screenshots) against the whole prediction.

    python scripts/training_check.py            # the table and the errors (Markdown)
    python scripts/training_check.py --fit      # also the least-squares factor on the fit rows
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from dataclasses import dataclass
from functools import cache

from gpumem import api
from gpumem.planning.training import (
    ACTIVATION_FACTOR,
    TrainingBase,
    TrainingOptions,
    activation_terms,
    estimate_training,
    overhead_bytes,
)
from gpumem_dev.fixtures import ROOT

MEASUREMENTS = ROOT / "fixtures" / "measurements" / "finetune-public-memory.jsonl"
# Published model name -> the snapshot repo with its exact tensors (same architecture and shapes).
MODELS = {"meta-llama/Llama-2-7b-hf": "meta-llama/Llama-2-7b-hf", "meta-llama/Llama-3.1-8B": "meta-llama/Llama-3.1-8B",
          "meta-llama/Meta-Llama-3-8B": "meta-llama/Meta-Llama-3-8B", "meta-llama/Llama-2-70b-hf":
          "meta-llama/Llama-2-70b-hf"}
FIT_FRAMEWORK = "lit-gpt"  # its single-GPU rows
# Settings the model does not describe: rows that use them are listed, not predicted.
_UNMODELLED = re.compile(r"compile|chunked|optimizer_in_bwd|in.backward|offload|unsloth|packed", re.IGNORECASE)
# Published target names (LitGPT, torchtune) -> the checkpoint's module names.
_TARGETS = {"query": ("q_proj",), "value": ("v_proj",), "key": ("k_proj",), "q_proj": ("q_proj",),
            "k_proj": ("k_proj",), "v_proj": ("v_proj",), "o_proj": ("o_proj",), "output_proj": ("o_proj",),
            "gate_proj": ("gate_proj",), "up_proj": ("up_proj",), "down_proj": ("down_proj",),
            "mlp": ("gate_proj", "up_proj", "down_proj"), "mlp (w1,w2,w3)": ("gate_proj", "up_proj", "down_proj"),
            "output": ("lm_head",)}
_UNITS = {"GiB": 2**30, "GB": 10**9, "MB": 10**6, "bytes": 1, "G": 10**9}


@dataclass(frozen=True)
class Row:
    id: str
    framework: str
    model: str
    options: TrainingOptions
    gpus: int
    counter: str  # "allocated" | "reserved" | "device"
    reported_bytes: int
    fit: bool  # in the fit set (else held out)


def _options(row: dict) -> tuple[TrainingOptions, int] | str:
    """The row's settings as TrainingOptions and its GPU count, or why it cannot be predicted."""
    method = row["method"]
    if method not in ("full", "lora", "qlora"):
        return f"method {method!r}"
    sharding = row.get("sharding") or {}
    if sharding.get("cpu_offload") or _UNMODELLED.search(" ".join(str(row.get(k) or "") for k in
                                                                   ("optimizer", "other_optimizations"))):
        return "CPU offload, compile, chunked loss or optimizer-in-backward"
    if row.get("seq_len") is None or row.get("micro_batch_size") is None or row.get("gradient_checkpointing") is None:
        return "sequence length, micro-batch or checkpointing not stated"
    precision = str(row.get("precision") or "")
    if re.search(r"bf16-mixed|fp32 weights|over fp32", precision):
        return "fp32 base weights under autocast"
    master = bool(re.search(r"mixed|AMP|master", precision)) and not re.search(r"pure|true|no fp32 master", precision)
    optimizer_text = str(row.get("optimizer") or "")
    if "not stated" in optimizer_text:
        return "optimizer not stated"
    optimizer = ("paged-adamw-8bit" if re.search(r"paged.?adamw.?8", optimizer_text, re.IGNORECASE)
                 else "adamw-8bit" if re.search(r"8.?bit", optimizer_text, re.IGNORECASE)
                 else "sgd" if "SGD" in optimizer_text else "adamw")
    lora = row.get("lora") or {}
    targets: tuple[str, ...] | str = "all-linear"
    if method != "full":
        listed = lora.get("targets")
        if isinstance(listed, list):
            if any(t not in _TARGETS for t in listed):
                return f"LoRA targets {listed}"
            targets = tuple(dict.fromkeys(name for t in listed for name in _TARGETS[t]))
        elif not (isinstance(listed, str) and "all" in listed):
            return f"LoRA targets {listed!r}"
    strategy = str(sharding.get("strategy") or "none")
    gpus = int(sharding.get("num_gpus") or 1)
    zero = (0 if gpus == 1 or "ddp" in strategy.lower() else 3 if re.search(r"FSDP|ZeRO-3", strategy)
            else 2 if "ZeRO-2" in strategy else 1 if "ZeRO-1" in strategy else 0)
    double_quant = (row.get("quantization") or {}).get("double_quant") is not False
    options = TrainingOptions(method=method, rank=int(lora.get("r") or 8), target_modules=targets, optimizer=optimizer,
                              master_weights=master, batch=row["micro_batch_size"], seq_len=row["seq_len"],
                              gradient_checkpointing=bool(row["gradient_checkpointing"]), zero=zero,
                              double_quant=double_quant)
    return options, gpus


def _reported(row: dict) -> tuple[str, int] | str:
    """(counter, bytes) of the row's peak."""
    measurement = str(row.get("measurement") or "")
    for key, value in row["reported"].items():
        if not isinstance(value, (int, float)) or "after_model_init" in key or "cpu" in key.lower():
            continue
        unit = next((u for u in _UNITS if re.search(rf"(^|_){u}(_|$)", key)), None)
        if unit is None:
            continue
        text = f"{key} {measurement}".lower()
        counter = ("allocated" if re.search(r"allocated|active", key.lower()) or "max_memory_allocated()" in text
                   else "reserved" if "reserved" in text
                   else "device" if re.search(r"screenshot|device|nvidia-smi|gram|prose|vram", text) else "allocated")
        return counter, round(value * _UNITS[unit])
    return "no single peak figure"


def rows() -> tuple[list[Row], list[tuple[str, str]]]:
    """Usable rows, and (id, reason) for the measured rows of known models that are not."""
    usable, skipped = [], []
    for line in MEASUREMENTS.read_text().splitlines():
        row = json.loads(line)
        if row["status"] != "measured" or row["model"] not in MODELS:
            continue
        options = _options(row)
        reported = _reported(row)
        if isinstance(options, str) or isinstance(reported, str):
            skipped.append((row["id"], options if isinstance(options, str) else reported))
            continue
        framework = row["framework"].split(" ")[0]
        usable.append(Row(row["id"], framework, row["model"], options[0], options[1], reported[0], reported[1],
                          framework == FIT_FRAMEWORK and options[1] == 1))
    return usable, skipped


@cache
def _base(model: str) -> TrainingBase:
    return api.training_base(api.inspect_repo(MODELS[model], options=api.HubOptions(offline=True, use_cache=False)))


def predict(row: Row, factor: float = ACTIVATION_FACTOR) -> int:
    """Predicted bytes on the row's counter."""
    base = _base(row.model)
    estimate = estimate_training(base, row.options)
    per_gpu = estimate.per_gpu(row.gpus)
    fixed, scaled = activation_terms(base.architecture, base.modules, row.options)
    total = per_gpu.total_bytes - per_gpu.activation_bytes + fixed + round(factor * scaled)
    return total if row.counter == "device" else total - overhead_bytes(row.gpus)


def fit_factor(fit_rows: list[Row]) -> float:
    """Least squares on relative error: the factor minimising sum((S + k A) / R - 1)^2."""
    numerator = denominator = 0.0
    for row in fit_rows:
        without = predict(row, 0.0)
        scaled = predict(row, 1.0) - without
        a, s = scaled / row.reported_bytes, without / row.reported_bytes
        numerator += a * (1 - s)
        denominator += a * a
    return numerator / denominator


def errors(selected: list[Row], factor: float) -> list[float]:
    return [predict(r, factor) / r.reported_bytes - 1 for r in selected]


def summary(values: list[float]) -> str:
    if not values:
        return "no rows"
    absolute = [abs(v) for v in values]
    return (f"{len(values)} rows: median |error| {statistics.median(absolute):.1%}, mean {statistics.mean(absolute):.1%}, "
            f"largest {max(absolute):.1%}")


def report(factor: float = ACTIVATION_FACTOR) -> str:
    """The Markdown table of docs/training.md."""
    usable, skipped = rows()
    fit_rows = [r for r in usable if r.fit]
    held = [r for r in usable if not r.fit]
    lines = ["| row | framework | method | settings | GPUs | counter | reported (GB) | predicted (GB) | error | set |",
             "| --- | --- | --- | --- | ---: | --- | ---: | ---: | ---: | --- |"]
    for r in sorted(usable, key=lambda r: (not r.fit, r.framework, r.id)):
        o = r.options
        targets = o.target_modules if isinstance(o.target_modules, str) else ",".join(o.target_modules)
        settings = (f"{o.optimizer}{'' if o.master_weights else ', pure bf16'}, {o.batch}x{o.seq_len}, "
                    f"GC {'on' if o.gradient_checkpointing else 'off'}"
                    + (f", r {o.rank} {targets}" if o.method != "full" else "") + (f", ZeRO {o.zero}" if r.gpus > 1 else ""))
        predicted = predict(r, factor)
        lines.append(f"| {r.id} | {r.framework} | {o.method} | {settings} | {r.gpus} | {r.counter} | "
                     f"{r.reported_bytes / 1e9:.2f} | {predicted / 1e9:.2f} | {predicted / r.reported_bytes - 1:+.1%} | "
                     f"{'fit' if r.fit else 'held out'} |")
    lines += ["", f"- Fit ({FIT_FRAMEWORK}, one GPU): {summary(errors(fit_rows, factor))}",
              f"- Held out (every other row): {summary(errors(held, factor))}"]
    for counter in ("allocated", "reserved", "device"):
        chosen = [r for r in held if r.counter == counter]
        lines.append(f"  - held out, {counter} counter: {summary(errors(chosen, factor))}")
    lines += [
              f"- Not predicted ({len(skipped)} measured rows of these models): "
              + "; ".join(f"{i} ({why})" for i, why in skipped)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", action="store_true", help="print the least-squares factor on the fit rows")
    args = parser.parse_args()
    if args.fit:
        usable, _ = rows()
        print(f"fitted ACTIVATION_FACTOR = {fit_factor([r for r in usable if r.fit]):.4f} "
              f"(in use: {ACTIVATION_FACTOR})\n")
    sys.stdout.write(report())


if __name__ == "__main__":
    main()
