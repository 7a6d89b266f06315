"""The llama.cpp load logs in fixtures/measurements as cases for gpumem's llama.cpp memory model.

Two sets, kept apart: the fitting logs (llamacpp-fitting-logs.jsonl, the team's shared copy, with the
hyper-parameters and settings each needs in llamacpp-fitting-inputs.json) fixed the compute-buffer constants;
the held-out logs (llamacpp-heldout-logs.jsonl: source, quote, inputs and reported sizes on one line) were
collected afterwards, from other models, builds and backends. `errors(case)` compares one case's prediction
with what llama.cpp logged, buffer by buffer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

from gpumem.model.gguf_header import parse_gguf
from gpumem.model.types import TensorInfo
from gpumem.planning.engines import llamacpp as lc

from ..fixtures import ROOT

MEASUREMENTS = ROOT / "fixtures" / "measurements"
MIB = 2**20
LLAMA2_HEADER = "fixtures/gguf/llama-2-7b.Q4_K_M.header.gguf"
LLAMA2_HPARAMS = {"arch": "llama", "n_layer": 32, "n_embd": 4096, "n_head": 32, "n_head_kv": 32, "head_k": 128,
                  "head_v": 128, "n_vocab": 32000, "n_ff": 11008}  # meta-llama/Llama-2-7b-hf config.json
# ggml type -> (elements per block, bytes per block) of the types the reconstructed pythia files use.
_BLOCKS = {"Q4_0": (32, 18), "Q8_0": (32, 34), "Q6_K": (256, 210), "F16": (1, 2), "F32": (1, 4)}


@dataclass(frozen=True)
class Case:
    """One logged llama.cpp load and what gpumem needs to predict it."""

    id: str
    set: str  # "fitting", "held-out", "measured b11434" (traced) or "held-out b11434"
    hparams: dict
    settings: dict
    expected: dict  # MiB as logged: kv_total, kv_gpu[], kv_host, compute_gpu[], compute_host, model_gpu[], model_host
    header: str | None = None


def cases() -> Iterator[Case]:
    """Every case, fitting first."""
    inputs = json.loads((MEASUREMENTS / "llamacpp-fitting-inputs.json").read_text())
    for line in (MEASUREMENTS / "llamacpp-fitting-logs.jsonl").read_text().splitlines():
        log_id = json.loads(line)["id"]
        if log_id in inputs:
            item = inputs[log_id]
            yield Case(log_id, "fitting", item["hparams"], item["settings"], item["expected"])
    for line in (MEASUREMENTS / "llamacpp-heldout-logs.jsonl").read_text().splitlines():
        item = json.loads(line)
        yield Case(item["id"], "held-out", item["hparams"], item["settings"], item["expected"], item.get("header"))
    for line in (MEASUREMENTS / "llamacpp-b11434-cpu.jsonl").read_text().splitlines():
        item = json.loads(line)  # measured by scripts/measure_llamacpp.py: llama.cpp's own estimate, CPU build
        settings = {**item["settings"], "ngl": 0, "n_gpus": 0, "build": "b11434"}
        yield Case(item["id"], "measured b11434", LLAMA2_HPARAMS, settings, item["measured_MiB"], LLAMA2_HEADER)
    for line in (MEASUREMENTS / "llamacpp-b11434-cpu-heldout.jsonl").read_text().splitlines():
        item = json.loads(line)  # scripts/measure_llamacpp_shapes.py: other models' shapes, after the rules were set
        settings = {**item["settings"], "ngl": 0, "n_gpus": 0, "build": "b11434"}
        yield Case(item["id"], "held-out b11434", item["hparams"], settings, item["measured_MiB"])


def pythia_tensors(hparams: dict, weights: str, output: str) -> list[TensorInfo]:
    """GPT-NeoX (pythia) tensors as llama.cpp's converter writes them: fused qkv with biases, two LayerNorms
    with biases and an untied output per model; shapes from the logged hyper-parameters. ggml-ci's
    quantized files keep norms and biases F32; the log's type counts (258 F32, 129 + 1 quantized) match."""
    embd, vocab, ff = hparams["n_embd"], hparams["n_vocab"], hparams["n_ff"]

    def tensor(name: str, shape: tuple[int, ...], dtype: str) -> TensorInfo:
        block, size = _BLOCKS[dtype]
        numel = 1
        for dim in shape:
            numel *= dim
        return TensorInfo(name, dtype, shape, numel // block * size, "pythia.gguf")

    rows = [tensor("token_embd.weight", (vocab, embd), weights)]
    for i in range(hparams["n_layer"]):
        p = f"blk.{i}."
        rows += [tensor(p + "attn_norm.weight", (embd,), "F32"), tensor(p + "attn_norm.bias", (embd,), "F32"),
                 tensor(p + "attn_qkv.weight", (3 * embd, embd), weights), tensor(p + "attn_qkv.bias", (3 * embd,), "F32"),
                 tensor(p + "attn_output.weight", (embd, embd), weights), tensor(p + "attn_output.bias", (embd,), "F32"),
                 tensor(p + "ffn_norm.weight", (embd,), "F32"), tensor(p + "ffn_norm.bias", (embd,), "F32"),
                 tensor(p + "ffn_up.weight", (ff, embd), weights), tensor(p + "ffn_up.bias", (ff,), "F32"),
                 tensor(p + "ffn_down.weight", (embd, ff), weights), tensor(p + "ffn_down.bias", (embd,), "F32")]
    return rows + [tensor("output_norm.weight", (embd,), "F32"), tensor("output_norm.bias", (embd,), "F32"),
                   tensor("output.weight", (vocab, embd), output)]


def _tensors(case: Case) -> list[TensorInfo] | None:
    if not case.header:
        return None
    if case.header.endswith(".gguf"):
        return list(parse_gguf((ROOT / case.header).read_bytes(), case.header).tensors)
    if "q4_0" in case.header:
        return pythia_tensors(case.hparams, "Q4_0", "Q6_K")  # llama.cpp gives output.weight Q6_K
    return pythia_tensors(case.hparams, "Q8_0", "Q8_0")


def model_and_settings(case: Case) -> tuple[lc.GGUFModel, lc.LlamaCppSettings]:
    """The GGUFModel (with tensor placement when the case has a header) and the run's settings."""
    h = dict(case.hparams)
    h.pop("ssm", None)  # the recurrent layers' shapes the measurement script wrote the file with
    kv = h.pop("n_head_kv")
    pattern = h.pop("swa_pattern", None)
    h["n_head_kv"] = (kv,) * h["n_layer"] if isinstance(kv, int) else tuple(kv)
    if pattern is not None:
        h["swa"] = lc.swa_layers(h["arch"], h["n_layer"], h.get("n_swa"), pattern)
    tensors = _tensors(case)
    if tensors is not None:
        layout = lc.gguf_layout(tensors)
        h.update(layer_bytes=tuple(x[0] for x in layout["layers"]), expert_bytes=tuple(x[1] for x in layout["layers"]),
                 host_layer_bytes=tuple(layout["host_layers"]), input_bytes=layout["input"],
                 output_bytes=layout["output"], output_host_bytes=layout["output_host"],
                 token_embd_bytes=layout["token_embd"], tied=layout["tied"])
    settings = {k: v for k, v in case.settings.items() if k not in ("backend", "build")}
    if "build" in case.settings:  # the graph layout of the build that logged it (default: 2024 to mid-2025)
        settings["graph"] = lc.LLAMACPP.versions[case.settings["build"]].graph
    if "tensor_split" in settings:
        settings["tensor_split"] = tuple(settings["tensor_split"])
    settings.setdefault("n_gpus", 1)
    return lc.GGUFModel(**h), lc.LlamaCppSettings(**settings)


def errors(case: Case) -> list[tuple[str, float, float]]:
    """(buffer, predicted MiB, logged MiB) for every buffer the case logged."""
    model, settings = model_and_settings(case)
    memory = lc.plan(model, settings)
    e = case.expected
    rows: list[tuple[str, float, float]] = []

    def add(name: str, predicted: int, logged: float | None) -> None:
        if logged is not None:
            rows.append((name, predicted / MIB, logged))
    add("kv_total", memory.kv_bytes, e.get("kv_total"))
    for i, logged in enumerate(e.get("kv_gpu", [])):
        add(f"kv_gpu{i}", memory.gpus[i].kv, logged)
    add("kv_host", memory.host.kv, e.get("kv_host"))
    for i, logged in enumerate(e.get("model_gpu", [])):
        add(f"model_gpu{i}", memory.gpus[i].model, logged)
    add("model_host", memory.host.model, e.get("model_host"))
    for i, logged in enumerate(e.get("compute_gpu", [])):
        add(f"compute_gpu{i}", memory.gpus[i].compute, logged)
    add("compute_host", memory.host.compute, e.get("compute_host"))
    return rows
