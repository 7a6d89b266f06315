"""End to end through the real CLI and the fake Hub: pre-quantized, GGUF, .bin-only, dual-format,
Mistral consolidated, `*.fp16` variants, diffusers, multimodal and embedding repos."""

from __future__ import annotations

import json
import math
from functools import lru_cache

import pytest
from conftest import load_fixture_json

from gpumem_dev.fakehub import FakeRepo
from gpumem_dev.fakehub import formats as fmt
from gpumem_dev.fakehub.layouts import deepseek_v3_layout, gptq, llama2_13b_layout, quantize
from gpumem_dev.fakehub.repos import tensor_nbytes

LLAMA2_7B = 6_738_415_616
LLAMA2_13B = 13_015_864_320  # fixtures/hub/SOURCES.md
LLAMA31_8B = 8_030_261_248
DEEPSEEK_V3_STORED = 684_531_386_000
GB = 10**9


def run_json(gpumem, *args):
    code, out, err = gpumem("hf", *args, "--json", "--no-cache")
    assert code == 0, err
    return json.loads(out), err


def bytes_of(tensors) -> int:
    return sum(tensor_nbytes(dtype, shape) for _, dtype, shape in tensors)


def numel(tensors) -> int:
    return sum(math.prod(shape) for _, _, shape in tensors)


# --- pre-quantized safetensors ----------------------------------------------------------------------


@lru_cache(maxsize=1)
def gptq_13b() -> tuple[FakeRepo, list]:
    """TheBloke/Llama-2-13B-chat-GPTQ: the real config and quantize_config, one model.safetensors packed as
    AutoGPTQ writes it (tests/test_quantization.py's builders)."""
    folder = "TheBloke__Llama-2-13B-chat-GPTQ"
    config, qc = load_fixture_json(folder, "config.json"), load_fixture_json(folder, "quantize_config.json")
    layout = fmt.as_tuples(quantize(llama2_13b_layout(config), lambda s, o, i: gptq(s, o, i, qc["bits"], qc["group_size"])))
    files = {"model.safetensors": fmt.virtual_safetensors(layout, {"format": "pt"}),
             "config.json": fmt.json_file(config), "quantize_config.json": fmt.json_file(qc)}
    return fmt.model_repo("TheBloke/Llama-2-13B-chat-GPTQ", files, config, layout), layout


def test_gptq_13b_parameters_bytes_and_quantization(hub, gpumem):
    repo, layout = gptq_13b()
    hub.add_repo(repo)
    report, _ = run_json(gpumem, repo.repo_id)
    assert report["parameters"] == LLAMA2_13B
    assert report["weight_bytes"] == bytes_of(layout)
    assert report["stored_elements"] == {"F16": numel(t for t in layout if t[1] == "F16"),
                                         "F32": numel(t for t in layout if t[1] == "F32"),
                                         "I32": numel(t for t in layout if t[1] == "I32")}
    q = report["quantization"]
    assert (q["method"], q["bits"]) == ("gptq", 4)
    assert q["quantized_parameters"] == sum(32 // 4 * math.prod(s) for n, _, s in layout if n.endswith(".qweight"))
    assert 4.1 < q["bits_per_weight"] < 4.5
    assert report["formula"]["bits"] == 4  # the checkpoint as stored
    assert report["formula"]["memory_gb"] == pytest.approx(LLAMA2_13B * 4 / 8 * 1.2 / GB)


def test_gptq_what_if_at_16_bits_uses_the_real_count(hub, gpumem):
    repo, _ = gptq_13b()
    hub.add_repo(repo)
    report, _ = run_json(gpumem, repo.repo_id, "--bits", "16")
    assert report["formula"] == {"bits": 16, "overhead": 1.2, "memory_gb": pytest.approx(LLAMA2_13B * 2 * 1.2 / GB)}
    assert report["parameters"] == LLAMA2_13B


def test_bitsandbytes_int8_with_the_real_index(hub, gpumem):
    folder = "IrfanUruchi__Llama-3.1-8B-Computer-Networks-LLM"
    config, index = load_fixture_json(folder, "config.json"), load_fixture_json(folder, "model.safetensors.index.json")
    shapes = {n: s for n, _, s in fmt.llama_layout(load_fixture_json("meta-llama__Llama-3.1-8B", "config.json"), "BF16")}
    layout = []
    for name in index["weight_map"]:  # bitsandbytes Int8Params: I8 weight, F32 SCB [out], U8 weight_format scalar
        stem, _, leaf = name.rpartition(".")
        if leaf == "SCB":
            layout.append((name, "F32", shapes[stem + ".weight"][:1]))
        elif leaf == "weight_format":
            layout.append((name, "U8", ()))
        else:
            layout.append((name, "I8" if f"{stem}.SCB" in index["weight_map"] else "F32", shapes[name]))
    repo = hub.add_repo(fmt.indexed_repo("IrfanUruchi/Llama-3.1-8B-Computer-Networks-LLM", config, layout, index))
    report, _ = run_json(gpumem, repo.repo_id)
    assert report["parameters"] == LLAMA31_8B
    assert report["weight_bytes"] == index["metadata"]["total_size"] == 11_188_584_672
    assert (report["quantization"]["method"], report["quantization"]["bits"]) == ("bitsandbytes-8bit", 8)
    assert set(report["files"]) == set(index["weight_map"].values())


@lru_cache(maxsize=1)
def deepseek_r1() -> tuple[FakeRepo, list]:
    """deepseek-ai/DeepSeek-R1: real config, FP8 + 128x128 block scales, 163 shards named as the real ones
    (`model-00001-of-000163.safetensors`, fixtures/hub/SOURCES.md)."""
    config = load_fixture_json("deepseek-ai__DeepSeek-R1", "config.json")
    layout = fmt.as_tuples(deepseek_v3_layout(config))
    repo = fmt.sharded_repo("deepseek-ai/DeepSeek-R1", config, layout, 163,
                            name_format="model-{i:05d}-of-{n:06d}.safetensors")
    return repo, layout


def test_deepseek_r1_fp8_block_over_163_shards(hub, gpumem):
    repo, layout = deepseek_r1()
    hub.add_repo(repo)
    report, _ = run_json(gpumem, repo.repo_id)
    assert sum(report["stored_elements"].values()) == DEEPSEEK_V3_STORED
    assert report["weight_bytes"] == bytes_of(layout)
    scales = numel(t for t in layout if t[0].endswith("weight_scale_inv"))
    assert report["parameters"] == DEEPSEEK_V3_STORED - scales
    assert (report["quantization"]["method"], report["quantization"]["bits"]) == ("fp8-block", 8)
    assert len(report["files"]) == 163 and report["files"][0] == "model-00001-of-000163.safetensors"
    shard_reads = [r for r in hub.requests if "/resolve/" in r.path and r.path.endswith(".safetensors")]
    assert len(shard_reads) == 163  # one header read per shard: the index predicts each header's size


def test_gpt_oss_mxfp4(hub, gpumem):
    config = fmt.gpt_oss_config()
    layout = fmt.gpt_oss_layout(config)
    repo = hub.add_repo(fmt.sharded_repo("openai/gpt-oss-20b", config, layout, 3,
                                         name_format="model-{i:05d}-of-{n:05d}.safetensors"))
    report, _ = run_json(gpumem, repo.repo_id)
    # Independent count from the config: experts hold E x (2*inter*h + 2*inter + h*inter + h) parameters.
    h, inter, e, heads, kv, d, vocab, layers = (config[k] for k in (
        "hidden_size", "intermediate_size", "num_local_experts", "num_attention_heads", "num_key_value_heads",
        "head_dim", "vocab_size", "num_hidden_layers"))
    attention = (heads * d * h + heads * d) + 2 * (kv * d * h + kv * d) + (h * heads * d + h) + heads
    experts = e * (2 * inter * h + 2 * inter + h * inter + h)
    per_layer = attention + experts + (e * h + e) + 2 * h
    assert report["parameters"] == layers * per_layer + 2 * vocab * h + h
    q = report["quantization"]
    assert (q["method"], q["bits"], q["bits_per_weight"]) == ("mxfp4", 4, 4.25)
    assert report["weight_bytes"] == bytes_of(layout)


# --- GGUF -------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def gguf_repo() -> FakeRepo:
    return fmt.llama2_gguf_repo()


VARIANTS = ("llama-2-7b.F16.gguf", "llama-2-7b.Q4_K_M.gguf", "llama-2-7b.Q8_0.gguf")


def test_gguf_repo_lists_every_variant(hub, gpumem, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # file names are long; narrower terminals truncate them
    repo = hub.add_repo(gguf_repo())
    code, out, err = gpumem("hf", repo.repo_id, "--no-cache")
    assert code == 0, err
    for variant in VARIANTS:
        assert variant in out
    rows, _ = run_json(gpumem, repo.repo_id)
    assert [r["file"] for r in rows] == list(VARIANTS)
    assert all(r["parameters"] == LLAMA2_7B and r["format"] == "gguf" for r in rows)
    f16, q4, q8 = rows
    assert f16["files"] == ["llama-2-7b.F16-00001-of-00002.gguf", "llama-2-7b.F16-00002-of-00002.gguf"]
    assert q4["quantization"]["bits"] == 4 and q8["quantization"]["bits"] == 8
    assert all(r["recommendations"] and r["recommendations"][0]["fits"] for r in rows)
    assert q4["recommendations"][0]["per_gpu_total_bytes"] < q8["recommendations"][0]["per_gpu_total_bytes"]


def test_gguf_file_json_has_the_safetensors_keys(hub, gpumem):
    repo = hub.add_repo(gguf_repo())
    gguf, _ = run_json(gpumem, repo.repo_id, "--file", "llama-2-7b.Q4_K_M.gguf")
    plain, _ = run_json(gpumem, "meta-llama/Llama-2-7b-hf", "--token", "hf_fakehub_granted_0123456789abcdef")
    assert set(plain) <= set(gguf) and gguf["file"] == "llama-2-7b.Q4_K_M.gguf" and gguf["variant"] == "Q4_K_M"
    rows = fmt.make_gguf.llama2_q4_k_m_tensors()
    by_type: dict[str, int] = {}
    for _, shape, qtype in rows:
        by_type[qtype.name] = by_type.get(qtype.name, 0) + math.prod(shape)
    assert gguf["parameters"] == LLAMA2_7B
    assert gguf["stored_elements"] == by_type and set(by_type) == {"F32", "Q4_K", "Q6_K"}
    assert gguf["weight_bytes"] == sum(fmt.ggml_nbytes(shape, qtype) for _, shape, qtype in rows)
    q = gguf["quantization"]
    assert q["method"] == "gguf" and q["bits_per_weight"] == pytest.approx(gguf["weight_bytes"] * 8 / LLAMA2_7B, abs=0.01)
    assert gguf["formula"]["bits"] == 4
    # KV cache from the GGUF metadata: 2 (K, V) x 32 layers x 32 KV heads x 128 head dim x 2 bytes (F16)
    assert gguf["serving"]["kv_bytes_per_token"] == plain["serving"]["kv_bytes_per_token"] == 2 * 32 * 32 * 128 * 2
    assert gguf["recommendations"] and gguf["notes"] == []


def test_gguf_split_variant_is_one_model(hub, gpumem):
    repo = hub.add_repo(gguf_repo())
    report, _ = run_json(gpumem, repo.repo_id, "--file", "llama-2-7b.F16.gguf")
    assert report["parameters"] == LLAMA2_7B and report["stored_elements"] == {"F16": LLAMA2_7B - 65 * 4096,
                                                                               "F32": 65 * 4096}
    assert report["weight_bytes"] == 2 * (LLAMA2_7B - 65 * 4096) + 4 * 65 * 4096


def test_gguf_file_reads_only_that_variant_and_is_not_cached_partially(hub, gpumem):
    repo = hub.add_repo(gguf_repo())
    code, out, err = gpumem("hf", repo.repo_id, "--file", "llama-2-7b.Q4_K_M.gguf", "--json")  # cache on
    assert code == 0, err
    report = json.loads(out)
    weight_reads = {r.path.rsplit("/", 1)[1] for r in hub.requests if r.path.startswith("/cdn/")}
    assert weight_reads == {"llama-2-7b.Q4_K_M.gguf"} and report["parameters"] == LLAMA2_7B
    code, out, _ = gpumem("hf", repo.repo_id, "--json")  # with the cache: all variants, read afresh
    assert code == 0 and [r["file"] for r in json.loads(out)] == list(VARIANTS)


def test_gguf_unknown_file_is_a_usage_error(hub, gpumem):
    repo = hub.add_repo(gguf_repo())
    code, _, err = gpumem("hf", repo.repo_id, "--file", "llama-2-7b.Q5_K_M.gguf", "--no-cache")
    assert code == 2
    assert "no GGUF file 'llama-2-7b.Q5_K_M.gguf'" in err


def test_gguf_headers_are_read_incrementally_with_ranges(hub, gpumem):
    repo = hub.add_repo(gguf_repo())
    code, _, err = gpumem("hf", repo.repo_id, "--json", "--no-cache")
    assert code == 0, err
    for name, file in repo.files.items():
        if not name.endswith(".gguf"):
            continue
        reads = [r for r in hub.requests if r.path.startswith("/cdn/") and r.path.endswith("/" + name)]
        assert reads and all(r.headers.get("range", "").startswith("bytes=") and r.status == 206 for r in reads)
        received = sum(r.bytes_sent for r in reads)
        assert received <= max(64 * 1024, 2 * len(file.prefix)), name  # never the tensor data
        if len(file.prefix) < 64 * 1024:  # a small header (split parts, no tokenizer): one read, no more
            assert len(reads) == 1 and received == 64 * 1024, name
    q8 = [r for r in hub.requests if r.path.startswith("/cdn/") and r.path.endswith("Q8_0.gguf")]
    assert len(q8) >= 2  # the 32,000-token vocabulary runs past the first read: a second, sized read follows
    assert len(q8) <= 3 and len(repo.files["llama-2-7b.Q8_0.gguf"].prefix) > 512 * 1024


def test_gguf_unknown_ggml_type_is_left_out_and_said(hub, gpumem):
    rows = fmt.llama2_rows(fmt.q8_0_type)
    header = fmt.gguf_header(rows, fmt.make_gguf.LlamaFileType.MOSTLY_Q8_0)
    header = fmt.set_ggml_type(header, "blk.0.attn_q.weight", 42)
    hub.add_repo(FakeRepo("acme/llama-2-7b-future-gguf", {"llama-2-7b.Q8_0.gguf": fmt.gguf_file(header, rows)}))
    code, out, err = gpumem("hf", "acme/llama-2-7b-future-gguf", "--json", "--no-cache")
    assert code == 0, err
    report = json.loads(out)
    assert report["parameters"] == LLAMA2_7B - 4096 * 4096
    assert report["weight_bytes"] == sum(fmt.ggml_nbytes(s, t) for n, s, t in rows if n != "blk.0.attn_q.weight")
    assert "ggml type 42 (1 tensor) left out of bytes and parameters" in report["notes"]
    assert "ggml type 42" in err


# --- repos without safetensors, or with two copies ----------------------------------------------------


def llama2_7b_dense() -> tuple[dict, list]:
    config = load_fixture_json("meta-llama__Llama-2-7b-hf", "config.json")
    return config, fmt.llama_layout(config, "F16", inv_freq=True)


def test_bin_only_repo_is_estimated_from_the_index_without_reading_pickles(hub, gpumem):
    config, layout = llama2_7b_dense()
    runs = fmt.split_in_order(layout, 2)
    names = [f"pytorch_model-{i:05d}-of-00002.bin" for i in (1, 2)]
    index = {"metadata": {"total_size": bytes_of(layout)},
             "weight_map": {t[0]: name for name, run in zip(names, runs) for t in run}}
    files = {name: fmt.pickle_stand_in(bytes_of(run) + 1024) for name, run in zip(names, runs)}
    files.update({"pytorch_model.bin.index.json": fmt.json_file(index), "config.json": fmt.json_file(config)})
    hub.add_repo(fmt.model_repo("acme/llama-2-7b-bin-only", files, config))
    report, err = run_json(gpumem, "acme/llama-2-7b-bin-only")
    assert not [r for r in hub.requests if r.path.endswith(".bin")]  # never a pickle
    assert report["parameters_estimated"] is True and report["format"] == "pytorch-bin"
    assert report["parameters"] == bytes_of(layout) // 2  # total_size / 2 bytes (torch_dtype float16)
    assert report["weight_bytes"] == bytes_of(layout)
    assert any("ESTIMATED" in n and "total_size" in n for n in report["notes"])
    assert "ESTIMATED" in err
    code, out, _ = gpumem("hf", "acme/llama-2-7b-bin-only", "--no-cache")
    assert code == 0 and "ESTIMATE" in out


def test_dual_format_counts_the_safetensors_and_says_so(hub, gpumem):
    config, layout = llama2_7b_dense()
    files = {"model.safetensors": fmt.virtual_safetensors(layout), "pytorch_model.bin": fmt.pickle_stand_in(bytes_of(layout)),
             "config.json": fmt.json_file(config)}
    hub.add_repo(fmt.model_repo("acme/llama-2-7b-dual", files, config, layout))
    report, _ = run_json(gpumem, "acme/llama-2-7b-dual")
    assert report["parameters"] == LLAMA2_7B and report["format"] == "safetensors"
    assert report["files"] == ["model.safetensors"]
    assert "counted the safetensors files; left out the .bin copies" in report["notes"]
    assert not [r for r in hub.requests if r.path.endswith(".bin")]


def test_mistral_consolidated_beside_hf_files_counts_one_set(hub, gpumem):
    repo = hub.repos["mistralai/Mixtral-8x7B-v0.1"]
    tensors = json.loads((fmt.HUB_FIXTURES / "mistralai__Mixtral-8x7B-v0.1" / "tensors.json").read_text())["tensors"]
    consolidated = fmt.mistral_consolidated_names([(n, d, s) for n, (d, s) in tensors.items()])
    files = {**repo.files, "consolidated.safetensors": fmt.virtual_safetensors(consolidated)}
    hub.add_repo(FakeRepo("acme/mixtral-two-formats", files, info=repo.info))
    report, _ = run_json(gpumem, "acme/mixtral-two-formats")
    assert report["parameters"] == 46_702_792_704
    assert "consolidated.safetensors" not in report["files"] and len(report["files"]) == 19
    assert any("left out the Mistral-format consolidated.safetensors" in n for n in report["notes"])
    assert not [r for r in hub.requests if "consolidated" in r.path]


@pytest.mark.parametrize("sharded", [False, True])
def test_fp16_variant_files_are_left_out(hub, gpumem, sharded):
    config, layout = llama2_7b_dense()
    halves = fmt.split_in_order(layout, 2)
    if sharded:  # transformers' variant naming: model.fp16-0000k-of-0000n.safetensors
        variants = {f"model.fp16-{i:05d}-of-00002.safetensors": fmt.virtual_safetensors(run) for i, run in enumerate(halves, 1)}
    else:
        variants = {"model.fp16.safetensors": fmt.virtual_safetensors(layout)}
    f32 = [(n, "F32", s) for n, _, s in layout]
    files = {"model.safetensors": fmt.virtual_safetensors(f32), "config.json": fmt.json_file(config), **variants}
    repo_id = f"acme/llama-2-7b-variants-{sharded}"
    hub.add_repo(fmt.model_repo(repo_id, files, config))
    report, _ = run_json(gpumem, repo_id)
    assert report["files"] == ["model.safetensors"] and report["stored_elements"] == {"F32": numel(layout)}
    assert report["parameters"] == LLAMA2_7B
    assert any("left out variant files" in n for n in report["notes"])


# --- multimodal, embedding ----------------------------------------------------------------------------


def test_llava_counts_vision_tower_and_projector_kv_from_the_language_model(hub, gpumem):
    config = json.loads((fmt.CONFIGS / "llava-hf__llava-1.5-7b-hf.json").read_text())
    layout = fmt.llava_layout(config)
    hub.add_repo(fmt.sharded_repo("llava-hf/llava-1.5-7b-hf", config, layout, 3))
    report, _ = run_json(gpumem, "llava-hf/llava-1.5-7b-hf")
    vision = numel(t for t in layout if t[0].startswith(("vision_tower.", "multi_modal_projector.")))
    assert vision > 300_000_000  # CLIP ViT-L/14-336 plus the projector
    assert report["parameters"] == numel(layout)
    # vicuna-7b's attention (LlamaConfig defaults: 32 layers, 32 KV heads of 128): 2 x 32 x 32 x 128 x 2 bytes
    assert report["serving"]["kv_bytes_per_token"] == 2 * 32 * 32 * 128 * 2


def test_embedding_model_has_no_kv_cache(hub, gpumem):
    config = json.loads((fmt.CONFIGS / "sentence-transformers__all-MiniLM-L6-v2.json").read_text())
    layout = fmt.bert_layout(config)
    files = {"model.safetensors": fmt.virtual_safetensors(layout), "config.json": fmt.json_file(config)}
    hub.add_repo(fmt.model_repo("sentence-transformers/all-MiniLM-L6-v2", files, config, layout))
    report, err = run_json(gpumem, "sentence-transformers/all-MiniLM-L6-v2")
    assert report["parameters"] == numel(t for t in layout if t[1] != "I64")
    assert report["buffer_elements"] == config["max_position_embeddings"]  # the stored position_ids
    assert report["serving"]["kv_bytes_per_token"] == 0
    assert any("no KV cache" in n for n in report["notes"]) and "no KV cache" in err


# --- unknown dtypes and methods degrade ----------------------------------------------------------------


@pytest.mark.parametrize("case", ["dtype", "method"])
def test_unknown_dtype_or_method_gives_bytes_and_unknown_parameters(hub, gpumem, case):
    config, layout = llama2_7b_dense()
    if case == "dtype":  # a dtype from a future safetensors release: bytes from the offsets
        weights = fmt.with_dtype(layout, "model.layers.0.mlp.up_proj.weight", "F2_E1M0")  # no such dtype yet
    else:
        config = {**config, "quantization_config": {"quant_method": "aqlm"}}
        weights = fmt.virtual_safetensors(layout)
    files = {"model.safetensors": weights, "config.json": fmt.json_file(config)}
    hub.add_repo(fmt.model_repo(f"acme/llama-2-7b-unknown-{case}", files, config))
    report, err = run_json(gpumem, f"acme/llama-2-7b-unknown-{case}")
    assert report["parameters"] is None and report["weight_bytes"] == bytes_of(layout)
    assert "parameter count unknown" in err
    code, out, err = gpumem("hf", f"acme/llama-2-7b-unknown-{case}", "--no-cache")
    assert code == 0 and "unknown" in out and "Traceback" not in err



# --- multi-component repos ------------------------------------------------------------------------------


def test_multi_component_repo_counts_each_component_and_the_total(hub, gpumem, monkeypatch):
    files, parts = fmt.multi_component_files()
    hub.add_repo(FakeRepo("acme/two-component-pipeline", files))
    report, _ = run_json(gpumem, "acme/two-component-pipeline")
    components = {c["name"]: c for c in report["components"]}
    assert set(components) == {"transformer", "text_encoder"}  # scheduler/ has no weights
    assert components["transformer"]["parameters"] == LLAMA2_7B
    assert components["text_encoder"]["parameters"] == numel(parts["text_encoder"])
    assert components["text_encoder"]["weight_bytes"] == bytes_of(parts["text_encoder"])  # F32, not the .fp16 copy
    assert report["parameters"] == LLAMA2_7B + numel(parts["text_encoder"])
    assert report["weight_bytes"] == sum(c["weight_bytes"] for c in report["components"])
    assert not [r for r in hub.requests if "model.fp16" in r.path]
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = gpumem("hf", "acme/two-component-pipeline", "--no-cache")
    assert code == 0 and "transformer" in out and "text_encoder" in out
