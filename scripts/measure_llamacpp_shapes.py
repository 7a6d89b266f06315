"""Measure llama.cpp's own memory estimate for other models' shapes: held-out evidence for the current build.

    LLAMA_FIT_PARAMS=/path/to/llama.cpp/build/bin/llama-fit-params LLAMA_BUILD="b11434 ..." \
        PYTHONPATH=src python scripts/measure_llamacpp_shapes.py CONFIG_DIR OUT.jsonl

For each model below, a GGUF header is written from its published config.json (CONFIG_DIR/<owner>__<name>/
config.json, e.g. /work/shared/hub-data) with the tensors llama.cpp's converter names for that architecture,
typed as a Q4_K_M mix, into a sparse file of the real size. `llama-fit-params --fit-print on` then sizes every
buffer as loading would, without allocating or reading weights. The compute buffers depend on the shapes and
settings only, so the weights' exact quantization mix does not matter here. The rows are kept out of the
compute-buffer rules (docs/llamacpp.md): measure_llamacpp.py's Llama-2-7B rows were traced to find them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from gguf import GGMLQuantizationType, GGUFWriter, LlamaFileType

from gpumem_dev import make_gguf_fixtures as make

T = GGMLQuantizationType

# (repo, GGUF architecture, runs: flags as llama-server takes them)
MODELS = (
    ("meta-llama/Llama-3.1-8B", "llama", ("-c 4096", "-c 16384 -fa off", "-c 32768 -np 4 -ctk q8_0 -ctv q8_0",
                                          "-c 8192 -ub 1024")),
    ("Qwen/Qwen2.5-7B", "qwen2", ("-c 4096", "-c 8192 -fa off -ub 256 -b 256", "-c 65536 -ctk q4_0 -ctv q4_0")),
    ("mistralai/Mixtral-8x7B-v0.1", "llama", ("-c 2048", "-c 32768", "-c 4096 -fa off")),
    ("meta-llama/Llama-2-70b-chat-hf", "llama", ("-c 4096", "-c 4096 -fa off -np 2")),
    # a second batch, measured after the output-stage rule was set on Llama-2-7B traces
    ("microsoft/Phi-3-mini-4k-instruct", "phi3", ("-c 4096", "-c 4096 -fa off", "-c 16384 -np 2 -ub 256 -b 256")),
    ("Qwen/Qwen3-8B", "qwen3", ("-c 65536 -ctk q4_0 -ctv q4_0", "-c 2048 -ub 128 -b 128", "-c 32768 -np 3",
                                "-c 2048 -fa off")),
    ("mistralai/Mixtral-8x7B-v0.1", "llama", ("-c 8192 -np 2 -ctk q8_0 -ctv q8_0",)),
    ("meta-llama/Llama-2-70b-chat-hf", "llama", ("-c 16384 -ub 256",)),
    # a recurrent model: the per-slot state (RS buffer) beside a KV cache of no layers
    ("tiiuae/falcon-mamba-7b", "mamba", ("-c 4096", "-c 8192 -np 4")),
)


def settings_of(flags: str) -> dict:
    """gpumem's LlamaCppSettings fields for llama-server flags."""
    args = flags.split()
    out: dict = {}
    names = {"-c": ("n_ctx", int), "-np": ("n_seq", int), "-ub": ("n_ubatch", int), "-b": ("n_batch", int),
             "-ctk": ("type_k", str), "-ctv": ("type_v", str)}
    for flag, value in zip(args, args[1:]):
        if flag in names:
            key, kind = names[flag]
            out[key] = kind(value)
        elif flag == "-fa":
            out["flash_attn"] = value == "on"
    return out


def hparams_of(config: dict, arch: str) -> dict:
    """The hyper-parameters gpumem's llama.cpp model needs, from config.json."""
    if arch == "mamba":  # falcon-mamba's config.json names; no attention heads
        inner, conv, state = config["intermediate_size"], config["conv_kernel"], config["state_size"]
        return {"arch": arch, "n_layer": config["num_hidden_layers"], "n_embd": config["hidden_size"], "n_head": 0,
                "n_head_kv": 0, "head_k": 0, "head_v": 0, "n_vocab": config["vocab_size"], "n_ff": 0,
                "recurrent_layers": config["num_hidden_layers"], "state_elements": inner * (conv - 1 + state),
                "ssm": {"d_inner": inner, "d_conv": conv, "d_state": state, "dt_rank": config["time_step_rank"]}}
    heads = config["num_attention_heads"]
    head = config.get("head_dim") or config["hidden_size"] // heads
    out = {"arch": arch, "n_layer": config["num_hidden_layers"], "n_embd": config["hidden_size"], "n_head": heads,
           "n_head_kv": config.get("num_key_value_heads") or heads, "head_k": head, "head_v": head,
           "n_vocab": config["vocab_size"], "n_ff": config["intermediate_size"]}
    if config.get("num_local_experts"):
        out |= {"n_expert": config["num_local_experts"], "n_expert_used": config["num_experts_per_tok"],
                "n_ff_exp": config["intermediate_size"]}
    return out


def tensors_of(h: dict) -> list[tuple[str, tuple[int, ...], GGMLQuantizationType]]:
    """(name, numpy-order shape, type) as llama.cpp's converter writes this architecture."""
    embd, ff, vocab = h["n_embd"], h["n_ff"], h["n_vocab"]
    q, kv = h["n_head"] * h["head_k"], h["n_head_kv"] * h["head_k"]
    rows = [("token_embd.weight", (vocab, embd), T.Q4_K)]
    if h["arch"] == "mamba":
        m = h["ssm"]
        inner, state, rank = m["d_inner"], m["d_state"], m["dt_rank"]
        for i in range(h["n_layer"]):
            p = f"blk.{i}."
            rows += [(p + "attn_norm.weight", (embd,), T.F32), (p + "ssm_in.weight", (2 * inner, embd), T.Q4_K),
                     (p + "ssm_conv1d.weight", (inner, m["d_conv"]), T.F32), (p + "ssm_conv1d.bias", (inner,), T.F32),
                     (p + "ssm_x.weight", (rank + 2 * state, inner), T.Q4_K),
                     (p + "ssm_dt.weight", (inner, rank), T.Q4_K), (p + "ssm_dt.bias", (inner,), T.F32),
                     (p + "ssm_a", (inner, state), T.F32), (p + "ssm_d", (inner,), T.F32),
                     (p + "ssm_out.weight", (embd, inner), T.Q4_K)]
        return rows + [("output_norm.weight", (embd,), T.F32), ("output.weight", (vocab, embd), T.Q6_K)]
    for i in range(h["n_layer"]):
        p = f"blk.{i}."
        rows += [(p + "attn_norm.weight", (embd,), T.F32), (p + "attn_q.weight", (q, embd), T.Q4_K),
                 (p + "attn_k.weight", (kv, embd), T.Q4_K), (p + "attn_v.weight", (kv, embd), T.Q6_K),
                 (p + "attn_output.weight", (embd, q), T.Q4_K), (p + "ffn_norm.weight", (embd,), T.F32)]
        if h["arch"] == "phi3":  # fused QKV and gate+up
            rows = rows[:-5] + [(p + "attn_qkv.weight", (q + 2 * kv, embd), T.Q4_K),
                                (p + "attn_output.weight", (embd, q), T.Q4_K), (p + "ffn_norm.weight", (embd,), T.F32),
                                (p + "ffn_up.weight", (2 * ff, embd), T.Q4_K), (p + "ffn_down.weight", (embd, ff), T.Q6_K)]
            continue
        if h["arch"] == "qwen3":
            rows += [(p + "attn_q_norm.weight", (h["head_k"],), T.F32), (p + "attn_k_norm.weight", (h["head_k"],), T.F32)]
        if h["arch"] == "qwen2":
            rows += [(p + "attn_q.bias", (q,), T.F32), (p + "attn_k.bias", (kv,), T.F32),
                     (p + "attn_v.bias", (kv,), T.F32)]
        if h.get("n_expert"):
            n = h["n_expert"]
            rows += [(p + "ffn_gate_inp.weight", (n, embd), T.F32), (p + "ffn_gate_exps.weight", (n, ff, embd), T.Q4_K),
                     (p + "ffn_up_exps.weight", (n, ff, embd), T.Q4_K),
                     (p + "ffn_down_exps.weight", (n, embd, ff), T.Q6_K)]
        else:
            rows += [(p + "ffn_gate.weight", (ff, embd), T.Q4_K), (p + "ffn_up.weight", (ff, embd), T.Q4_K),
                     (p + "ffn_down.weight", (embd, ff), T.Q6_K)]
    return rows + [("output_norm.weight", (embd,), T.F32), ("output.weight", (vocab, embd), T.Q6_K)]


def sparse_model(path: Path, config: dict, h: dict) -> None:
    """The header, then a hole as long as the tensor data."""
    arch = h["arch"]
    writer = GGUFWriter(path, arch)
    writer.add_context_length(config.get("max_position_embeddings", 2**20))
    writer.add_embedding_length(h["n_embd"])
    writer.add_block_count(h["n_layer"])
    writer.add_feed_forward_length(h["n_ff"])
    writer.add_head_count(h["n_head"])
    writer.add_head_count_kv(h["n_head_kv"])
    writer.add_layer_norm_rms_eps(config.get("rms_norm_eps") or config["layer_norm_epsilon"])
    if arch == "mamba":
        m = h["ssm"]
        writer.add_ssm_conv_kernel(m["d_conv"])
        writer.add_ssm_inner_size(m["d_inner"])
        writer.add_ssm_state_size(m["d_state"])
        writer.add_ssm_time_step_rank(m["dt_rank"])
        writer.add_ssm_dt_b_c_rms(True)  # falcon-mamba
    else:
        writer.add_rope_dimension_count(h["head_k"])
    if config.get("rope_theta"):
        writer.add_rope_freq_base(config["rope_theta"])
    if h.get("n_expert"):
        writer.add_expert_count(h["n_expert"])
        writer.add_expert_used_count(h["n_expert_used"])
    writer.add_file_type(LlamaFileType.MOSTLY_Q4_K_M)
    writer.add_quantization_version(2)
    writer.add_tokenizer_model("llama")
    writer.add_token_list([f"<t{i}>" for i in range(h["n_vocab"])])
    writer.add_token_scores([0.0] * h["n_vocab"])
    writer.add_token_types([1] * h["n_vocab"])
    make.write_tensor_infos(writer, path, tensors_of(h), data_hole=True)


def main(config_dir: str, out: str) -> int:
    binary = os.environ.get("LLAMA_FIT_PARAMS", "llama-fit-params")
    version = os.environ.get("LLAMA_BUILD") or subprocess.run(
        [binary, "--version"], capture_output=True, text=True).stderr.strip().splitlines()[0]
    rows = []
    for repo, arch, runs in MODELS:
        name = repo.replace("/", "__")
        fixtures = Path(__file__).resolve().parent.parent / "fixtures"  # or the configs kept in the fixtures
        path = next(p for p in (Path(config_dir) / name / "config.json", fixtures / "configs" / f"{name}.json",
                                fixtures / "gguf" / "configs" / f"{name}.json") if p.exists())
        config = json.loads(path.read_text())
        h = hparams_of(config, arch)
        with tempfile.TemporaryDirectory() as folder:
            model = Path(folder) / "model.gguf"
            sparse_model(model, config, h)
            for flags in runs:
                result = subprocess.run([binary, "-m", str(model), "--fit-print", "on", *flags.split()],
                                        capture_output=True, text=True, check=True)
                device, _, context, compute = result.stdout.split()[-4:]
                rows.append({"id": f"b11434-cpu-{repo.split('/')[1]} {flags}", "build": version, "model": repo,
                             "hparams": h, "hparams_source": f"{repo} config.json", "flags": flags,
                             "settings": settings_of(flags), "device": device,
                             "measured_MiB": {"kv_total": int(context), "compute_host": int(compute)}})
                print(rows[-1]["id"], rows[-1]["measured_MiB"], flush=True)
    Path(out).write_text("".join(json.dumps(row) + "\n" for row in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
