"""What callers choose: how a model is served (`ServingOptions`) and how it is fine-tuned (`TrainingOptions`).

Apart from the memory and training models (memory.py, training.py, which re-export them) so that reading their
defaults, as the CLI's flags do at start-up, loads neither those models nor the model types they need.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from ..constants import ALL_LINEAR
from ..errors import UsageError
from .engines import DEFAULT_ENGINE, DEFAULT_ENGINE_BY_FORMAT, Engine, GpuTarget, get_engine

if TYPE_CHECKING:
    from ..model.adapters import LoraConfig, LoraServing

KV_DTYPE_BYTES = {"auto": 2, "bf16": 2, "fp16": 2, "fp8": 1}


def all_kv_dtypes() -> tuple[str, ...]:
    """Every --kv-dtype some engine takes (an engine not yet chosen may be any of them)."""
    from .engines import ENGINES

    return tuple(dict.fromkeys(name for engine in ENGINES.values() for name in engine.kv_dtypes))


@dataclass(frozen=True, slots=True)
class ServingOptions:
    """How the model is served: engine (and its version), context, concurrency, KV dtype, tensor parallel.

    Engine settings keep the engine's own names; None means "the engine version's default" (see
    `Engine.setting`). A setting another engine does not have is ignored by it.
    """

    engine: str | None = None  # None: the default for the checkpoint's format (engines.DEFAULT_ENGINE_BY_FORMAT)
    context: int = 4096
    concurrency: int = 1
    kv_dtype: str = "auto"
    tp: int = 1
    pp: int = 1  # pipeline stages (plans across nodes); the breakdown is one GPU of the busiest stage
    engine_version: str | None = None  # None: the newest version gpumem models
    gpu_memory_utilization: float | None = None  # vLLM: the budget fraction of the GPU
    max_num_batched_tokens: int | None = None  # vLLM: tokens of one scheduled step (the profile run's prefill)
    max_num_seqs: int | None = None  # vLLM: sequences at once (sizes the profile run's sampler pass)
    lora: LoraServing | None = None  # PEFT adapters served on the model (their weights or vLLM's slots)
    n_batch: int | None = None  # llama.cpp: logical batch (-b)
    n_ubatch: int | None = None  # llama.cpp: physical batch (-ub), the tokens the compute graph is sized for
    flash_attn: str | None = None  # llama.cpp: -fa on|off|auto
    ngl: int | None = None  # llama.cpp: layers on the GPUs (-ngl), the output layer counted; None: all
    tensor_split: tuple[float, ...] | None = None  # llama.cpp: -ts, each GPU's share of the layers (None: equal)
    enforce_eager: bool = False  # vLLM: no CUDA graphs
    mem_fraction_static: float | None = None  # SGLang: weights + KV pool as a fraction of the GPU
    flashinfer_sampler: bool | None = None  # vLLM: VLLM_USE_FLASHINFER_SAMPLER (None: the version's default)
    gpu: GpuTarget | None = None  # the GPU of the plan (engines with per-GPU defaults read it)
    context_asked: bool = True  # False: `context` is a default, capped at the model's maximum without a note

    def __post_init__(self) -> None:
        self.engine_model.resolve_version(self.engine_version)  # unknown engine or version: UsageError
        # No engine named: any engine's kv_dtype is valid. The default engine's are tried first, which spares
        # importing every engine module for the usual values.
        kv_dtypes = self.engine_model.kv_dtypes
        if self.kv_dtype not in kv_dtypes and not self.engine:
            kv_dtypes = all_kv_dtypes()
        if self.kv_dtype not in kv_dtypes:
            raise UsageError(f"kv_dtype must be one of {', '.join(kv_dtypes)} for {self.engine_model.label}, got "
                             f"{self.kv_dtype!r}", option="kv_dtype")
        if self.flash_attn is not None and self.flash_attn not in ("on", "off", "auto"):
            raise UsageError(f"flash_attn must be on, off or auto, got {self.flash_attn!r}", option="flash_attn")
        if self.ngl is not None and self.ngl < 0:
            raise UsageError(f"ngl must be at least 0, got {self.ngl}", option="ngl")
        if self.tensor_split is not None and (len(self.tensor_split) < 2 or min(self.tensor_split) < 0
                                              or not sum(self.tensor_split) > 0):
            raise UsageError(f"tensor_split needs a share per GPU for two GPUs or more (e.g. 3,1), got "
                             f"{','.join(f'{v:g}' for v in self.tensor_split)}", option="tensor_split")
        for name in ("context", "concurrency", "tp", "pp", "max_num_batched_tokens", "max_num_seqs", "n_batch",
                     "n_ubatch"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"{name} must be at least 1, got {value}", option=name)
        if self.mem_fraction_static is not None and not 0 < self.mem_fraction_static <= 1:
            raise UsageError(f"mem_fraction_static must be in (0, 1], got {self.mem_fraction_static}",
                             option="mem_fraction_static")
        if self.gpu_memory_utilization is not None and not 0 < self.gpu_memory_utilization <= 1:
            raise UsageError(f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}",
                             option="gpu_memory_utilization")

    @property
    def engine_model(self) -> Engine:
        """The engine table entry these options name (vLLM when none is named)."""
        return get_engine(self.engine or DEFAULT_ENGINE)

    def for_format(self, fmt: str) -> ServingOptions:
        """These options with the engine named: the asked one, else the format's default (GGUF: llama.cpp)."""
        if self.engine is not None:
            return self
        return replace(self, engine=DEFAULT_ENGINE_BY_FORMAT.get(fmt, DEFAULT_ENGINE))

    @property
    def kv_bytes(self) -> int:
        """Bytes per cached element."""
        return KV_DTYPE_BYTES[self.kv_dtype]

    def laid_out(self, **layout: Any) -> ServingOptions:
        """These options at one plan's layout: some of `tp`, `pp`, `context`, `gpu` and `gpu_memory_utilization`
        changed, the rest as checked when they were made. The planner derives a few of these per GPU type, with
        values it chose within their bounds (TP sizes, the context capped at the model's, a utilization up to its
        maximum); `dataclasses.replace` would check every field again each time (16 us against 6 here, some 50
        times per report)."""
        assert layout.keys() <= _LAYOUT_FIELDS, layout.keys() - _LAYOUT_FIELDS
        laid = object.__new__(ServingOptions)
        for name in _FIELD_NAMES:
            object.__setattr__(laid, name, layout[name] if name in layout else getattr(self, name))
        return laid


_FIELD_NAMES = tuple(f.name for f in fields(ServingOptions))
_LAYOUT_FIELDS = frozenset({"tp", "pp", "context", "gpu", "gpu_memory_utilization"})


TRAINING_METHODS = ("full", "lora", "qlora")
OPTIMIZERS = ("adamw", "adamw-8bit", "paged-adamw-8bit", "adafactor", "sgd")
PRECISIONS = ("bf16", "fp16", "fp32")
ZERO_STAGES = (0, 1, 2, 3)

@dataclass(frozen=True)
class TrainingOptions:
    """How the model is fine-tuned."""

    method: str = "lora"
    rank: int = 16
    target_modules: tuple[str, ...] | str = ALL_LINEAR
    optimizer: str = "adamw"
    precision: str = "bf16"
    master_weights: bool = True  # mixed precision keeps fp32 master weights (ignored for fp32)
    batch: int = 1
    seq_len: int = 2048
    gradient_checkpointing: bool = True
    zero: int = 3  # ZeRO stage across a plan's GPUs; 3 = FSDP full shard
    double_quant: bool = True  # QLoRA's nested absmax quantization

    def __post_init__(self) -> None:
        for name, value, allowed in (("method", self.method, TRAINING_METHODS), ("optimizer", self.optimizer, OPTIMIZERS),
                                     ("precision", self.precision, PRECISIONS), ("zero", self.zero, ZERO_STAGES)):
            if value not in allowed:
                raise UsageError(f"{name} must be one of {', '.join(map(str, allowed))}, got {value!r}", option=name)
        for name in ("rank", "batch", "seq_len"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be at least 1, got {getattr(self, name)}", option=name)
        if not self.target_modules:
            raise UsageError("target_modules must name at least one module (or be 'all-linear')",
                             option="target_modules")

    @property
    def mixed_precision(self) -> bool:
        """16-bit weights with an fp32 master copy in the optimizer."""
        return self.precision != "fp32" and self.master_weights

    @property
    def weight_bytes(self) -> int:
        """Bytes of one weight or gradient element."""
        return 4 if self.precision == "fp32" else 2

    def lora_config(self) -> LoraConfig:
        """The PEFT config these options describe (alpha does not change sizes)."""
        from ..model.adapters import LoraConfig

        return LoraConfig(rank=self.rank, alpha=2 * self.rank, target_modules=self.target_modules)

    def to_dict(self) -> dict[str, Any]:
        """The option fields of JSON `training`."""
        targets = self.target_modules if isinstance(self.target_modules, str) else list(self.target_modules)
        lora = self.method != "full"
        return {"method": self.method, "rank": self.rank if lora else None,
                "target_modules": targets if lora else None, "precision": self.precision,
                "master_weights": self.mixed_precision, "optimizer": self.optimizer, "zero": self.zero,
                "batch": self.batch, "seq_len": self.seq_len, "gradient_checkpointing": self.gradient_checkpointing,
                "double_quant": self.double_quant if self.method == "qlora" else None}
