"""Pure: a model's config.json -> the shape numbers the memory model needs (no torch/transformers).

Reads the key names of the families gpumem knows (Llama, Mistral/Mixtral, Qwen2/2.5/3 and their MoE,
Gemma 2/3, Phi-3, DeepSeek-V2/V3 (MLA), gpt-oss, GPT-2, Jamba/Mamba hybrids, multimodal wrappers with
`text_config` / `llm_config`, BERT-style encoders). Absurd or unreadable values raise `BadConfig`
naming config.json and the field; the caller then falls back to weights-only results with that reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, overload

from ..errors import BadConfig

FULL, SLIDING, MAMBA = "full", "sliding", "mamba"

# Families whose `sliding_window` (when set) applies to every layer.
_WINDOW_ON_ALL_LAYERS = {"mistral", "mixtral", "phi3", "starcoder2"}
# Families that alternate local (sliding) and global layers without listing `layer_types`.
_ALTERNATING = {"gemma2": 2, "gemma3_text": 6, "gemma3": 6, "cohere2": 4}
# A per-layer kind list is built: absurd layer counts must not exhaust memory (real models: under 200).
_MAX_LAYERS = 100_000
# Encoder-only / pooling heads: no KV cache is kept between requests.
_ENCODER_SUFFIXES = ("Model", "ForSequenceClassification", "ForTokenClassification", "ForMaskedLM")
_ENCODER_TYPES = {"bert", "roberta", "xlm-roberta", "distilbert", "deberta", "deberta-v2", "electra",
                  "mpnet", "nomic_bert", "new", "modernbert", "jina_bert"}


@dataclass(frozen=True, slots=True)
class Architecture:
    """The shape of a model's language stack, as read from its config.json."""

    model_type: str
    architectures: tuple[str, ...]
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool
    max_context: int | None
    layer_kinds: tuple[str, ...]  # one of FULL / SLIDING / MAMBA per layer
    sliding_window: int | None = None
    kv_lora_rank: int | None = None  # MLA (DeepSeek-V2/V3): latent cache width
    qk_rope_head_dim: int | None = None
    num_experts: int = 0
    experts_per_token: int = 0
    num_shared_experts: int = 0
    moe_intermediate_size: int | None = None
    first_dense_layers: int = 0
    mamba_state_elements: int = 0  # per Mamba layer and sequence: conv state + SSM state elements
    has_vision: bool = False
    is_encoder: bool = False  # embedding / reranker model: no KV cache
    config_path: str = "config.json"  # where the language model's numbers were found

    @property
    def is_mla(self) -> bool:
        """True for multi-head latent attention (compressed KV cache)."""
        return bool(self.kv_lora_rank)

    @property
    def is_moe(self) -> bool:
        """True when the feed-forward blocks are routed experts."""
        return self.num_experts > 1 and self.experts_per_token > 0

    @property
    def full_attention_layers(self) -> int:
        """Layers whose KV cache grows with the whole context."""
        return self.layer_kinds.count(FULL)

    @property
    def sliding_layers(self) -> int:
        """Layers whose KV cache is capped at the sliding window."""
        return self.layer_kinds.count(SLIDING)

    @property
    def state_layers(self) -> int:
        """Mamba / linear-attention layers: a constant state per sequence."""
        return self.layer_kinds.count(MAMBA)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (lists for tuples)."""
        out = asdict(self)
        out["architectures"] = list(self.architectures)
        out["layer_kinds"] = list(self.layer_kinds)
        return out


def _bad(path: str, field: str, why: str) -> BadConfig:
    return BadConfig(f"{path}: field '{field}' {why}")


_MAX_CONFIG_INT = 2**53  # no real size or count comes near; past it floats lose integers (10^318 overflows them)


def _shown(value: int) -> str:
    """A config integer as a message shows it: a 320-digit number is named by its length, not printed."""
    return f"{value:,}" if abs(value) < 10**24 else f"a {len(str(abs(value)))}-digit number"


@overload
def _int(cfg: dict, path: str, names: tuple[str, ...], *, default: int, minimum: int = 1,
         maximum: int | None = None) -> int: ...
@overload
def _int(cfg: dict, path: str, names: tuple[str, ...], *, default: None = None, minimum: int = 1,
         maximum: int | None = None) -> int | None: ...
def _int(cfg: dict, path: str, names: tuple[str, ...], *, default: int | None = None,
         minimum: int = 1, maximum: int | None = None) -> int | None:
    """First present key of `names` as an int in [minimum, maximum]; `default` when none is present."""
    for name in names:
        if name in cfg and cfg[name] is not None:
            value = cfg[name]
            if isinstance(value, bool) or not isinstance(value, int):
                raise _bad(path, name, f"must be an integer, got {value!r}")
            if value < minimum:
                raise _bad(path, name, f"must be >= {minimum}, got {_shown(value)}")
            if value > (_MAX_CONFIG_INT if maximum is None else maximum):
                raise _bad(path, name, f"must be <= {maximum or _MAX_CONFIG_INT:,}, got {_shown(value)}")
            return value
    return default


# transformers' LlamaConfig defaults (configuration_llama.py), for sparse nested text configs.
_CLASS_DEFAULTS = {
    "llama": {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
              "vocab_size": 32000, "max_position_embeddings": 2048},
}


def _language_config(config: dict) -> tuple[dict, str, bool]:
    """The sub-config holding the language model, its path label, and whether a vision tower exists."""
    has_vision = any(k in config for k in ("vision_config", "visual", "vision_tower", "mm_vision_tower"))
    for key in ("text_config", "llm_config", "language_config"):
        sub = config.get(key)
        if isinstance(sub, dict) and sub:
            # Multimodal configs (llava) list only what differs from the text model class's defaults.
            merged = {**_CLASS_DEFAULTS.get(str(sub.get("model_type") or ""), {}), **sub}  # str(): may be any JSON
            merged.setdefault("model_type", config.get("model_type", ""))
            merged.setdefault("architectures", config.get("architectures"))
            return merged, f"config.json:{key}", has_vision
    return config, "config.json", has_vision


def _is_encoder(model_type: str, archs: tuple[str, ...]) -> bool:
    if any(a.endswith(("ForCausalLM", "ForConditionalGeneration", "LMHeadModel")) for a in archs):
        return False
    if model_type in _ENCODER_TYPES:
        return True
    return bool(archs) and all(a.endswith(_ENCODER_SUFFIXES) for a in archs)


def _layer_kinds(cfg: dict, path: str, model_type: str, layers: int, window: int | None) -> tuple[str, ...]:
    """Per-layer attention kind from layer_types, hybrid periods or the family's sliding scheme."""
    types = cfg.get("layer_types") or cfg.get("layers_block_type")
    if types is not None:
        if not isinstance(types, list) or len(types) != layers:
            raise _bad(path, "layer_types", f"must list {layers} layer kinds")
        if not all(isinstance(t, str) for t in types):
            raise _bad(path, "layer_types", "must list layer kinds as strings")
        mapping = {"full_attention": FULL, "attention": FULL, "sliding_attention": SLIDING,
                   "mamba": MAMBA, "mamba2": MAMBA}
        unknown = sorted({t for t in types if t not in mapping})
        if unknown:
            raise _bad(path, "layer_types", f"has layer kinds gpumem cannot size yet: {', '.join(unknown)}")
        kinds = tuple(mapping[t] for t in types)
        if SLIDING in kinds and not window:
            raise _bad(path, "sliding_window", "is missing but layer_types lists sliding_attention layers")
        return kinds
    if cfg.get("attn_layer_period") is not None:  # Jamba: attention every `period` layers from `offset`
        period = _int(cfg, path, ("attn_layer_period",), default=1)  # present: checked above
        offset = _int(cfg, path, ("attn_layer_offset",), default=0, minimum=0)
        return tuple(FULL if i % period == offset else MAMBA for i in range(layers))
    if not window:
        return (FULL,) * layers
    if cfg.get("use_sliding_window") is False:  # Qwen2/2.5/3 carry a window they do not use
        return (FULL,) * layers
    if "use_sliding_window" in cfg:  # Qwen2 with the window on: layers from max_window_layers slide
        start = _int(cfg, path, ("max_window_layers",), default=0, minimum=0)
        return tuple(SLIDING if i >= start else FULL for i in range(layers))
    pattern = _int(cfg, path, ("sliding_window_pattern",), default=_ALTERNATING.get(model_type))
    if pattern:  # every `pattern`-th layer is global (Gemma-2: 2, Gemma-3: 6)
        return tuple(FULL if (i + 1) % pattern == 0 else SLIDING for i in range(layers))
    if model_type in _WINDOW_ON_ALL_LAYERS:
        return (SLIDING,) * layers
    return (FULL,) * layers


def _mamba_state(cfg: dict, path: str, hidden: int) -> int:
    """Elements of one Mamba layer's per-sequence state (conv + SSM), Mamba-1 or Mamba-2 key names."""
    d_state = _int(cfg, path, ("mamba_d_state", "ssm_state_size", "state_size", "d_state"), default=16)
    d_conv = _int(cfg, path, ("mamba_d_conv", "conv_kernel", "d_conv", "mamba_conv_kernel"), default=4)
    expand = _int(cfg, path, ("mamba_expand", "expand"), default=2)
    n_heads = _int(cfg, path, ("mamba_num_heads", "mamba_n_heads"), default=None)
    if n_heads:  # Mamba-2: conv over x, B, C; SSM state per head
        head = _int(cfg, path, ("mamba_head_dim", "mamba_d_head"), default=expand * hidden // n_heads)
        groups = _int(cfg, path, ("mamba_n_groups", "n_groups"), default=1)
        inner = n_heads * head
        return (inner + 2 * groups * d_state) * (d_conv - 1) + inner * d_state
    inner = expand * hidden
    return inner * (d_conv - 1) + inner * d_state


def parse_architecture(config: dict) -> Architecture:
    """Read a config.json object into an Architecture; BadConfig for absurd or unreadable values."""
    if not isinstance(config, dict):
        raise BadConfig(f"config.json: must be a JSON object, got {type(config).__name__}")
    cfg, path, has_vision = _language_config(config)
    model_type = str(cfg.get("model_type") or "")
    archs_raw = cfg.get("architectures") or config.get("architectures") or ()
    archs = tuple(str(a) for a in archs_raw) if isinstance(archs_raw, list) else ()
    layers = _int(cfg, path, ("num_hidden_layers", "n_layer", "num_layers", "n_layers"), maximum=_MAX_LAYERS)
    hidden = _int(cfg, path, ("hidden_size", "n_embd", "d_model", "dim"))
    heads = _int(cfg, path, ("num_attention_heads", "n_head", "num_heads", "n_heads"))
    if layers is None or hidden is None or heads is None:
        missing = "num_hidden_layers" if layers is None else "hidden_size" if hidden is None else "num_attention_heads"
        raise _bad(path, missing, f"is missing (model_type {model_type or 'unknown'!r})")
    kv_heads = _int(cfg, path, ("num_key_value_heads", "num_kv_heads", "n_head_kv", "multi_query_group_num"),
                    default=heads)
    if kv_heads > heads or heads % kv_heads:
        raise _bad(path, "num_key_value_heads", f"({kv_heads}) must divide num_attention_heads ({heads})")
    head_dim = _int(cfg, path, ("head_dim", "attention_head_size"))
    if head_dim is None:
        if hidden % heads:
            raise _bad(path, "num_attention_heads", f"({heads}) does not divide hidden_size ({hidden}) and head_dim is absent")
        head_dim = hidden // heads
    intermediate = _int(cfg, path, ("intermediate_size", "n_inner", "ffn_dim", "ffn_hidden_size"),
                        default=4 * hidden)
    vocab = _int(cfg, path, ("vocab_size", "padded_vocab_size"))
    if vocab is None:
        raise _bad(path, "vocab_size", "is missing")
    window = _int(cfg, path, ("sliding_window",), default=None)
    kinds = _layer_kinds(cfg, path, model_type, layers, window)
    experts = _int(cfg, path, ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts"),
                   default=0, minimum=0)
    top_k = _int(cfg, path, ("num_experts_per_tok", "experts_per_token", "moe_top_k", "num_selected_experts"),
                 default=0, minimum=0)
    if experts and top_k > experts:
        raise _bad(path, "num_experts_per_tok", f"({top_k}) exceeds the number of experts ({experts})")
    shared = _int(cfg, path, ("n_shared_experts", "num_shared_experts"), default=0, minimum=0)
    if not shared and cfg.get("shared_expert_intermediate_size"):
        shared = 1  # Qwen-MoE: one shared expert of its own width
    return Architecture(
        model_type=model_type,
        architectures=archs,
        num_layers=layers,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=intermediate,
        vocab_size=vocab,
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", config.get("tie_word_embeddings", False))),
        max_context=_int(cfg, path, ("max_position_embeddings", "n_positions", "max_sequence_length",
                                     "seq_length"), default=None),
        layer_kinds=kinds,
        sliding_window=window if SLIDING in kinds else None,
        kv_lora_rank=_int(cfg, path, ("kv_lora_rank",), default=None),
        qk_rope_head_dim=_int(cfg, path, ("qk_rope_head_dim",), default=None),
        num_experts=experts,
        experts_per_token=top_k,
        num_shared_experts=shared,
        moe_intermediate_size=_int(cfg, path, ("moe_intermediate_size",), default=None),
        first_dense_layers=_int(cfg, path, ("first_k_dense_replace",), default=0, minimum=0),
        mamba_state_elements=_mamba_state(cfg, path, hidden) if MAMBA in kinds else 0,
        has_vision=has_vision,
        is_encoder=_is_encoder(model_type, archs),
        config_path=path,
    )
