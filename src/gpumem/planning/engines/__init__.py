"""The engine table: what each serving engine lets a model use on a GPU, one frozen object per engine.

The memory model (memory.py) and the recommender ask the engine named by `ServingOptions.engine`; nothing
outside this package branches on an engine's name. The CLI's `--engine` choices are `ENGINES`' keys.

How to add an engine (one module, one registry line):
1. Write `engines/<name>.py` with a frozen dataclass of the engine's constants for ONE version, subclassing
   `EngineConstants` (field names as the engine names its settings: `gpu_memory_utilization`,
   `mem_fraction_static`, `n_ubatch`, ...), and a frozen subclass of `Engine` overriding what differs from
   the defaults below: `budget`, `overhead`, `activation_peak`, `sliding_window_tokens`, `max_sequences`,
   `command`, `loaded_summary` / `loaded_weights` when it holds the checkpoint otherwise than stored,
   `plan_command` / `report_breakdown` when a plan's start line or the report's breakdown depend on the GPU,
   `across_nodes` / `launch_across_nodes` when it starts one model over several machines,
   `without_pipeline_parallel` when some versions have no pipeline stages (plans then offer none), `gpu_class`
   when the breakdown reads less of the plan's GPU than all of it (plans then share it). Every byte figure is
   per GPU. Cite where each constant comes from (a log, the engine's source).
2. Give it `versions`: a mapping version -> constants, NEWEST FIRST (the first one is the default when
   `ServingOptions.engine_version` is None), `vendors` (catalog vendor names it runs on: "NVIDIA", "AMD",
   "Intel", "Apple") and `formats` (the checkpoint formats it serves: "safetensors", "gguf", "pytorch-bin").
3. Register it in `_REGISTRY` below (name -> module and instance). CLI choices, option validation and the docs
   follow.

How to add a version of an existing engine: add an entry to its `versions` mapping (newest first), built with
`dataclasses.replace(previous_constants, version="X.Y.Z", <what changed>=...)` so each version states only
what changed. A user's "0.11.2" matches a modelled "0.11" (the longest modelled prefix wins).

Settings a user may override live on `ServingOptions` under the engine's own names, with None meaning "this
version's default"; read them with `engine.setting(options, "name")`, never from the options directly.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from importlib import import_module
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from ...errors import UsageError

if TYPE_CHECKING:
    from ...model.adapters import LoraServing
    from ...model.architecture import Architecture
    from ...model.types import ModelSummary
    from ..memory import ServingEstimate, ServingOptions
    from ..plans import Plan

MIB = 2**20


@dataclass(frozen=True)
class LoraSlots:
    """The LoRA slots an engine preallocates for a set of adapters (vLLM's: `--max-loras` slots of rank
    `--max-lora-rank` on every wrapped linear) and the GPU memory they take."""

    max_loras: int
    max_lora_rank: int
    slot_bytes_per_gpu: int  # all slots of every wrapped linear, per GPU
    wrapped_modules: int

    @property
    def max_cpu_loras(self) -> int:
        """Adapters cached in host memory: vLLM's default --max-cpu-loras, = --max-loras (no GPU memory)."""
        return self.max_loras

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {"max_loras": self.max_loras, "max_lora_rank": self.max_lora_rank,
                "max_cpu_loras": self.max_cpu_loras, "slot_bytes_per_gpu": self.slot_bytes_per_gpu,
                "wrapped_modules": self.wrapped_modules}


@dataclass(frozen=True, slots=True)
class EngineConstants:
    """What every engine's per-version constants hold: the version, and what any CUDA process pays per GPU."""

    version: str
    # CUDA context + torch, measured on an H200 with torch 2.11 (fixtures/measurements, `context_overhead_bytes`).
    cuda_context_bytes: int = 552_402_944
    # NCCL buffers once TP > 1: hundreds of MiB to 2 GiB in practice; 512 MiB is the middle.
    nccl_bytes: int = 512 * MIB


C = TypeVar("C", bound=EngineConstants)


@dataclass(frozen=True, slots=True)
class GpuTarget:
    """The GPU a plan runs on, as engines see it: its name and the total CUDA reports (`mem_get_info`); a catalog
    GPU's is `Gpu.target`."""

    name: str
    total_bytes: int
    driver_total_bytes: int | None = None  # nvidia-smi's total (SGLang sizes its default fraction on it)


class Placement:
    """What an engine decided placing a model on one GPU type (llama.cpp's `Launch`: the -ngl or --n-cpu-moe it
    starts with): kept on the plan, so that `report_breakdown` reuses it rather than deciding it again. An engine
    with such a decision subclasses it."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class PlanStart:
    """How a plan starts: its command line (None: the engine cannot start this shape), what the plan notes about
    it, and what the engine decided placing the model on the plan's GPU type (None: nothing)."""

    command: str | None
    notes: tuple[str, ...] = ()
    placement: Placement | None = None


@dataclass(frozen=True)
class Engine(Generic[C]):
    """One serving engine: its name, modelled versions (newest first), where it runs and what it loads."""

    name: str
    label: str  # as the engine spells itself in prose ("vLLM")
    versions: Mapping[str, C]
    vendors: frozenset[str]
    formats: frozenset[str]
    kv_dtypes: tuple[str, ...] = ("auto", "bf16", "fp16", "fp8")  # --kv-dtype values the engine takes
    paged_kv: bool = False  # a preallocated, paged KV pool (reports tokens and a fractional concurrency)
    # Activations sized outside the budget (SGLang: they live beside the static fraction, not in it).
    activations_outside_budget = False
    # What `budget` is called where the report draws it (default: the GPU's usable memory, all of it).
    budget_label = "usable memory"
    # Whole layers per GPU (llama.cpp's -sm layer) rather than tensor and pipeline parallel.
    splits_layers = False
    # What a MoE model's plan on several GPUs notes about placing whole experts per GPU (None: nothing).
    expert_parallel_note: ClassVar[str | None] = None
    # How the engine runs one model over several machines, in its words (None: it does not, and no plan spans
    # nodes). Plans across nodes are tensor parallel inside each node and pipeline parallel across them, so a
    # version without pipeline parallel (`without_pipeline_parallel`) gets none either.
    across_nodes: ClassVar[str | None] = None
    # What a plan across nodes notes about starting it, and how the report titles its commands (NODE0_IP: node 0).
    start_across_nodes: ClassVar[str] = ""
    node_commands_title: ClassVar[str] = ""

    @property
    def newest(self) -> str:
        """The default version: the newest one modelled."""
        return next(iter(self.versions))

    @cached_property
    def _resolved(self) -> dict[str | None, str]:
        """Versions asked -> the modelled one each means."""
        return {}

    def resolve_version(self, version: str | None) -> str:
        """The modelled version a requested one means (None = newest); UsageError when none matches."""
        resolved = self._resolved.get(version)
        if resolved is not None:
            return resolved
        if version is None:
            resolved = self.newest
        else:
            wanted = version.strip().removeprefix("v")
            matches = [v for v in self.versions if wanted == v or wanted.startswith(v + ".")]
            if not matches:
                raise UsageError(f"{self.label} version {version!r} is not modelled; modelled versions: "
                                 f"{', '.join(self.versions)}")
            resolved = max(matches, key=len)
        self._resolved[version] = resolved
        return resolved

    def constants(self, options: ServingOptions) -> C:
        """The constants of the version `options` asks for."""
        return self.versions[self.resolve_version(options.engine_version)]

    def setting(self, options: ServingOptions, name: str) -> Any:
        """An engine setting: the user's value on `options`, else this version's default."""
        value = getattr(options, name)
        return getattr(self.constants(options), name) if value is None else value

    def budget(self, usable_bytes: int, options: ServingOptions) -> int:
        """Bytes of a GPU with `usable_bytes` that weights, KV pool, activations and overhead may use."""
        return usable_bytes

    def gpu_class(self, gpu: GpuTarget) -> Hashable:
        """What of a plan's GPU the per-GPU breakdown (`memory.estimate_serving`, `options.gpu` = `gpu`) reads: the
        planner sizes each layout once per class and GPU types of one class share it. Default: the GPU itself
        (nothing shared). The budget and the start line may read more of the GPU: they are not shared."""
        return gpu

    def shape_words(self, tp: int, pp: int) -> str:
        """A plan's parallel shape as the engine words it."""
        return f"TP {tp}" + (f" × PP {pp}" if pp > 1 else "")

    def without_pipeline_parallel(self, options: ServingOptions) -> str | None:
        """Why the version `options` asks for cannot run pipeline stages, in the engine's words (None: it can). Plans
        then offer no TP x PP shape and no shape across nodes."""
        return None

    def overhead(self, options: ServingOptions) -> int:
        """Runtime memory per GPU that is neither weights, KV nor activations, at TP `options.tp`."""
        c = self.constants(options)
        return c.cuda_context_bytes + (c.nccl_bytes if options.tp > 1 else 0)

    def lora_weights(self, lora: LoraServing, tp: int) -> int:
        """Bytes served LoRA adapters add to one GPU (default: each adapter as PEFT loads it, upcast to fp32)."""
        return -(-4 * lora.adapter_parameters // tp)

    def lora_slots(self, lora: LoraServing, tp: int) -> LoraSlots | None:
        """The LoRA slots the engine preallocates for these adapters, for the report (None: it has none)."""
        return None

    def quantize_on_load(self, bits: float) -> str | None:
        """How to have the engine quantize a 16-bit checkpoint to `bits` as it loads it (None: it cannot)."""
        return None

    def lora_note(self) -> str | None:
        """What the report says about how this engine holds adapters (None: nothing to say)."""
        return None

    def loaded_summary(self, summary: ModelSummary, arch: Architecture | None,
                       bits: float | None = None) -> ModelSummary:
        """The checkpoint's classes as the engine loads them, whatever the layout (default: as stored). The planner
        derives it once per model and load width, then sizes every layout from it (`loaded_weights`)."""
        return summary

    def loaded_weights(self, loaded: ModelSummary, arch: Architecture | None, options: ServingOptions,
                       bits: float | None = None) -> int:
        """Weight bytes one GPU holds at `options`' layout, from `loaded_summary(summary, arch, bits)`."""
        from ..memory import weights_per_gpu

        return weights_per_gpu(loaded, options.tp, bits)

    def overhead_outside_budget(self, options: ServingOptions) -> int:
        """The part of `overhead` the engine holds on top of its budget (0: all of it is inside)."""
        return 0

    def kv_cache_tokens(self, pool_bytes: int, bytes_per_token: int, groups: int = 1) -> int:
        """Tokens a KV pool of `pool_bytes` holds at `bytes_per_token` (summed over layers) per GPU."""
        return pool_bytes // bytes_per_token if bytes_per_token > 0 and pool_bytes > 0 else 0

    def activation_peak(self, arch: Architecture, options: ServingOptions, context: int) -> tuple[int, int]:
        """(activation peak per GPU, what one more concurrent sequence of `context` tokens adds to it)."""
        raise NotImplementedError

    def sliding_window_tokens(self, window: int, context: int, options: ServingOptions) -> int:
        """Tokens a layer with a `window`-token sliding window keeps for one sequence of `context` tokens."""
        return min(context, window)

    def max_sequences(self, options: ServingOptions) -> int:
        """The most sequences the engine runs at once (bounds a model without KV cache, e.g. an encoder)."""
        return int(self.setting(options, "max_num_seqs"))

    def context_too_long_note(self, context: int, kv_tokens: int, largest_context: int) -> str:
        """What a plan notes when one sequence of `context` tokens needs more KV cache than its pool's `kv_tokens`."""
        return (f"one sequence of {context:,} tokens needs more KV cache than the pool holds ({kv_tokens:,} tokens): "
                f"the largest context that fits is {largest_context:,} tokens")

    def command(self, repo_id: str, options: ServingOptions, gpus: int) -> str | None:
        """The command line that starts this engine serving `repo_id` on `gpus` GPUs (None: no such command)."""
        return None

    def launch_across_nodes(self, command: str, options: ServingOptions, nodes: int) -> tuple[str, tuple[str, ...]]:
        """A plan over `nodes` machines whose launch line on one machine is `command`: (the plan's command, what the
        nodes run; the report lists these, then the command where it is not among them). Only called on an engine
        with `across_nodes`."""
        raise NotImplementedError

    def plan_command(self, repo_id: str, options: ServingOptions, gpus: int, estimate: ServingEstimate,
                     gpu_usable_bytes: int, gpu_bandwidth_gbps: float, *, file: str | None = None,
                     local: bool = False) -> PlanStart:
        """How a plan on `gpus` GPUs of one type starts, given its breakdown `estimate`; `file` is the GGUF file to
        start (`local`: a path on this machine). Default: `command`."""
        return PlanStart(self.command(repo_id, options, gpus))

    def report_breakdown(self, plan: Plan, options: ServingOptions, gpu_named: bool) -> ServingEstimate:
        """The breakdown a report shows: its first `plan`'s estimate, on that plan's GPU when the user named the GPUs
        (`gpu_named`). Default: the estimate as it is."""
        return plan.estimate

    def serving_estimate(self, summary: ModelSummary, arch: Architecture, options: ServingOptions,
                         bits: float | None = None) -> ServingEstimate | None:
        """The whole per-GPU breakdown when the engine sizes it its own way (None: memory.py's generic one);
        `bits`: every weight re-weighed at that width (the --bits what-if)."""
        return None


# name -> (module in this package, the instance in it). Names are known without importing an engine module,
# so the CLI's --engine choices cost nothing at start-up; an engine's module loads on first use.
_REGISTRY = {"vllm": ("vllm", "VLLM"), "sglang": ("sglang", "SGLANG"), "transformers": ("transformers", "TRANSFORMERS"),
             "llama.cpp": ("llamacpp", "LLAMACPP"), "ollama": ("llamacpp", "OLLAMA")}


class _Registry(Mapping[str, Engine[Any]]):
    """The engines by name, each imported when first looked up."""

    def __init__(self) -> None:
        self._loaded: dict[str, Engine[Any]] = {}  # plans look engines up a thousand times per report

    def __getitem__(self, name: str) -> Engine[Any]:
        engine = self._loaded.get(name)
        if engine is None:
            module, instance = _REGISTRY[name]
            engine = self._loaded[name] = getattr(import_module(f"{__name__}.{module}"), instance)
        return engine

    def __iter__(self) -> Iterator[str]:
        return iter(_REGISTRY)

    def __len__(self) -> int:
        return len(_REGISTRY)


ENGINES: Mapping[str, Engine[Any]] = _Registry()
DEFAULT_ENGINE = "vllm"
# The engine a checkpoint format is served with when none is asked for.
DEFAULT_ENGINE_BY_FORMAT = {"gguf": "llama.cpp"}


def get_engine(name: str) -> Engine[Any]:
    """The engine registered under `name`; UsageError naming the known ones otherwise."""
    try:
        return ENGINES[name]
    except KeyError:
        raise UsageError(f"unknown engine {name!r}; known engines: {', '.join(ENGINES)}") from None
