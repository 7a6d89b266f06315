"""The GPU catalog (package data gpus.toml), name matching, and `gpumem fit`'s rows.

`fit_options` tries one GPU type at 1, 2, 4 and 8 GPUs with tensor parallel = count (skipping TP sizes the
model's heads cannot split over) at each load width, against the budget the engine allows (engines/). Ranked
deployment plans over the whole catalog (TP x PP x nodes, commands, speed, price) are plans.py's.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..constants import GB
from ..errors import UsageError
from ..model.types import ModelSummary
from .engines import MIB, GpuTarget
from .memory import ServingOptions, capacity, check_tp, estimate_serving

if TYPE_CHECKING:  # annotations only: `gpumem calc` reads no config
    from ..model.architecture import Architecture

GPU_COUNTS = (1, 2, 4, 8)
# Package data beside this module (a plain path: importlib.resources costs start-up time for nothing here).
CATALOG_FILE = Path(__file__).parent.parent / "data" / "gpus.toml"


@dataclass(frozen=True, slots=True)
class Gpu:
    """One GPU type of the catalog."""

    name: str
    aliases: tuple[str, ...]
    vendor: str
    memory_type: str
    marketed_gb: float
    usable_mib: int
    bandwidth_gbps: float
    bf16_tflops: float | None
    fp8: bool
    fp4: bool
    interconnect: str
    derived: bool = False  # usable memory derived from the marketed figure (no reported total known)
    note: str = ""
    gpus_per_node: int = 8  # an HGX/DGX/MI300X/Gaudi server, or an 8-card PCIe box; 1 for superchips and Macs
    cuda_total_mib: int | None = None  # torch.cuda.mem_get_info()[1], where a log or a measurement gives it
    cuda_total_source: str = ""

    @property
    def usable_bytes(self) -> int:
        """Memory CUDA lets a process see, in bytes: the CUDA-visible total where known, else the driver's."""
        return (self.cuda_total_mib or self.usable_mib) * MIB

    @property
    def target(self) -> GpuTarget:
        """This GPU as engines see it: the CUDA-visible total, and nvidia-smi's (SGLang sizes its default
        --mem-fraction-static on that one). Every plan, fit row and report breakdown takes its GPU from here."""
        return GpuTarget(self.name, self.usable_bytes, self.usable_mib * MIB)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {"name": self.name, "aliases": list(self.aliases), "vendor": self.vendor,
                "memory_type": self.memory_type, "marketed_gb": self.marketed_gb, "usable_mib": self.usable_mib,
                "bandwidth_gbps": self.bandwidth_gbps, "bf16_tflops": self.bf16_tflops, "fp8": self.fp8,
                "fp4": self.fp4, "interconnect": self.interconnect, "gpus_per_node": self.gpus_per_node, "cuda_total_mib": self.cuda_total_mib,
                "cuda_total_source": self.cuda_total_source,
                "derived": self.derived, "note": self.note}


@dataclass(frozen=True, slots=True)
class Recommendation:
    """How many GPUs of one type serve the model, with which TP, and what is left."""

    gpu: str
    count: int
    tp: int
    fits: bool
    headroom_gb: float  # per GPU: budget minus the per-GPU total (negative when it does not fit)
    max_concurrency: int  # sequences of --context tokens that fit at once
    per_gpu_total_bytes: int
    budget_bytes: int
    kv_pool_bytes: int
    largest_context: int | None = None
    notes: tuple[str, ...] = field(default=())
    per_gpu: dict[str, int] = field(default_factory=dict)  # the plan's breakdown (ServingEstimate "per_gpu")
    kv_cache_tokens: int = 0  # vLLM's "GPU KV cache size: N tokens"
    concurrency_ratio: float = 0.0  # vLLM's "Maximum concurrency for C tokens per request: X.XXx"

    def to_dict(self) -> dict[str, Any]:
        """{"gpu", "count", "tp", "per_gpu", "kv_pool_bytes", "kv_cache_tokens", "max_concurrency", ...}.

        `max_concurrency` is the float vLLM prints (tokens / context) where the engine has a paged pool, else
        the whole sequences that fit; `max_sequences` is always the whole sequences.
        """
        return {"gpu": self.gpu, "count": self.count, "tp": self.tp, "headroom_gb": round(self.headroom_gb, 2),
                "max_concurrency": round(self.concurrency_ratio, 2) if self.concurrency_ratio else self.max_concurrency,
                "max_sequences": self.max_concurrency, "fits": self.fits, "per_gpu": dict(self.per_gpu),
                "per_gpu_total_bytes": self.per_gpu_total_bytes, "budget_bytes": self.budget_bytes,
                "kv_pool_bytes": self.kv_pool_bytes, "kv_cache_tokens": self.kv_cache_tokens,
                "largest_context": self.largest_context, "notes": list(self.notes)}


def _key(text: str) -> str:
    """Case- and punctuation-insensitive form of a GPU name."""
    return re.sub(r"[^a-z0-9]", "", text.lower())


# What nvidia-smi / torch / rocm-smi put before the model ("NVIDIA GeForce RTX 4090", "Tesla T4",
# "AMD Instinct MI300X"): dropped so their names match the catalog's.
_BRAND = re.compile(r"^(nvidia|amd|intel|habana)?(geforce|tesla|instinct|quadro)?")


def metal_working_set_bytes(ram_bytes: int) -> int:
    """Metal's recommendedMaxWorkingSetSize on Apple Silicon: two thirds of RAM up to 32 GiB, three quarters
    above (the GPU budget llama.cpp's Metal backend reports and ollama schedules against).

    Logged values: 16 GiB -> 10,922.67 MiB and 32 GiB -> 21,845.34 MiB (2/3; llama-cpp-python #687,
    ollama #434); 64 GiB -> 49,152 MiB and 96 GiB -> 73,728 MiB (3/4; llama.cpp #1870, #3213). macOS 26
    reports more on some machines (an M5 Max 128 GB: 107.52 GiB, antirez/ds4 #893); `sudo sysctl
    iogpu.wired_limit_mb=...` raises it.
    """
    gib = 2**30
    return ram_bytes * 2 // 3 if ram_bytes <= 32 * gib else ram_bytes * 3 // 4


def _usable_mib(entry: dict[str, Any]) -> int:
    """A catalog entry's usable memory: its own figure, or for a Mac (no figure given) Metal's working set of its
    RAM (the marketed GB of a Mac are GiB of RAM)."""
    if "usable_mib" not in entry and entry["vendor"] == "Apple":
        return metal_working_set_bytes(int(entry["marketed_gb"] * 2**30)) // MIB
    return entry["usable_mib"]


@cache
def load_catalog() -> tuple[Gpu, ...]:
    """Every GPU of the packaged gpus.toml, in file order."""
    data = tomllib.loads(CATALOG_FILE.read_text(encoding="utf-8"))
    return tuple(Gpu(name=g["name"], aliases=tuple(g.get("aliases", ())), vendor=g["vendor"],
                     memory_type=g["memory_type"], marketed_gb=g["marketed_gb"], usable_mib=_usable_mib(g),
                     bandwidth_gbps=g["bandwidth_gbps"], bf16_tflops=g.get("bf16_tflops"), fp8=g["fp8"],
                     fp4=g["fp4"], interconnect=g["interconnect"], derived=g.get("derived", False),
                     note=g.get("note", ""), gpus_per_node=g.get("gpus_per_node", 8),
                     cuda_total_mib=g.get("cuda_total_mib"), cuda_total_source=g.get("cuda_total_source", ""))
                 for g in data["gpu"])


@cache
def _catalog_names() -> dict[str, Gpu]:
    """The catalog's names and aliases, matched as `_key` writes them (made once, as the catalog is read once:
    prices and --gpu names look up dozens)."""
    names: dict[str, Gpu] = {}
    for gpu in load_catalog():
        for label in (gpu.name, *gpu.aliases):
            names.setdefault(_key(label), gpu)
    return names


def find_gpu(name: str) -> Gpu:
    """The catalog GPU a name or alias means; UsageError listing close matches when none does."""
    names = _catalog_names()
    wanted = _key(name)
    for candidate in (wanted, _BRAND.sub("", wanted)):
        if candidate in names:
            return names[candidate]
    import difflib  # only on this error path

    close = difflib.get_close_matches(wanted, list(names), n=5, cutoff=0.5)
    suggestions = list(dict.fromkeys(names[c].name for c in close))
    guess = f"; did you mean: {', '.join(suggestions)}?" if suggestions else ""
    raise UsageError(f"unknown GPU {name!r}{guess}", hint="load_catalog() lists every GPU and its aliases",
                     hint_options=("load_catalog()",))


def tp_fits_heads(arch: Architecture | None, tp: int) -> bool:
    """Whether TP `tp` splits the model's attention (and KV) heads evenly (check_tp says why not)."""
    try:
        check_tp(arch, tp)
    except UsageError:
        return False
    return True


def _counts(arch: Architecture | None, counts: Sequence[int]) -> list[int]:
    """The GPU counts (= TP sizes) the model's heads can split over."""
    return [n for n in counts if tp_fits_heads(arch, n)]


def _try(gpu: Gpu, n: int, summary: ModelSummary, arch: Architecture | None, options: ServingOptions,
         bits: float | None, loaded: ModelSummary) -> Recommendation:
    """n GPUs of one type at TP n: the breakdown with the engine's defaults for that GPU (vLLM's differ by class)."""
    opts = replace(options, tp=n, gpu=gpu.target)
    estimate = estimate_serving(summary, arch, opts, bits, loaded=loaded)
    cap = capacity(estimate, arch, opts, gpu.usable_bytes)
    total = estimate.total_bytes
    in_budget = total - cap.outside_budget_bytes  # vLLM holds its CUDA context and graphs beside the budget
    notes = (f"{gpu.name}: usable memory derived from the marketed figure",) if gpu.derived else ()
    return Recommendation(gpu=gpu.name, count=n, tp=n, fits=in_budget <= cap.budget_bytes and total <= gpu.usable_bytes,
                          headroom_gb=(cap.budget_bytes - in_budget) / GB, max_concurrency=cap.max_concurrency,
                          per_gpu_total_bytes=total, budget_bytes=cap.budget_bytes, kv_pool_bytes=cap.kv_pool_bytes,
                          largest_context=cap.largest_context, notes=notes + estimate.notes,
                          per_gpu=estimate.to_dict()["per_gpu"], kv_cache_tokens=cap.kv_cache_tokens,
                          concurrency_ratio=cap.concurrency_ratio if opts.engine_model.paged_kv else 0.0)


def fit_options(summary: ModelSummary, arch: Architecture | None, options: ServingOptions, gpu: Gpu,
                bit_widths: Sequence[float | None],
                counts: Sequence[int] = GPU_COUNTS) -> list[tuple[float | None, Recommendation]]:
    """`gpumem fit`: for each load width (None = as stored) and GPU count, whether the model fits `gpu`."""
    rows = []
    for bits in bit_widths:
        loaded = options.engine_model.loaded_summary(summary, arch, bits)  # once per width, not per GPU count
        rows += [(bits, _try(gpu, n, summary, arch, options, bits, loaded)) for n in _counts(arch, counts)]
    return rows
