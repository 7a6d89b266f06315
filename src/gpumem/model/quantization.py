"""Pre-quantized checkpoints: which method, how many real parameters its packed tensors hold, and its side data.

Everything is read from tensor names, dtypes and shapes (headers only) plus the declared config. Packing
schemes, as the writers document them (unpacked parameters of a linear = in * out):
- GPTQ (AutoGPTQ/GPTQModel): qweight I32 [in*bits/32, out], qzeros I32 [in/g, out*bits/32],
  scales F16 [in/g, out], g_idx I32 [in]; 3-bit packs 32 values into 3 int32s.
- AWQ (AutoAWQ GEMM): qweight I32 [in, out*bits/32] (out is the packed axis), qzeros I32 [in/g, out*bits/32],
  scales F16 [in/g, out].
- compressed-tensors: pack-quantized `weight_packed` I32 [out, in*bits/32] (or U8 for nvfp4) + weight_scale,
  weight_shape, weight_zero_point; int-quantized `weight` I8; float-quantized `weight` F8_E4M3.
- bitsandbytes: 4-bit `weight` U8 [numel/2, 1] + weight.absmax / quant_map / nested_* / quant_state.*;
  8-bit `weight` I8 [out, in] + SCB F32 [out] + weight_format U8 scalar.
- FP8: `weight` F8_E4M3 + weight_scale (+ input_scale), or 128x128 blocks with weight_scale_inv F32.
- MXFP4 (gpt-oss): `*_blocks` U8 [..., n_blocks, 16] (32 E2M1 values per block) + `*_scales` U8 E8M0.
- NVFP4: `weight` U8 (2 per byte) + weight_scale F8_E4M3 per 16 + weight_global_scale / weight_scale_2 / input_*.
- GGUF block types (Q4_K, IQ2_XS, ...): logical shapes, scales inside the blocks (no side tensors).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .gguf_header import GGML_TYPES
from .safetensors_header import DTYPE_BITS
from .types import Quantization, TensorInfo

# config quant_method -> gpumem method (bitsandbytes and fp8 are refined below).
_DECLARED = {
    "gptq": "gptq", "awq": "awq", "compressed-tensors": "compressed-tensors", "bitsandbytes": "bitsandbytes",
    "fp8": "fp8", "fbgemm_fp8": "fp8", "mxfp4": "mxfp4", "nvfp4": "nvfp4", "modelopt": "modelopt",
}  # fmt: skip
# Methods that only differ in scale granularity or container: no disagreement note between them.
_FAMILY = {"fp8-block": "fp8"}
KNOWN_METHODS = frozenset({"gptq", "awq", "compressed-tensors", "bitsandbytes-4bit", "bitsandbytes-8bit", "fp8",
                           "fp8-block", "mxfp4", "nvfp4", "gguf"})
_BNB4_SIDE = ("absmax", "quant_map", "nested_absmax", "nested_quant_map", "quant_state")
_WEIGHT_SIDE = ("weight_scale", "weight_scale_inv", "weight_scale_2", "weight_zero_point", "weight_g_idx",
                "weight_shape", "weight_global_scale", "input_scale", "input_global_scale", "input_zero_point",
                "output_scale")  # fmt: skip
_ATTENTION_SCALES = ("k_scale", "v_scale", "q_scale", "prob_scale")  # fp8 KV-cache scales
# GGUF block types (Q4_K, IQ2_XS, ...): the shape is logical, the scales live inside each block.
_GGML_BLOCK_TYPES = frozenset(t.name for t in GGML_TYPES.values() if t.block_size > 1)
_FP8 = ("F8_E4M3", "F8_E5M2", "F8_E4M3FNUZ", "F8_E5M2FNUZ")
# transformers model types whose decoder linears have no bias: block -> the config flag that adds one (None: never).
_BIAS_FLAGS: dict[str, dict[str, str | None]] = {
    "llama": {"self_attn": "attention_bias", "mlp": "mlp_bias"},
    "mistral": {"self_attn": None, "mlp": None},
    "mixtral": {"self_attn": None, "mlp": None},
}


@dataclass(frozen=True, slots=True)
class QuantScan:
    """A quantization scan: the summary, the real parameters behind it, and the tensors it accounts for."""

    quantization: Quantization | None
    parameters: int | None  # unpacked parameters of the quantized weights; None when they cannot be known
    claimed: frozenset[str]  # packed weights and side tensors (the generic counter must skip them)
    notes: tuple[str, ...] = ()
    unpacked: Mapping[str, int] = field(default_factory=dict)  # quantized weight -> its real parameters
    side: frozenset[str] = frozenset()  # side-data tensors: memory, not parameters


@dataclass(slots=True)
class _Tally:
    parameters: int = 0
    packed_bytes: int = 0
    side_bytes: int = 0
    side: list[str] = field(default_factory=list)
    bits: dict[int, int] = field(default_factory=lambda: defaultdict(int))  # nominal bits -> parameters
    unpacked: dict[str, int] = field(default_factory=dict)  # quantized weight -> its real parameters
    evidence: set[str] = field(default_factory=set)
    unknown: dict[str, list] = field(default_factory=dict)  # why -> [first tensor affected, how many]
    times: int = 1  # how many modules the one being scanned stands for

    def add_unknown(self, why: str, name: str) -> None:
        entry = self.unknown.setdefault(why, [name, 0])
        entry[1] += self.times

    def unknown_notes(self) -> list[str]:
        """One note per reason (a checkpoint has hundreds of tensors failing the same way)."""
        return [f"{count} tensor(s) {why}, e.g. '{name}': parameter count unknown"
                for why, (name, count) in self.unknown.items()]


def scan_quantization(
    tensors: Sequence[TensorInfo], config: dict | None = None, quantize_config: dict | None = None
) -> QuantScan:
    """Find packed weights and side data, unpack their parameter count, and reconcile with the declared method."""
    modules: dict[str, dict[str, TensorInfo]] = defaultdict(dict)
    for t in tensors:
        module, suffix = module_key(t.name)
        modules[module][suffix] = t
    return scan_modules([(module, parts, 1) for module, parts in modules.items()], config, quantize_config)


def scan_modules(modules: Sequence[tuple[str, Mapping[str, TensorInfo], int]], config: dict | None = None,
                 quantize_config: dict | None = None) -> QuantScan:
    """scan_quantization over tensors grouped by module_key: (module, {suffix: tensor}, n) in order, where the
    module stands for n modules alike (the same suffixes, dtypes and shapes; only layer or expert indices differ:
    DeepSeek-V3's 46k modules are a few dozen such groups). Sums count all n; `claimed`, `unpacked` and `side`
    name the tensors of the module given, which speak for theirs in the other n - 1."""
    qc = _quant_config(config, quantize_config)
    declared = _declared_method(qc)
    tally = _Tally()
    claimed: set[str] = set()
    for module, parts, times in modules:
        tally.times = times
        blocks = [suffix for suffix, t in parts.items() if t.dtype in _GGML_BLOCK_TYPES]
        if blocks:  # GGUF quantized blocks: scales live inside the blocks, nothing else to pair them with
            claimed |= {_gguf(parts[suffix], tally) for suffix in blocks}
            parts = {suffix: t for suffix, t in parts.items() if suffix not in blocks}
        claimed |= _scan_module(module, parts, qc, declared, config or {}, tally)
    if tally.parameters or tally.packed_bytes:  # fp8 KV-cache scales only mean something next to quantized weights
        for _, parts, times in modules:
            tally.times = times
            for suffix, t in parts.items():
                if suffix in _ATTENTION_SCALES and t.name not in claimed:
                    _side(tally, t)
                    claimed.add(t.name)
    method, notes = _reconcile(declared, tally)
    if method is None:
        return QuantScan(None, 0, frozenset(), tuple(notes))
    if not claimed and declared is not None and declared not in KNOWN_METHODS:
        notes.append(f"quantization method '{declared}' is not known to gpumem: parameter count unknown")
        return QuantScan(Quantization(declared, _declared_bits(qc), 0, 0, 0), None, frozenset(), tuple(notes))
    notes += tally.unknown_notes()
    parameters = None if tally.unknown else tally.parameters
    summary = Quantization(method, _nominal_bits(qc, tally), tally.parameters, tally.packed_bytes,
                           tally.side_bytes)
    return QuantScan(summary, parameters, frozenset(claimed), tuple(notes), tally.unpacked, frozenset(tally.side))


def _quant_config(config: dict | None, quantize_config: dict | None) -> dict:
    """The declared quantization settings: config.json's quantization_config, else quantize_config.json."""
    qc = (config or {}).get("quantization_config")
    if isinstance(qc, dict):
        return qc
    if isinstance(quantize_config, dict) and quantize_config:
        # AutoGPTQ's quantize_config.json has no quant_method; AutoAWQ's quant_config.json says "w_bit"/"version".
        method = quantize_config.get("quant_method") or ("awq" if "w_bit" in quantize_config else "gptq")
        return {"quant_method": method, **quantize_config}
    return {}


def _declared_method(qc: dict) -> str | None:
    name = qc.get("quant_method")
    if not isinstance(name, str) or not name:
        return None
    method = _DECLARED.get(name.lower(), name.lower())
    if method == "bitsandbytes":
        four = qc.get("load_in_4bit") or qc.get("_load_in_4bit")
        return "bitsandbytes-4bit" if four else "bitsandbytes-8bit"
    if method == "fp8" and qc.get("weight_block_size"):
        return "fp8-block"
    if method == "modelopt":  # NVIDIA ModelOpt: quant_algo says NVFP4 or FP8
        return "nvfp4" if "FP4" in str(qc.get("quant_algo", "")).upper() else "fp8"
    return method


def _declared_bits(qc: dict) -> int | None:
    """Nominal weight bits the config declares (GPTQ/AWQ `bits`/`w_bit`, compressed-tensors `num_bits`)."""
    for key in ("bits", "w_bit"):
        if _is_bits(qc.get(key)):
            return qc[key]
    groups = qc.get("config_groups")
    if isinstance(groups, dict):
        weights = [g.get("weights") for g in groups.values() if isinstance(g, dict)]
        widths = {w.get("num_bits") for w in weights if isinstance(w, dict) and _is_bits(w.get("num_bits"))}
        if len(widths) == 1:  # several widths would need per-module target matching: left unknown
            return widths.pop()
    return None


def _is_bits(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= 32


def module_key(name: str) -> tuple[str, str]:
    """(module, role suffix) of a tensor name; bitsandbytes' `weight.<state>` stays one suffix, MXFP4's
    `<proj>_blocks` / `<proj>_scales` pair up under `<proj>` as `mx_blocks` / `mx_scales`."""
    head, sep, tail = name.partition(".weight.")
    if sep and tail.split(".")[0] in _BNB4_SIDE:
        return head, "weight." + tail
    module, _, suffix = name.rpartition(".")
    for kind in ("_blocks", "_scales"):
        if suffix.endswith(kind) and len(suffix) > len(kind):
            return f"{module}.{suffix[: -len(kind)]}", "mx" + kind
    return module, suffix


def _gguf(t: TensorInfo, tally: _Tally) -> str:
    """A GGUF quantized block tensor: every logical element is a parameter, nominal bits from the type name."""
    tally.evidence.add("gguf")
    tally.parameters += t.numel * tally.times
    tally.unpacked[t.name] = t.numel
    tally.packed_bytes += t.nbytes * tally.times
    tally.bits[int("".join(c for c in t.dtype.split("_")[0] if c.isdigit()) or 0)] += t.numel * tally.times
    return t.name


def _scan_module(module: str, parts: Mapping[str, TensorInfo], qc: dict, declared: str | None, config: dict,
                 tally: _Tally) -> set[str]:
    """Account for one module's packed weight and side data; return the names it claims."""
    if "qweight" in parts:
        return _packed(parts, "qweight", ("qzeros", "scales", "g_idx"), _gptq_bits(parts, qc),
                       "gptq" if _gptq_layout(parts) else "awq", tally) | _quant_bias(module, parts, config, tally)
    if "weight_packed" in parts:
        bits = _declared_bits(qc) or (4 if parts["weight_packed"].dtype == "U8" else None)
        fp4 = parts.get("weight_scale") is not None and parts["weight_scale"].dtype in _FP8
        return _packed(parts, "weight_packed", _WEIGHT_SIDE, bits, "nvfp4" if fp4 else "compressed-tensors", tally)
    if "mx_blocks" in parts and parts["mx_blocks"].dtype == "U8":
        return _packed(parts, "mx_blocks", ("mx_scales",), 4, "mxfp4", tally)
    weight = parts.get("weight")
    if weight is None:
        return set()
    bnb4 = tuple(s for s in parts if s.startswith("weight."))
    if weight.dtype == "U8" and (bnb4 or declared == "bitsandbytes-4bit"):
        return _packed(parts, "weight", bnb4, 4, "bitsandbytes-4bit", tally)
    scale = parts.get("weight_scale")
    if weight.dtype == "U8" and scale is not None and scale.dtype in _FP8:
        return _packed(parts, "weight", _WEIGHT_SIDE, 4, "nvfp4", tally)
    if weight.dtype == "I8" and "SCB" in parts:
        return _packed(parts, "weight", ("SCB", "weight_format"), 8, "bitsandbytes-8bit", tally)
    if weight.dtype == "I8" and scale is not None:
        return _packed(parts, "weight", _WEIGHT_SIDE, 8, "compressed-tensors", tally)
    if weight.dtype in _FP8:
        return _packed(parts, "weight", _WEIGHT_SIDE, 8, "fp8-block" if "weight_scale_inv" in parts else "fp8", tally)
    if weight.dtype == "U8" and declared is not None:
        tally.add_unknown(f"stored U8 under '{declared}', whose packing is unknown", weight.name)
        return {weight.name}
    return set()


def _packed(parts: Mapping[str, TensorInfo], key: str, side_keys: tuple[str, ...], bits: int | None, evidence: str,
            tally: _Tally) -> set[str]:
    """Record a packed weight of `bits`-bit values plus its side tensors."""
    weight = parts[key]
    tally.evidence.add(evidence)
    tally.packed_bytes += weight.nbytes * tally.times
    container = DTYPE_BITS.get(weight.dtype)
    stored_bits = weight.numel * container if container else None
    if bits is None or bits <= 0 or stored_bits is None or stored_bits % bits:
        why = "bits unknown" if not bits or bits <= 0 else f"{weight.dtype} does not hold whole {bits}-bit values"
        tally.add_unknown(f"packed as {evidence} with {why}", weight.name)
    else:
        tally.parameters += stored_bits // bits * tally.times
        tally.unpacked[weight.name] = stored_bits // bits
        tally.bits[bits] += stored_bits // bits * tally.times
    names = {weight.name}
    for side_key in side_keys:
        if side_key in parts:
            _side(tally, parts[side_key])
            names.add(parts[side_key].name)
    return names


def _side(tally: _Tally, tensor: TensorInfo) -> None:
    tally.side_bytes += tensor.nbytes * tally.times
    tally.side.append(tensor.name)


def _gptq_layout(parts: Mapping[str, TensorInfo]) -> bool:
    """GPTQ packs the input axis (qweight keeps `out` columns, as scales do); AWQ packs the output axis."""
    scales = parts.get("scales")
    if scales is None or not scales.shape or not parts["qweight"].shape:
        return "g_idx" in parts
    return parts["qweight"].shape[-1] == scales.shape[-1]


def _gptq_bits(parts: Mapping[str, TensorInfo], qc: dict) -> int | None:
    """Declared bits, else from shapes: qzeros packs `out` at the same width in both GPTQ and AWQ."""
    declared = _declared_bits(qc)
    if declared:
        return declared
    qzeros, scales = parts.get("qzeros"), parts.get("scales")
    if qzeros is not None and scales is not None and qzeros.shape and scales.shape and scales.shape[-1]:
        bits, rest = divmod(qzeros.shape[-1] * 32, scales.shape[-1])
        return bits if not rest else None
    g_idx, qweight = parts.get("g_idx"), parts["qweight"]
    if g_idx is not None and g_idx.shape and g_idx.shape[0] and qweight.shape:
        bits, rest = divmod(qweight.shape[0] * 32, g_idx.shape[0])
        return bits if not rest else None
    return None


def _quant_bias(module: str, parts: Mapping[str, TensorInfo], config: dict, tally: _Tally) -> set[str]:
    """Zero `bias` the GPTQ packer adds to every linear of a bias-less architecture: side data, not parameters.

    AutoGPTQ's QuantLinear registers `bias` unconditionally in older releases, so TheBloke's Llama-2
    checkpoints store an F16 zero vector per linear; transformers' Llama has none (attention_bias / mlp_bias).
    """
    bias = parts.get("bias")
    flags = _BIAS_FLAGS.get(str(config.get("model_type", "")))
    if bias is None or flags is None:
        return set()
    for block, flag in flags.items():
        if f".{block}." in f".{module}." and not (flag and config.get(flag)):
            _side(tally, bias)
            return {bias.name}
    return set()


def _reconcile(declared: str | None, tally: _Tally) -> tuple[str | None, list[str]]:
    """Pick the method: the config's declared one first, tensor evidence second; note disagreement."""
    evidence = sorted(tally.evidence)
    if declared is None:
        return "+".join(evidence) or None, []
    if not evidence:
        quiet = declared not in KNOWN_METHODS  # the unknown-method note is added by the caller
        return declared, [] if quiet else [f"config declares '{declared}' but no tensor is stored quantized"]
    if declared not in KNOWN_METHODS:
        method = "+".join(evidence)
        return method, [f"config declares unknown quantization '{declared}'; tensors look like {method}"]
    family = _FAMILY.get(declared, declared)
    if declared == "compressed-tensors" or all(_FAMILY.get(e, e) == family for e in evidence):
        # compressed-tensors is a container: its int/fp8/nvfp4 tensors all agree with it.
        refined = evidence[0] if len(evidence) == 1 and declared in ("fp8", "fp8-block") else declared
        return refined, []
    return declared, [f"config declares '{declared}' but the tensors look like {', '.join(evidence)}"]


def _nominal_bits(qc: dict, tally: _Tally) -> int | None:
    """The declared bits when given, else the width holding most quantized parameters."""
    declared = _declared_bits(qc)
    if declared:
        return declared
    return max(tally.bits, key=tally.bits.__getitem__) if tally.bits else None

