"""parse_architecture over real published configs (fixtures/hub, fixtures/configs)."""

from __future__ import annotations

import json

import pytest
from conftest import FIXTURES, load_fixture_json

from gpumem.errors import BadConfig
from gpumem.model.architecture import FULL, SLIDING, parse_architecture


def real_config(name: str) -> dict:
    """A real config.json: fixtures/hub/<name>/config.json or fixtures/configs/<name>.json."""
    hub = FIXTURES / "hub" / name / "config.json"
    path = hub if hub.exists() else FIXTURES / "configs" / f"{name}.json"
    return json.loads(path.read_text())


# name, layers, hidden, heads, kv heads, head_dim, intermediate, vocab, max context
FAMILIES = [
    ("meta-llama__Llama-2-7b-hf", 32, 4096, 32, 32, 128, 11008, 32000, 4096),
    ("meta-llama__Llama-2-70b-chat-hf", 80, 8192, 64, 8, 128, 28672, 32000, 4096),
    ("meta-llama__Llama-3.1-8B", 32, 4096, 32, 8, 128, 14336, 128256, 131072),
    ("Qwen__Qwen2.5-7B", 28, 3584, 28, 4, 128, 18944, 152064, 131072),
    ("Qwen__Qwen3-8B", 36, 4096, 32, 8, 128, 12288, 151936, 40960),
    ("Qwen__Qwen3-30B-A3B", 48, 2048, 32, 4, 128, 6144, 151936, 40960),
    ("mistralai__Mixtral-8x7B-v0.1", 32, 4096, 32, 8, 128, 14336, 32000, 32768),
    ("microsoft__Phi-3-mini-4k-instruct", 32, 3072, 32, 32, 96, 8192, 32064, 4096),
    ("deepseek-ai__DeepSeek-R1", 61, 7168, 128, 128, 56, 18432, 129280, 163840),
    ("openai__gpt-oss-20b", 24, 2880, 64, 8, 64, 2880, 201088, 131072),
    ("openai-community__gpt2", 12, 768, 12, 12, 64, 3072, 50257, 1024),
    ("google__gemma-2-9b-it", 42, 3584, 16, 8, 256, 14336, 256000, 8192),
    ("google__gemma-3-270m-it", 18, 640, 4, 1, 256, 2048, 262144, 32768),
]


@pytest.mark.parametrize("name,layers,hidden,heads,kv,head_dim,inter,vocab,ctx", FAMILIES)
def test_family_shapes(name, layers, hidden, heads, kv, head_dim, inter, vocab, ctx):
    arch = parse_architecture(real_config(name))
    assert (arch.num_layers, arch.hidden_size, arch.num_attention_heads, arch.num_kv_heads) == (layers, hidden, heads, kv)
    assert (arch.head_dim, arch.intermediate_size, arch.vocab_size, arch.max_context) == (head_dim, inter, vocab, ctx)
    assert not arch.is_encoder


def test_explicit_head_dim_wins_over_hidden_over_heads():
    arch = parse_architecture(real_config("openai__gpt-oss-20b"))  # 2880 / 64 = 45, config says 64
    assert arch.head_dim == 64


# name, experts, per token, shared, first dense layers
MOE = [
    ("mistralai__Mixtral-8x7B-v0.1", 8, 2, 0, 0),
    ("Qwen__Qwen3-30B-A3B", 128, 8, 0, 0),
    ("deepseek-ai__DeepSeek-R1", 256, 8, 1, 3),
    ("openai__gpt-oss-20b", 32, 4, 0, 0),
]


@pytest.mark.parametrize("name,experts,top_k,shared,dense", MOE)
def test_moe_keys(name, experts, top_k, shared, dense):
    arch = parse_architecture(real_config(name))
    assert arch.is_moe
    assert (arch.num_experts, arch.experts_per_token, arch.num_shared_experts, arch.first_dense_layers) == (
        experts, top_k, shared, dense)


def test_mla_fields_deepseek_v3():
    arch = parse_architecture(real_config("deepseek-ai__DeepSeek-R1"))
    assert arch.is_mla and (arch.kv_lora_rank, arch.qk_rope_head_dim) == (512, 64)


def test_gpt_oss_alternates_sliding_and_full_layers():
    arch = parse_architecture(real_config("openai__gpt-oss-20b"))
    assert arch.layer_kinds[:4] == (SLIDING, FULL, SLIDING, FULL)
    assert (arch.sliding_layers, arch.full_attention_layers, arch.sliding_window) == (12, 12, 128)


@pytest.mark.parametrize("name", ["Qwen__Qwen2.5-7B", "Qwen__Qwen3-8B"])
def test_qwen_window_is_ignored_when_use_sliding_window_is_false(name):
    arch = parse_architecture(real_config(name))
    assert arch.sliding_layers == 0 and arch.sliding_window is None


def test_qwen_window_applies_from_max_window_layers_when_enabled():
    config = real_config("Qwen__Qwen2.5-7B") | {"use_sliding_window": True, "sliding_window": 4096,
                                                  "max_window_layers": 20}
    arch = parse_architecture(config)
    assert (arch.full_attention_layers, arch.sliding_layers) == (20, 8)


def test_phi3_window_on_every_layer():
    arch = parse_architecture(real_config("microsoft__Phi-3-mini-4k-instruct"))
    assert arch.sliding_layers == 32 and arch.sliding_window == 2047


def test_gemma2_alternates_sliding_and_global_without_layer_types():
    arch = parse_architecture(real_config("google__gemma-2-9b-it"))  # no layer_types: even layers slide
    assert arch.layer_kinds[:4] == (SLIDING, FULL, SLIDING, FULL)
    assert (arch.sliding_layers, arch.full_attention_layers, arch.sliding_window) == (21, 21, 4096)
    assert arch.head_dim == 256  # explicit, not 3584 / 16


def test_gemma3_layer_types_five_local_one_global():
    arch = parse_architecture(real_config("google__gemma-3-270m-it"))
    assert arch.layer_kinds[:6] == (SLIDING,) * 5 + (FULL,)
    assert (arch.sliding_layers, arch.full_attention_layers, arch.sliding_window) == (15, 3, 512)
    assert (arch.num_attention_heads, arch.num_kv_heads, arch.head_dim) == (4, 1, 256)


def test_language_model_inside_sparse_text_config():
    arch = parse_architecture(real_config("llava-hf__llava-1.5-7b-hf"))
    assert arch.has_vision and arch.config_path == "config.json:text_config"
    assert (arch.num_layers, arch.hidden_size, arch.num_attention_heads, arch.num_kv_heads) == (32, 4096, 32, 32)
    assert (arch.intermediate_size, arch.vocab_size, arch.max_context) == (11008, 32064, 4096)


def test_sentence_embedding_bert_has_no_kv_cache():
    arch = parse_architecture(real_config("sentence-transformers__all-MiniLM-L6-v2"))  # BertModel
    assert arch.is_encoder
    assert (arch.num_layers, arch.hidden_size, arch.num_attention_heads, arch.head_dim, arch.max_context) == (
        6, 384, 12, 32, 512)


@pytest.mark.parametrize("change,field", [
    ({"num_attention_heads": 0}, "num_attention_heads"),
    ({"num_hidden_layers": -2}, "num_hidden_layers"),
    ({"num_key_value_heads": 3}, "num_key_value_heads"),
    ({"num_attention_heads": 30, "num_key_value_heads": 30}, "num_attention_heads"),  # 4096 % 30, no head_dim
    ({"hidden_size": "4096"}, "hidden_size"),
    ({"vocab_size": None}, "vocab_size"),
    ({"hidden_size": {"value": 4096}}, "hidden_size"),  # an object where an integer is expected
    ({"num_attention_heads": True}, "num_attention_heads"),  # bool is an int subclass: refused
    ({"num_hidden_layers": 2**70}, "num_hidden_layers"),  # would build a per-layer list past memory
    ({"layer_types": [["x"]] + ["full_attention"] * 31}, "layer_types"),  # unhashable entry: was a TypeError
    ({"layer_types": [None, "x"] + ["full_attention"] * 30}, "layer_types"),  # unsortable mix: was a TypeError
])
def test_absurd_values_name_the_field(change, field):
    config = real_config("meta-llama__Llama-2-7b-hf") | change
    with pytest.raises(BadConfig, match=f"config.json: field '{field}'"):
        parse_architecture(config)


@pytest.mark.parametrize("change", [
    {"model_type": ["llama"]}, {"model_type": {"x": 1}}, {"architectures": [{"x": 1}, 3]},
    {"attn_layer_period": None}, {"tie_word_embeddings": {"x": 1}}, {"text_config": {"model_type": [1]}},
])
def test_odd_json_types_parse_or_raise_bad_config(change):
    # Regression: a null attn_layer_period was `i % None` (TypeError); any JSON object gives BadConfig at worst.
    config = real_config("meta-llama__Llama-2-7b-hf") | change
    try:
        arch = parse_architecture(config)
    except BadConfig as exc:
        assert exc.message.startswith("config.json")
    else:
        assert arch.num_layers == len(arch.layer_kinds) == 32


def test_non_object_config_is_bad_config():
    with pytest.raises(BadConfig, match="must be a JSON object"):
        parse_architecture(["not", "a", "config"])


def test_unknown_layer_kind_is_a_stated_reason():
    config = real_config("openai__gpt-oss-20b")
    config["layer_types"] = ["linear_attention"] * 24
    with pytest.raises(BadConfig, match="linear_attention"):
        parse_architecture(config)


def test_to_dict_is_json_ready():
    data = parse_architecture(load_fixture_json("openai-community__gpt2", "config.json")).to_dict()
    assert json.loads(json.dumps(data))["layer_kinds"] == ["full"] * 12
