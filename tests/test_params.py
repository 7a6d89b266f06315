"""count_weights on real manifests: published parameter counts, buffers, tied embeddings, degradation."""

from __future__ import annotations

import math

import pytest
from conftest import load_fixture_json, manifest_tensors
from hypothesis import given, settings
from hypothesis import strategies as st

from gpumem.errors import BadConfig, BadHeader, GpumemError
from gpumem.model.params import count_weights, summarize_weights
from gpumem.model.safetensors_header import DTYPE_BITS
from gpumem.model.types import TensorInfo


@pytest.mark.parametrize(
    ("folder", "parameters", "stored", "weight_bytes", "buffers"),
    [
        ("meta-llama__Llama-2-7b-hf", 6_738_415_616, {"F16": 6_738_415_616, "F32": 2_048}, 13_476_839_424, 2_048),
        ("meta-llama__Llama-2-70b-chat-hf", 68_976_648_192, {"F16": 68_976_648_192, "F32": 5_120},
         137_953_316_864, 5_120),
        ("mistralai__Mixtral-8x7B-v0.1", 46_702_792_704, {"BF16": 46_702_792_704}, 93_405_585_408, 0),
        ("Qwen__Qwen2.5-7B", 7_615_616_512, {"BF16": 7_615_616_512}, 2 * 7_615_616_512, 0),
        ("openai-community__gpt2", 124_439_808, {"F32": 137_022_720}, 4 * 137_022_720, 12 * 1024 * 1024),
        ("microsoft__Phi-3-mini-4k-instruct", 3_821_079_552, {"BF16": 3_821_079_552}, 2 * 3_821_079_552, 0),
        ("meta-llama__Llama-3.1-8B", 8_030_261_248, {"BF16": 8_030_261_248}, 2 * 8_030_261_248, 0),
    ],
)
def test_published_counts(folder, parameters, stored, weight_bytes, buffers):
    count = count_weights(manifest_tensors(folder), load_fixture_json(folder, "config.json"))
    assert count.parameters == parameters
    assert count.stored_elements == stored
    assert count.weight_bytes == weight_bytes
    assert count.buffer_elements == buffers
    assert count.quantization is None and count.notes == ()


@pytest.mark.parametrize(
    ("name", "shape", "buffer"),
    [
        ("model.layers.0.self_attn.rotary_emb.inv_freq", (64,), True),
        ("h.0.attn.bias", (1, 1, 1024, 1024), True),  # gpt2 causal mask
        ("h.0.attn.masked_bias", (), True),
        ("transformer.h.0.attn.attention.bias", (1, 1, 2048, 2048), True),  # GPT-Neo
        ("model.layers.0.self_attn.q_proj.bias", (3584,), False),  # Qwen2: a real bias
        ("h.0.attn.c_attn.bias", (2304,), False),
        ("encoder.layer.0.attention.self.query.bias", (768,), False),  # BERT
        ("model.layers.0.conv.bias", (1, 1, 4, 8), False),  # 4-D but not a square mask
    ],
)
def test_buffer_rule(name, shape, buffer):
    assert TensorInfo(name, "F32", shape, 4 * math.prod(shape)).is_buffer is buffer


def test_gpt2_is_tied_by_default_and_counted_once():
    folder = "openai-community__gpt2"
    tensors, config = manifest_tensors(folder), load_fixture_json(folder, "config.json")
    wte = next(t for t in tensors if t.name == "wte.weight")
    with_head = [*tensors, TensorInfo("lm_head.weight", wte.dtype, wte.shape, wte.nbytes)]
    stored_once, stored_twice = count_weights(tensors, config), count_weights(with_head, config)
    assert stored_once.tied_embeddings and stored_twice.tied_embeddings
    assert stored_twice.parameters == stored_once.parameters == 124_439_808
    assert stored_twice.weight_bytes == stored_once.weight_bytes + wte.nbytes  # bytes stay exact
    untied = count_weights(with_head, {**config, "tie_word_embeddings": False})
    assert not untied.tied_embeddings and untied.parameters == 124_439_808 + wte.numel


def test_llama_config_says_untied():
    folder = "meta-llama__Llama-3.1-8B"
    config = load_fixture_json(folder, "config.json")
    assert not count_weights(manifest_tensors(folder), config).tied_embeddings
    without_flag = {k: v for k, v in config.items() if k != "tie_word_embeddings"}
    assert count_weights(manifest_tensors(folder), without_flag).parameters == 8_030_261_248  # LlamaConfig default


def test_unknown_dtype_degrades_with_a_note():
    tensors = [*manifest_tensors("meta-llama__Llama-2-7b-hf"), TensorInfo("model.extra", "F3_FUTURE", (10,), 7)]
    count = count_weights(tensors, load_fixture_json("meta-llama__Llama-2-7b-hf", "config.json"))
    assert count.parameters is None
    assert count.weight_bytes == 13_476_839_424 + 7
    assert count.stored_elements["F3_FUTURE"] == 10
    assert any("F3_FUTURE" in n and "model.extra" in n and "unknown" in n for n in count.notes)


def test_a_module_whose_tensors_lie_apart_counts_as_one_stored_together():
    # Writers store a module's tensors together; counting takes modules in first-seen order either way.
    def linear(layer, leaf):
        return TensorInfo(f"model.layers.{layer}.mlp.down_proj.{leaf}", "F8_E4M3" if leaf == "weight" else "F32",
                          (4, 4) if leaf == "weight" else (1, 1), 16 if leaf == "weight" else 4)

    together = [linear(0, "weight"), linear(0, "weight_scale_inv"), linear(1, "weight"), linear(1, "weight_scale_inv")]
    apart = [together[0], together[2], together[1], together[3]]
    assert summarize_weights(apart) == summarize_weights(together)
    assert [c.sites for c in summarize_weights(apart).classes] == [("0", "1"), ("0", "1")]


def test_two_names_of_one_module_and_suffix_do_not_break_counting():
    # module_key gives 'Amx_blocks' and '.Amx_blocks' the same module and suffix (once a KeyError).
    tensors = [TensorInfo("Amx_blocks", "U8", (2, 16), 32), TensorInfo(".Amx_blocks", "U8", (2, 16), 32)]
    summary = summarize_weights(tensors)
    assert sum(c.count for c in summary.classes) == 2 and summary.count.weight_bytes == 64


@pytest.mark.parametrize(
    ("tensors", "config", "error", "message"),
    [
        ([TensorInfo("w", "F16", (-1, 2), 4, "a.safetensors")], None, BadHeader, "a.safetensors: tensor 'w'"),
        ([TensorInfo("w", "F16", (2,), -4)], None, BadHeader, "invalid byte size"),
        ([], ["not", "a", "dict"], BadConfig, "config.json: expected a JSON object"),
    ],
)
def test_malformed_input_raises_gpumem_errors(tensors, config, error, message):
    with pytest.raises(error, match=message):
        count_weights(tensors, config)


_LEAVES = ["weight", "bias", "qweight", "qzeros", "scales", "g_idx", "SCB", "weight_format", "weight_packed",
           "weight_scale", "weight_scale_inv", "weight_shape", "input_scale", "inv_freq", "masked_bias",
           "weight.absmax", "weight.quant_state.bitsandbytes__nf4", "gate_up_proj_blocks", "gate_up_proj_scales",
           "k_scale", "lm_head.weight", "embed_tokens.weight"]  # fmt: skip
_tensor = st.builds(
    TensorInfo,
    name=st.builds(lambda m, leaf: f"model.layers.{m}.{leaf}", st.sampled_from(["0.mlp", "1.self_attn", "x"]),
                   st.sampled_from(_LEAVES)),
    dtype=st.sampled_from([*DTYPE_BITS, "Q4_K", ""]),
    shape=st.lists(st.integers(0, 70), max_size=4).map(tuple),  # malformed shapes: the table above
    nbytes=st.integers(0, 10_000),
)
_config = st.one_of(
    st.none(),
    st.fixed_dictionaries({
        "model_type": st.sampled_from(["llama", "gpt2", "qwen2", 7]),
        "tie_word_embeddings": st.booleans(),
        "quantization_config": st.one_of(
            st.none(), st.integers(),
            st.fixed_dictionaries({
                "quant_method": st.sampled_from(["gptq", "awq", "bitsandbytes", "fp8", "compressed-tensors", "xyz", 3]),
                "bits": st.one_of(st.integers(-1, 40), st.booleans(), st.just([4])),
                "config_groups": st.one_of(st.none(), st.just({"g": {"weights": {"num_bits": [8]}}})),
                "load_in_4bit": st.booleans(),
                "weight_block_size": st.one_of(st.none(), st.just([128, 128])),
            }),
        ),
    }),
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(tensors=st.lists(_tensor, max_size=12), config=_config,
       quantize_config=st.one_of(st.none(), st.dictionaries(st.sampled_from(["bits", "w_bit", "quant_method"]),
                                                            st.integers(-2, 40))))
def test_never_raises_anything_but_gpumem_errors(tensors, config, quantize_config):
    try:
        count = count_weights(tensors, config, quantize_config)
    except GpumemError:
        return
    assert count.weight_bytes == sum(t.nbytes for t in tensors)
    assert count.parameters is None or count.parameters >= 0
