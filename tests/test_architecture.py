"""parse_architecture over real published configs (fixtures/hub, fixtures/configs, the measured rows)."""

from __future__ import annotations

import json

import pytest

from conftest import FIXTURES, load_fixture_json
from gpumem.architecture import FULL, SLIDING, parse_architecture
from gpumem.errors import BadConfig


def real_config(name: str) -> dict:
    """A real config.json: fixtures/hub/<name>/config.json or fixtures/configs/<name>.json."""
    hub = FIXTURES / "hub" / name / "config.json"
    path = hub if hub.exists() else FIXTURES / "configs" / f"{name}.json"
    return json.loads(path.read_text())


def measured_config(model: str) -> dict:
    """The config a measurement row was built from."""
    lines = (FIXTURES / "measurements" / "h200-transformers-bf16.jsonl").read_text().splitlines()
    return next(r["config"] for r in map(json.loads, lines) if r.get("model") == model and r["kind"] == "weights")


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


def test_mistral_measured_config_without_window_is_all_full_attention():
    arch = parse_architecture(measured_config("Mistral-7B-v0.1"))
    assert arch.full_attention_layers == 32 and arch.sliding_window is None


def test_gemma2_style_alternation_without_layer_types():
    # Gemma-2's scheme (even layers local) applied to a real config's shapes: every 2nd layer global.
    config = real_config("meta-llama__Llama-2-7b-hf") | {"model_type": "gemma2", "sliding_window": 4096}
    arch = parse_architecture(config)
    assert arch.layer_kinds[:4] == (SLIDING, FULL, SLIDING, FULL) and arch.sliding_layers == 16


def test_sliding_window_pattern_five_local_one_global():
    config = real_config("meta-llama__Llama-2-7b-hf") | {"model_type": "gemma3_text", "sliding_window": 1024,
                                                           "sliding_window_pattern": 6}
    arch = parse_architecture(config)
    assert arch.layer_kinds[:6] == (SLIDING,) * 5 + (FULL,) and arch.full_attention_layers == 5


def test_jamba_attention_period_and_mamba_state():
    # Jamba's layout keys (attention every 8 layers from offset 4, Mamba-1 state) on a real config's shapes.
    config = real_config("meta-llama__Llama-3.1-8B") | {
        "model_type": "jamba", "attn_layer_period": 8, "attn_layer_offset": 4,
        "mamba_d_state": 16, "mamba_d_conv": 4, "mamba_expand": 2}
    arch = parse_architecture(config)
    assert [i for i, k in enumerate(arch.layer_kinds) if k == FULL] == [4, 12, 20, 28]
    assert arch.state_layers == 28
    assert arch.mamba_state_elements == 8192 * 3 + 8192 * 16  # conv (d_conv - 1) + SSM d_state, d_inner 8192


def test_language_model_inside_text_config():
    # A multimodal wrapper (Llava layout) around the real Llama-2-7B config.
    config = {"architectures": ["LlavaForConditionalGeneration"], "model_type": "llava",
              "text_config": real_config("meta-llama__Llama-2-7b-hf"), "vision_config": {"hidden_size": 1024}}
    arch = parse_architecture(config)
    assert arch.has_vision and arch.config_path == "config.json:text_config" and arch.num_layers == 32


def test_bare_encoder_class_has_no_kv_cache():
    config = real_config("openai-community__gpt2") | {"architectures": ["BertModel"], "model_type": "bert"}
    assert parse_architecture(config).is_encoder


@pytest.mark.parametrize("change,field", [
    ({"num_attention_heads": 0}, "num_attention_heads"),
    ({"num_hidden_layers": -2}, "num_hidden_layers"),
    ({"num_key_value_heads": 3}, "num_key_value_heads"),
    ({"num_attention_heads": 30, "num_key_value_heads": 30}, "num_attention_heads"),  # 4096 % 30, no head_dim
    ({"hidden_size": "4096"}, "hidden_size"),
    ({"vocab_size": None}, "vocab_size"),
])
def test_absurd_values_name_the_field(change, field):
    config = real_config("meta-llama__Llama-2-7b-hf") | change
    with pytest.raises(BadConfig, match=f"config.json: field '{field}'"):
        parse_architecture(config)


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
