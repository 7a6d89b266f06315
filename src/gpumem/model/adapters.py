"""Pure: PEFT LoRA adapters — their adapter_config.json, which base modules they target, their exact
size, whether their shapes fit the base, and what serving them asks of an engine (`LoraServing`; what vLLM
preallocates for them is vLLM's engine's: planning/engines/vllm.py).

Where each rule comes from (huggingface/peft, bitsandbytes and vLLM sources, read 2026-11):

- A targeted linear (out, in) gets lora_A (r, in) and lora_B (out, r): r x (in + out) parameters
  (peft tuners/lora/layer.py `update_layer`); an embedding (V, H) gets lora_embedding_A (r, V) and
  lora_embedding_B (H, r). DoRA adds a magnitude vector of `out`, `lora_bias` a bias of `out`;
  rsLoRA changes only the scaling (alpha / sqrt(r)), not the sizes.
- `target_modules`: a list matches a module whose name is an entry or ends with "." + entry; a string
  is a regex that must match the whole name; "all-linear" is every linear layer except the output head
  (peft tuners_utils `check_target_module_exists`, `_maybe_include_all_linear_layers`).
  `exclude_modules`, `layers_to_transform` / `layers_pattern` narrow it the same way.
- `rank_pattern` / `alpha_pattern`: the first key with `re.match(rf"(.*\\.)?({key})$", name)` wins
  (peft utils/other.py `get_pattern_key`).
- `modules_to_save`: full trainable copies of those modules (a classifier head, lm_head, ...).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..constants import ALL_LINEAR
from ..errors import FormatError
from .architecture import Architecture
from .layout import ADAPTER_CONFIG
from .types import ModelSummary, TensorInfo

# nn.Embedding weights (not linear layers): LoRA targets them only when named explicitly.
_EMBEDDING = re.compile(r"(^|\.)(embed_tokens|wte|wpe|word_embeddings|embed_in|tok_embeddings|embed_positions|"
                        r"position_embeddings|token_type_embeddings)$")
# The output head PEFT's "all-linear" leaves out (model.get_output_embeddings()).
_OUTPUT_HEAD = re.compile(r"(^|\.)(lm_head|embed_out)$")
# Row-parallel linears in vLLM (their input is split over TP); every other linear is column-parallel.
_ROW_PARALLEL = re.compile(r"(^|\.)(o_proj|down_proj|w2|dense|out_proj|fc2|c_proj|dense_4h_to_h|wo)$")
# Linears vLLM keeps whole on every GPU: MoE routers and the MLA low-rank projections.
_REPLICATED = re.compile(r"(\.gate|router|shared_expert_gate|kv_a_proj_with_mqa|q_a_proj)$")
# GPT-2 family stores Conv1D weights as (in, out).
_CONV1D_MODEL_TYPES = frozenset({"gpt2"})
_ADAPTER_PREFIX = "base_model.model."


def is_output_head(name: str) -> bool:
    """The model's output head (lm_head / embed_out): not a linear layer adapters or LoRA slots wrap."""
    return _OUTPUT_HEAD.search(name) is not None


class AdapterError(FormatError):
    """An adapter repo gpumem cannot use: not a PEFT LoRA config, or shapes that do not fit its base."""


@dataclass(frozen=True, slots=True)
class Module:
    """One weight-bearing module of a base model, as its checkpoint stores it."""

    name: str  # checkpoint name without ".weight"
    out_features: int
    in_features: int
    kind: str = "linear"  # "linear" | "embedding"

    @property
    def parameters(self) -> int:
        """Elements of its weight."""
        return self.out_features * self.in_features

    @property
    def split(self) -> str:
        """How vLLM's tensor parallel splits it: "column", "row" or "replicated"."""
        if _REPLICATED.search(self.name):
            return "replicated"
        return "row" if _ROW_PARALLEL.search(self.name) else "column"


def base_modules(tensors: Iterable[TensorInfo], model_type: str | None = None,
                 arch: Architecture | None = None) -> tuple[Module, ...]:
    """The linear layers and embeddings of a base checkpoint: every 2-D `*.weight` tensor.

    GPT-2's Conv1D weights are stored (in, out) and turned round. Packed quantized weights (bitsandbytes
    4-bit bytes [N/2, 1], GPTQ/AWQ `qweight`) do not show their shape: a Llama-style projection
    (q/k/v/o, gate/up/down) takes its shape from the architecture; others are left out.
    """
    conv1d = model_type in _CONV1D_MODEL_TYPES
    modules = []
    for tensor in tensors:
        packed = tensor.name.endswith(".qweight") or (tensor.name.endswith(".weight") and tensor.dtype in _PACKED)
        if packed:
            name = tensor.name.rpartition(".")[0]
            shape = _projection_shape(name, arch) if arch else None
            if shape:
                modules.append(Module(name, *shape))
            continue
        if not tensor.name.endswith(".weight") or len(tensor.shape) != 2 or not _is_float_or_int8(tensor.dtype):
            continue
        name = tensor.name.removesuffix(".weight")
        rows, cols = tensor.shape
        if _EMBEDDING.search(name):
            modules.append(Module(name, cols, rows, "embedding"))  # (V, H): stored as num_embeddings x dim
        elif conv1d and not is_output_head(name):
            modules.append(Module(name, cols, rows))
        else:
            modules.append(Module(name, rows, cols))
    return tuple(modules)


def summary_modules(summary: ModelSummary, arch: Architecture | None) -> tuple[Module, ...]:
    """base_modules over a model summary: its weight classes, each of its tensors by name (no side data)."""
    weights = (TensorInfo(name, c.dtype, c.shape, c.nbytes) for c in summary.classes
               if c.role not in ("side", "buffer") and c.leaf in ("weight", "qweight") for name in c.names())
    return base_modules(weights, arch.model_type if arch else None, arch)


def _projection_shape(name: str, arch: Architecture) -> tuple[int, int] | None:
    """(out, in) of a Llama-style projection from the architecture (for weights stored packed)."""
    leaf = name.rpartition(".")[2]
    hidden, heads = arch.hidden_size, arch.num_attention_heads * arch.head_dim
    inter = (arch.moe_intermediate_size or arch.intermediate_size) if ".experts." in name else arch.intermediate_size
    shapes = {"q_proj": (heads, hidden), "k_proj": (arch.num_kv_heads * arch.head_dim, hidden),
              "v_proj": (arch.num_kv_heads * arch.head_dim, hidden), "o_proj": (hidden, heads),
              "gate_proj": (inter, hidden), "up_proj": (inter, hidden), "down_proj": (hidden, inter)}
    return shapes.get(leaf)


_PACKED = frozenset({"U8", "I32", "U32"})  # integer containers of packed 4-bit (or 2/3/8-bit GPTQ) values


def _is_float_or_int8(dtype: str) -> bool:
    """Weights stored with their real shape: floats (F16, BF16, F32, FP8) and LLM.int8's I8."""
    return dtype.startswith(("F", "BF")) or dtype == "I8"


@dataclass(frozen=True)
class LoraConfig:
    """The parts of a PEFT LoRA config that decide sizes (and what to show the user)."""

    rank: int
    alpha: float
    target_modules: tuple[str, ...] | str  # a list of names/suffixes, a regex, or "all-linear"
    exclude_modules: tuple[str, ...] | str = ()
    rank_pattern: dict[str, int] = field(default_factory=dict)
    alpha_pattern: dict[str, float] = field(default_factory=dict)
    modules_to_save: tuple[str, ...] = ()
    use_dora: bool = False
    use_rslora: bool = False
    lora_bias: bool = False
    layers_to_transform: tuple[int, ...] = ()
    layers_pattern: tuple[str, ...] = ()
    fan_in_fan_out: bool = False
    base_model: str | None = None

    @property
    def max_rank(self) -> int:
        """The largest rank any module gets (rank_pattern included)."""
        return max([self.rank, *self.rank_pattern.values()])

    @property
    def variant(self) -> str:
        """"LoRA", "DoRA", "rsLoRA" or "rsDoRA"."""
        return ("rs" if self.use_rslora else "") + ("DoRA" if self.use_dora else "LoRA")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: rank, alpha, target_modules and the variant flags that change sizes."""
        targets = self.target_modules if isinstance(self.target_modules, str) else list(self.target_modules)
        return {"rank": self.rank, "alpha": self.alpha, "target_modules": targets, "variant": self.variant,
                "rank_pattern": dict(self.rank_pattern), "modules_to_save": list(self.modules_to_save)}


def parse_adapter_config(data: object, path: str = ADAPTER_CONFIG) -> LoraConfig:
    """Read a PEFT adapter_config.json; AdapterError naming the field for anything else."""
    if not isinstance(data, dict):
        raise AdapterError(f"{path}: expected a JSON object, got {type(data).__name__}")
    peft_type = data.get("peft_type")
    if peft_type is None:
        kind = " (an MLX adapter: fine_tune_type)" if "fine_tune_type" in data else ""
        raise AdapterError(f"{path} is not a PEFT adapter config: no 'peft_type' field{kind}",
                           hint="gpumem reads PEFT LoRA adapters (adapter_config.json from peft's save_pretrained)")
    if str(peft_type).upper() != "LORA":
        raise AdapterError(f"{path}: peft_type {peft_type!r} is not supported (gpumem sizes LoRA, DoRA and rsLoRA "
                           "adapters)")
    rank = _positive_int(data.get("r", 8), path, "r")
    alpha = data.get("lora_alpha", 8)
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool):
        raise AdapterError(f"{path}: field 'lora_alpha' must be a number, got {alpha!r}")
    targets = data.get("target_modules")
    if targets is None and data.get("target_parameters"):
        raise AdapterError(f"{path}: adapters on raw parameters ('target_parameters') are not supported")
    base = data.get("base_model_name_or_path")
    return LoraConfig(
        rank=rank, alpha=alpha, target_modules=_names(targets, path, "target_modules", allow_regex=True),
        exclude_modules=_names(data.get("exclude_modules"), path, "exclude_modules", allow_regex=True),
        rank_pattern={str(k): _positive_int(v, path, f"rank_pattern[{k!r}]")
                      for k, v in _mapping(data.get("rank_pattern"), path, "rank_pattern").items()},
        alpha_pattern=dict(_mapping(data.get("alpha_pattern"), path, "alpha_pattern")),
        modules_to_save=tuple(_names(data.get("modules_to_save"), path, "modules_to_save", allow_regex=False)),
        use_dora=bool(data.get("use_dora")), use_rslora=bool(data.get("use_rslora")),
        lora_bias=bool(data.get("lora_bias")), layers_to_transform=_layers(data.get("layers_to_transform"), path),
        layers_pattern=tuple(_names(data.get("layers_pattern"), path, "layers_pattern", allow_regex=False)),
        fan_in_fan_out=bool(data.get("fan_in_fan_out")),
        base_model=base if isinstance(base, str) and base.strip() else None)


def _positive_int(value: object, path: str, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise AdapterError(f"{path}: field '{name}' must be a positive integer, got {value!r}")
    return value


def _mapping(value: object, path: str, name: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise AdapterError(f"{path}: field '{name}' must be an object, got {type(value).__name__}")
    return value


def _names(value: object, path: str, name: str, *, allow_regex: bool) -> tuple[str, ...] | str:
    if value is None:
        return ()
    if isinstance(value, str):
        if allow_regex:
            return ALL_LINEAR if value.lower() == ALL_LINEAR else value
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise AdapterError(f"{path}: field '{name}' must be a string or a list of strings")


def _layers(value: object, path: str) -> tuple[int, ...]:
    if value is None:
        return ()
    values = [value] if isinstance(value, int) else value
    if not isinstance(values, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise AdapterError(f"{path}: field 'layers_to_transform' must be an integer or a list of integers")
    return tuple(values)


def _matches_names(name: str, names: tuple[str, ...] | str) -> bool:
    """PEFT's rule: a regex string must match the whole name; a list entry is the name or a dotted suffix."""
    if isinstance(names, str):
        return re.fullmatch(names, name) is not None
    return any(name == key or name.endswith("." + key) for key in names)


def _layer_index(name: str, patterns: tuple[str, ...]) -> int | None:
    for pattern in patterns or ("[^.]*",):
        match = re.match(rf".*?\.{pattern}\.(\d+)\.", name) or re.match(rf"^{pattern}\.(\d+)\.", name)
        if match:
            return int(match.group(1))
    return None


def is_targeted(module: Module, config: LoraConfig) -> bool:
    """Whether PEFT puts a LoRA layer on this module."""
    name = module.name
    if config.exclude_modules and _matches_names(name, config.exclude_modules):
        return False
    if any(re.match(rf"(^|.*\.){re.escape(m)}($|\..*)", name) for m in config.modules_to_save):
        return False
    if config.target_modules == ALL_LINEAR:
        found = module.kind == "linear" and not is_output_head(name)
    else:
        found = _matches_names(name, config.target_modules)
        if found and config.layers_to_transform and not isinstance(config.target_modules, str):
            found = _layer_index(name, config.layers_pattern) in config.layers_to_transform
    return found


def module_rank(name: str, config: LoraConfig) -> int:
    """The rank this module gets: the first matching rank_pattern key, else r."""
    for key, rank in config.rank_pattern.items():
        if re.match(rf"(.*\.)?({key})$", name):
            return rank
    return config.rank


@dataclass(frozen=True, slots=True)
class LoraLayer:
    """One LoRA layer: the base module and the rank it gets."""

    module: Module
    rank: int

    @property
    def parameters(self) -> int:
        """A (r, in) + B (out, r)."""
        return self.rank * (self.module.in_features + self.module.out_features)

    def matrices(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """The shapes of A and B (embeddings: lora_embedding_A (r, V), lora_embedding_B (H, r))."""
        return (self.rank, self.module.in_features), (self.module.out_features, self.rank)


def lora_layers(modules: Sequence[Module], config: LoraConfig) -> tuple[LoraLayer, ...]:
    """Every LoRA layer PEFT would create on these base modules."""
    return tuple(LoraLayer(m, module_rank(m.name, config)) for m in modules if is_targeted(m, config))


def saved_modules(modules: Sequence[Module], config: LoraConfig) -> tuple[Module, ...]:
    """Base modules `modules_to_save` copies whole (trainable)."""
    return tuple(m for m in modules
                 if any(re.match(rf"(^|.*\.){re.escape(s)}($|\..*)", m.name) for s in config.modules_to_save))


def trainable_parameters(modules: Sequence[Module], config: LoraConfig) -> int:
    """Exact trainable parameters of a LoRA (DoRA, rsLoRA) set-up on a base: its LoRA matrices, DoRA
    magnitudes, LoRA biases and modules_to_save copies."""
    total = 0
    for layer in lora_layers(modules, config):
        total += layer.parameters
        if config.use_dora:
            total += layer.module.out_features
        if config.lora_bias:
            total += layer.module.out_features
    return total + sum(m.parameters for m in saved_modules(modules, config))


# --- an adapter checkpoint read against its base ------------------------------------------------------

@dataclass(frozen=True)
class Adapter:
    """A PEFT adapter as read: its config, exact stored counts, and the base it was checked against."""

    repo_id: str
    config: LoraConfig
    parameters: int
    weight_bytes: int
    dtype: str  # the dtype holding most of its bytes (F32, BF16, ...)
    base_model: str  # the base it is applied to (after --base)
    lora_modules: int  # base modules with a LoRA layer

    def to_dict(self) -> dict[str, Any]:
        """The issue's JSON `adapter` object."""
        return {"repo_id": self.repo_id, "base_model": self.base_model, **self.config.to_dict(),
                "parameters": self.parameters, "weight_bytes": self.weight_bytes, "dtype": self.dtype,
                "lora_modules": self.lora_modules}


_LORA_SUFFIX = re.compile(r"\.(lora_A|lora_B|lora_embedding_A|lora_embedding_B)(\.[^.]+)?(\.weight)?$")
_MAGNITUDE = re.compile(r"\.lora_magnitude_vector(\.[^.]+)?(\.weight)?$")


def read_adapter(repo_id: str, config: LoraConfig, tensors: Sequence[TensorInfo], base: Sequence[Module],
                 base_model: str) -> Adapter:
    """Count an adapter's stored tensors exactly and check every LoRA matrix against the base's module.

    AdapterError names the first tensor whose module the base lacks or whose shape does not fit.
    """
    if not tensors:
        raise AdapterError(f"{repo_id}: the adapter weights hold no tensors")
    by_name = {m.name: m for m in base}
    seen: set[str] = set()
    for tensor in tensors:
        lora = _LORA_SUFFIX.search(tensor.name)
        found = lora or _MAGNITUDE.search(tensor.name)
        if found is None:
            continue  # modules_to_save copies, trainable tokens: counted, not shape-checked
        module_name = tensor.name[:found.start()].removeprefix(_ADAPTER_PREFIX)
        module = _find_module(module_name, by_name)
        if module is None:
            raise AdapterError(f"{tensor.file or repo_id}: tensor '{tensor.name}' targets module '{module_name}', "
                               f"which the base {base_model} does not have",
                               hint="pass the model this adapter was trained on as base", hint_options=("base",))
        seen.add(module.name)
        if lora:
            _check_lora_shape(tensor, lora.group(1), module, base_model)
        elif tensor.shape not in ((module.out_features,), (1, module.out_features)):
            _mismatch(tensor, f"a magnitude vector of {module.out_features}", base_model, module)
    by_dtype = dict.fromkeys((t.dtype for t in tensors), 0)
    for t in tensors:
        by_dtype[t.dtype] += t.nbytes
    dtype = max(by_dtype, key=lambda d: by_dtype[d])
    return Adapter(repo_id, config, sum(t.numel for t in tensors), sum(t.nbytes for t in tensors), dtype,
                   base_model, len(seen))


def _find_module(name: str, by_name: dict[str, Module]) -> Module | None:
    """The base module an adapter's module name means: the same name, or one differing by a leading
    prefix (PEFT saves runtime names, "transformer.h.0.attn.c_attn"; GPT-2's checkpoint says "h.0.attn.c_attn")."""
    if name in by_name:
        return by_name[name]
    parts = name.split(".")
    for start in range(1, len(parts)):
        if (shorter := ".".join(parts[start:])) in by_name:
            return by_name[shorter]
    for full, module in by_name.items():  # the checkpoint has the longer name ("model.language_model....")
        if full.endswith("." + name):
            return module
    return None


def _check_lora_shape(tensor: TensorInfo, which: str, module: Module, base_model: str) -> None:
    in_features, out_features = module.in_features, module.out_features
    shape = tensor.shape
    if len(shape) != 2:
        _mismatch(tensor, "a 2-D matrix", base_model, module)
    if which in ("lora_A", "lora_embedding_A"):
        if shape[1] != in_features:
            _mismatch(tensor, f"[rank, {in_features}]", base_model, module)
    elif shape[0] != out_features:
        _mismatch(tensor, f"[{out_features}, rank]", base_model, module)


def _mismatch(tensor: TensorInfo, expected: str, base_model: str, module: Module) -> None:
    raise AdapterError(f"{tensor.file or 'adapter'}: tensor '{tensor.name}' has shape {list(tensor.shape)}, but "
                       f"the base {base_model} needs {expected} for '{module.name}' "
                       f"({module.out_features} x {module.in_features})",
                       hint="the adapter was trained on another model; pass that model as base",
                       hint_options=("base",))


@dataclass(frozen=True)
class LoraServing:
    """Adapters served on a base: what they add to every GPU's weights, per engine.

    What they add to a GPU is the engine's (`Engine.lora_weights`): vLLM preallocates its LoRA slots,
    whatever the adapters' own size; transformers (PEFT) loads each adapter as it is, upcast to fp32
    (PeftModel's autocast_adapter_dtype default).
    """

    modules: tuple[Module, ...]  # the base's linear layers
    ranks: tuple[int, ...]  # one per adapter
    adapter_parameters: int  # all adapters together
    dtype_bytes: int = 2  # the base model's dtype: vLLM's lora_dtype "auto"
    repos: tuple[str, ...] = ()  # the adapters' repo ids (or paths), in order
