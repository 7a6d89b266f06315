"""Pure: deployment plans. A plan is a GPU type x count (x nodes) with tensor- and pipeline-parallel sizes,
its per-GPU breakdown, the engine's command, decode speed, time to first token and price.

Shapes tried per GPU type, fewest GPUs first: 1, 2, 4, 8 GPUs inside one node (TP = count; when the
attention heads cannot be split that wide, the widest TP that divides them and PP for the rest; an engine
version without pipeline stages, `without_pipeline_parallel`, gets TP alone), then, for an engine that runs one
model over several machines (its `across_nodes`: vLLM and SGLang) in a version with stages, whole nodes, 2 to 8 of
them, with TP = the node's GPUs and PP = nodes — vLLM's advice for multi-node serving
(tensor parallel over NVLink inside a node, pipeline stages across the slower network); the engine words each
node's start line (`launch_across_nodes`). `--tp`, `--pp` and `--nodes` fix the shape; a shape the model, the GPU
or the engine cannot take is an error that says why.

A pipeline stage holds its share of the layers (the largest stage: ceil(layers / PP)) plus the embedding
(first stage) or the head (last stage), whichever is larger; its KV cache is its layers' share. Each plan
takes the first shape whose busiest GPU fits the engine's budget; the vLLM budget fraction
(`--gpu-memory-utilization`) is the engine's default, raised (up to MAX_UTILIZATION) to the smallest value
that holds the asked context x concurrency with KV_MARGIN to spare when the default does not.

Ranking (stated in every listing): plans that fit first; among them those with a price by $/hour, then
those without by fewest GPUs, then least memory left idle. Only GPUs the engine runs on are listed unless
`show_all`; by default at most `limit` plans.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, NamedTuple

from ..constants import GB
from ..errors import UsageError
from ..model.types import Note
from .engines import ENGINES, Placement, get_engine
from .gpus import Gpu, load_catalog, tp_fits_heads
from .memory import Capacity, ServingEstimate, ServingOptions, capacity, check_tp
from .prices import Price, PriceTable
from .throughput import LLAMA_CPP, SERVING, ModelShape, Speed, estimate_speed

if TYPE_CHECKING:  # annotations only: `gpumem calc` reads no config
    from ..model.architecture import Architecture

GIB = 2**30
TP_SIZES = (1, 2, 4, 8, 16)
MAX_NODES = 8
DEFAULT_LIMIT = 8
MAX_UTILIZATION = 0.95  # above this, other processes and CUDA-graph capture run out of room in practice
KV_MARGIN_BYTES = GIB // 2  # spare room when solving --gpu-memory-utilization: 0.5 GiB + 5% of the KV cache
KV_MARGIN_SHARE = 0.05
RANKING = ("plans that fit, cheapest $/hour first where a price is known, then fewest GPUs, "
           "then least memory left idle")


@dataclass(frozen=True, slots=True)
class PlanRequest:
    """What the user fixed: GPU types, TP / PP / nodes, vendors, the whole catalog, prices, list length."""

    gpus: tuple[str, ...] = ()  # catalog names; empty = every GPU the engine runs on
    tp: int | None = None
    pp: int | None = None
    nodes: int | None = None
    vendors: tuple[str, ...] = ()
    show_all: bool = False
    prices: PriceTable | None = None
    limit: int = DEFAULT_LIMIT

    def __post_init__(self) -> None:
        for name in ("tp", "pp", "nodes"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"{name} must be at least 1, got {value}", option=name)
        if self.nodes is not None and self.nodes > MAX_NODES:
            raise UsageError(f"nodes: plans span at most {MAX_NODES} nodes, got {self.nodes}", option="nodes")

    @property
    def shape_fixed(self) -> bool:
        """Whether the user fixed any of TP, PP, nodes."""
        return any(v is not None for v in (self.tp, self.pp, self.nodes))


@dataclass(frozen=True, slots=True)
class ModelFacts:
    """What plans need of a model beyond its per-GPU breakdown."""

    repo_id: str | None  # None: a bare parameter count, no command
    parameters: int | None
    active_parameters: int
    fp8_weights: bool  # prefill can run at the GPU's FP8 rate
    vocab_bytes_at: Callable[[int], int]  # embedding + head bytes on one GPU at a TP size
    file: str | None = None  # the GGUF file llama.cpp and Ollama start (the first part of a split file)
    local: bool = False  # `file` is a path on this machine (gpumem local), not a file of the Hub repo


@dataclass(frozen=True)
class Plan:
    """One way to serve the model: GPU type x count, the parallel shape, its busiest GPU, command, speed, price."""

    gpu: Gpu
    count: int
    nodes: int
    tp: int
    pp: int
    estimate: ServingEstimate  # one GPU of the busiest pipeline stage
    capacity: Capacity
    fits: bool
    gpu_memory_utilization: float | None
    kv_cache_tokens: int
    command: str | None
    node_commands: tuple[str, ...]
    speed: Speed | None
    price: Price | None
    notes: tuple[str, ...] = field(default=())
    placement: Placement | None = None  # what the engine decided placing the model on this GPU type

    @property
    def headroom_bytes(self) -> int:
        """Budget minus what the busiest GPU needs inside it (negative when it does not fit)."""
        return self.capacity.budget_bytes - (self.estimate.total_bytes - self.capacity.outside_budget_bytes)

    @property
    def runs_on_gpu(self) -> bool:
        """Whether the engine runs on this GPU's vendor at all (`--all` lists the GPUs it does not)."""
        return self.gpu.vendor in get_engine(self.estimate.engine).vendors

    @property
    def usd_per_hour(self) -> float | None:
        """All the plan's GPUs for an hour, at the price table's rate."""
        return None if self.price is None else round(self.count * self.price.usd_per_hour, 4)

    @property
    def usd_per_million_tokens(self) -> float | None:
        """$ per million output tokens at the asked concurrency (aggregate decode rate)."""
        if self.usd_per_hour is None or self.speed is None or not self.fits:
            return None
        return round(self.usd_per_hour / (self.speed.aggregate_tokens_per_s * 3600) * 1e6, 4)

    @property
    def _max_concurrency(self) -> float | int:
        """As vLLM prints "Maximum concurrency" (KV tokens / tokens per sequence); whole sequences for engines
        without a paged pool."""
        if get_engine(self.estimate.engine).paged_kv:
            return round(self.capacity.concurrency_ratio, 2)
        return self.capacity.max_concurrency

    def to_dict(self) -> dict[str, Any]:
        """JSON `recommendations[i]` (schema_version 2, docs/json.md)."""
        e = self.estimate
        return {
            "gpu": self.gpu.name, "engine": self.estimate.engine, "count": self.count, "nodes": self.nodes, "tp": self.tp, "pp": self.pp,
            "per_gpu": {"weights_bytes": e.weights_bytes, "kv_cache_bytes": e.kv_cache_bytes,
                        "activation_bytes": e.activation_bytes, "overhead_bytes": e.overhead_bytes,
                        "total_bytes": e.total_bytes},
            "per_gpu_total_bytes": e.total_bytes, "budget_bytes": self.capacity.budget_bytes,
            "outside_budget_bytes": self.capacity.outside_budget_bytes,
            "gpu_memory_utilization": self.gpu_memory_utilization,
            "kv_pool_bytes": self.capacity.kv_pool_bytes, "kv_cache_tokens": self.kv_cache_tokens,
            "max_concurrency": self._max_concurrency, "max_sequences": self.capacity.max_concurrency,
            "largest_context": self.capacity.largest_context,
            "headroom_gb": round(self.headroom_bytes / GB, 2), "fits": self.fits,
            "command": self.command, "node_commands": list(self.node_commands),
            "decode_tokens_per_s": None if self.speed is None else round(self.speed.decode_tokens_per_s, 2),
            "aggregate_tokens_per_s": None if self.speed is None else round(self.speed.aggregate_tokens_per_s, 2),
            "ttft_s": None if self.speed is None or self.speed.ttft_s is None else round(self.speed.ttft_s, 4),
            "speed_basis": None if self.speed is None else self.speed.basis,
            "usd_per_hour": self.usd_per_hour, "usd_per_million_tokens": self.usd_per_million_tokens,
            "price_basis": None if self.price is None else self.price.label,
            "price_source": None if self.price is None else (self.price.source or None),
            "interconnect": self.gpu.interconnect, "runs_on_gpu": self.runs_on_gpu, "notes": list(self.notes),
        }


# --- shapes --------------------------------------------------------------------------------------------

def spans_nodes(gpu: Gpu) -> bool:
    """Whether plans may span nodes of this GPU: datacenter parts (HBM) only. Clusters of GDDR cards with a
    fast fabric between machines are rare to rent, and PCIe-only boxes over Ethernet are too slow for PP."""
    return gpu.memory_type.startswith("HBM") and gpu.gpus_per_node > 1


def _scale_up(gpu: Gpu) -> str:
    return "PCIe" if gpu.interconnect in ("none", "PCIe") else gpu.interconnect


def shapes(gpu: Gpu, arch: Architecture | None, request: PlanRequest,
           options: ServingOptions) -> tuple[list[tuple[int, int]], Note | None]:
    """(TP x PP shapes to try on `gpu` with the engine version `options` names, fewest GPUs first; why there are none).

    An engine that splits the layers over its GPUs itself (llama.cpp's -sm layer, asked as --tp N) gets one shape
    per GPU count inside a node, no heads to divide and no pipeline stages; an engine version without pipeline
    parallel gets TP shapes only; only an engine with `across_nodes` (and pipeline parallel) gets shapes that span
    nodes."""
    engine = options.engine_model
    node = gpu.gpus_per_node
    if engine.splits_layers:
        if request.pp not in (None, 1) or request.nodes not in (None, 1):
            return [], Note(f"{engine.label} splits the layers over the GPUs of one machine", hint="ask for them with tp N",
                            hint_options=("tp",))
        if request.tp is not None and request.tp > node:
            return [], Note(f"{request.tp} GPUs are more than one node of {node} {gpu.name}")
        return [(c, 1) for c in ((request.tp,) if request.tp else (1, 2, 4, 8)) if c <= node], None
    no_stages = engine.without_pipeline_parallel(options)
    across = None if no_stages else engine.across_nodes  # plans across nodes are pipeline stages across them
    if no_stages and (request.pp not in (None, 1) or request.nodes not in (None, 1)):
        refused = "no plan spans nodes" if request.nodes not in (None, 1) else f"it cannot run PP {request.pp}"
        return [], _without_stages(f"{no_stages}: {refused}", options)
    if across is None and request.nodes not in (None, 1):
        engines = " or ".join(name for name, other in ENGINES.items() if other.across_nodes is not None)
        return [], Note(f"{engine.label} runs on one machine: no plan spans nodes",
                        hint=f"engine {engines} runs one model over several machines", hint_options=("engine",))
    layers = arch.num_layers if arch else 1_000_000
    if request.tp is not None:
        if request.tp > node:
            wider = f"TP {request.tp} spans more than one node of {node} {gpu.name}"
            if no_stages:
                return [], _without_stages(f"{wider}: {no_stages}", options)
            if across is None:
                return [], Note(f"{wider}: {engine.label} runs on one machine", hint=f"e.g. tp {node}",
                                hint_options=("tp",))
            return [], Note(f"{wider}: {across}",
                            hint=f"e.g. tp {node} and pp {-(-request.tp // node)}", hint_options=("tp", "pp"))
        check_tp(arch, request.tp)  # a TP the heads cannot split over: the UsageError says why
        tps = [request.tp]
    else:
        tps = [t for t in TP_SIZES if t <= node and tp_fits_heads(arch, t)]
    if request.pp is not None and request.pp > layers:
        return [], Note(f"PP {request.pp} is more pipeline stages than the model's {layers} layers")
    counts = sorted({c for c in (1, 2, 4, 8) if c <= node} |
                    ({node * n for n in range(2, MAX_NODES + 1)} if spans_nodes(gpu) and across is not None
                     else set()))
    found = []
    for count in counts:
        for tp in sorted(tps, reverse=True):  # the widest TP first: PP only for what TP cannot take
            if count % tp or tp > count:
                continue
            pp = count // tp
            if pp > layers or (request.pp is not None and pp != request.pp) or (no_stages and pp > 1):
                continue
            if request.nodes is not None and -(-count // node) != request.nodes:
                continue
            found.append((tp, pp))
            break
    if request.pp is not None and request.tp is not None and not found:
        count = request.tp * request.pp
        if count <= node or (across is not None and count % node == 0):
            found.append((request.tp, request.pp))
    if not found:
        fixed = ", ".join(f"{k} {v}" for k, v in (("TP", request.tp), ("PP", request.pp), ("nodes", request.nodes))
                          if v is not None)
        return [], Note(f"no shape with {fixed} fills whole nodes of {node} {gpu.name}" if fixed
                        else f"the model's heads cannot be split over {gpu.name} nodes")
    return found, None


def _without_stages(text: str, options: ServingOptions) -> Note:
    """A refused shape that needs pipeline stages, with the newest modelled version of the engine that runs them."""
    engine = options.engine_model
    newer = next((v for v in engine.versions
                  if engine.without_pipeline_parallel(replace(options, engine_version=v)) is None), None)
    if newer is None:
        return Note(text)
    return Note(text, hint=f"engine_version {newer} runs pipeline stages", hint_options=("engine_version",))


def stage_estimate(estimate: ServingEstimate, arch: Architecture | None, pp: int, vocab_bytes: int,
                   tied: bool, overhead_bytes: int) -> ServingEstimate:
    """The busiest pipeline stage's GPU, from the TP-only breakdown `estimate` (PP 1: unchanged but overhead)."""
    if pp == 1:
        if overhead_bytes == estimate.overhead_bytes:
            return estimate
        return replace(estimate, overhead_bytes=overhead_bytes)
    layers = arch.num_layers if arch else pp
    share = math.ceil(layers / pp) / layers
    ends = vocab_bytes if tied else vocab_bytes // 2  # first stage: the embedding; last: the head
    body = max(estimate.weights_bytes - vocab_bytes, 0)
    return replace(estimate, pp=pp, weights_bytes=math.ceil(body * share) + ends,
                   kv_cache_bytes=math.ceil(estimate.kv_cache_bytes * share),
                   kv_bytes_per_sequence=math.ceil(estimate.kv_bytes_per_sequence * share),
                   kv_bytes_per_token=math.ceil(estimate.kv_bytes_per_token * share),
                   overhead_bytes=overhead_bytes)


# --- one plan ------------------------------------------------------------------------------------------

def _utilization(engine_options: ServingOptions, gpu: Gpu, estimate: ServingEstimate) -> float | None:
    """The --gpu-memory-utilization of the plan: the user's, else the default raised to what the load needs."""
    engine = engine_options.engine_model
    if not hasattr(engine.constants(engine_options), "gpu_memory_utilization"):
        return None  # the engine has no such knob
    if engine_options.gpu_memory_utilization is not None:
        return engine_options.gpu_memory_utilization
    default = float(engine.setting(engine_options, "gpu_memory_utilization"))
    inside = estimate.total_bytes - engine.overhead_outside_budget(engine_options)
    need = inside + KV_MARGIN_BYTES + KV_MARGIN_SHARE * estimate.kv_cache_bytes
    wanted = math.ceil(need / gpu.usable_bytes * 100) / 100
    return default if wanted <= default else min(wanted, MAX_UTILIZATION)


def _speed(facts: ModelFacts, arch: Architecture | None, gpu: Gpu, tp: int, options: ServingOptions,
           at_tp: ServingEstimate) -> Speed | None:
    if arch is None or arch.is_encoder:
        return None
    moe_layers = arch.num_layers - arch.first_dense_layers if arch.is_moe else 0
    shape = ModelShape(dense_layers=arch.num_layers - moe_layers, moe_layers=moe_layers,
                       attention_width=arch.num_attention_heads * arch.head_dim,
                       parameters=facts.parameters or facts.active_parameters,
                       active_parameters=facts.active_parameters, experts=arch.num_experts,
                       experts_per_token=arch.experts_per_token)
    peak = gpu.bf16_tflops * (2 if facts.fp8_weights and gpu.fp8 else 1) if gpu.bf16_tflops else None
    weights, kv = at_tp.weights_bytes, at_tp.kv_bytes_per_sequence
    constants = SERVING
    if options.engine_model.splits_layers:  # -sm layer: the GPUs run their layers one after another
        constants, weights, kv, tp = LLAMA_CPP, weights * tp, kv * tp, 1
    return estimate_speed(shape, weight_bytes_per_gpu=weights, kv_bytes_per_sequence_per_gpu=kv,
                          batch=options.concurrency, tp=tp, bandwidth_gbps=gpu.bandwidth_gbps, peak_tflops=peak,
                          prompt_tokens=at_tp.context, constants=constants)


class Sized(NamedTuple):
    """One shape on one GPU type, sized: what decides whether it fits. A plan's command, speed and notes are
    worked out only for the shape its GPU type keeps (`plan_on`), not for each shape tried before it."""

    tp: int
    pp: int
    at_tp: ServingEstimate  # the TP-only breakdown the shape was sized from
    estimate: ServingEstimate  # one GPU of the busiest pipeline stage
    options: ServingOptions  # the shape's: TP, PP, the capped context, the GPU and the utilization it runs at
    utilization: float | None
    capacity: Capacity
    fits: bool

    @property
    def gpus(self) -> int:
        return self.tp * self.pp


def size_on(gpu: Gpu, tp: int, pp: int, layout: ServingOptions, at_tp: ServingEstimate, facts: ModelFacts,
            arch: Architecture | None) -> Sized:
    """`tp` x `pp` GPUs of one type, from the TP-only breakdown `at_tp` of one of them at `layout` (TP `tp`, PP 1)."""
    count = tp * pp
    shaped = layout  # the context capped at the model's maximum, as the breakdown capped it
    if pp != 1 or layout.context != at_tp.context:
        shaped = layout.laid_out(pp=pp, context=at_tp.context)
    engine = layout.engine_model
    # NCCL buffers come with any multi-GPU plan: pass the GPU count where the engine asks for TP > 1.
    overhead = engine.overhead(shaped if count == tp else shaped.laid_out(tp=count))
    estimate = stage_estimate(at_tp, arch, pp, facts.vocab_bytes_at(tp) if pp > 1 else 0,
                              bool(arch and arch.tie_word_embeddings), overhead)
    utilization = _utilization(shaped, gpu, estimate)
    if utilization is not None and utilization != engine.setting(shaped, "gpu_memory_utilization"):
        shaped = shaped.laid_out(gpu_memory_utilization=utilization)  # raised above the default
    cap = capacity(estimate, arch, shaped, gpu.usable_bytes)
    in_budget = estimate.total_bytes - cap.outside_budget_bytes  # vLLM holds context and graphs beside its budget
    fits = in_budget <= cap.budget_bytes and estimate.total_bytes <= gpu.usable_bytes
    return Sized(tp, pp, at_tp, estimate, shaped, utilization, cap, fits)


def plan_on(gpu: Gpu, sized: Sized, facts: ModelFacts, arch: Architecture | None, options: ServingOptions,
            price: Price | None, refusals: tuple[str, ...] = ()) -> Plan:
    """The plan of a sized shape of one GPU type: its command, speed and notes (`refusals` last: they make it not
    fit). `options` are the report's."""
    tp, pp, estimate, cap, shaped = sized.tp, sized.pp, sized.estimate, sized.capacity, sized.options
    count = sized.gpus
    nodes = -(-count // gpu.gpus_per_node)
    engine = options.engine_model
    tokens = cap.kv_cache_tokens or (cap.kv_pool_bytes // estimate.kv_bytes_per_token if estimate.kv_bytes_per_token
                                     else 0)
    notes = _plan_notes(gpu, count, nodes, tp, pp, estimate, cap, tokens, arch, options, sized.utilization)
    command: str | None = None
    node_commands: tuple[str, ...] = ()
    placement: Placement | None = None
    if facts.repo_id:
        start = engine.plan_command(facts.repo_id, shaped, count, sized.at_tp, gpu.usable_bytes, gpu.bandwidth_gbps,
                                    file=facts.file, local=facts.local)
        command, placement = start.command, start.placement
        notes += start.notes
        if command and nodes > 1:
            command, node_commands = engine.launch_across_nodes(command, shaped, nodes)
    return Plan(gpu=gpu, count=count, nodes=nodes, tp=tp, pp=pp, estimate=estimate, capacity=cap,
                fits=sized.fits and not refusals, gpu_memory_utilization=sized.utilization, kv_cache_tokens=int(tokens),
                command=command, node_commands=node_commands,
                speed=_speed(facts, arch, gpu, tp, shaped, sized.at_tp), price=price, notes=(*notes, *refusals),
                placement=placement)


def _plan_notes(gpu: Gpu, count: int, nodes: int, tp: int, pp: int, estimate: ServingEstimate, cap: Capacity,
                tokens: int, arch: Architecture | None, options: ServingOptions,
                utilization: float | None) -> list[str]:
    notes = []
    if gpu.derived:
        notes.append(f"{gpu.name}: usable memory derived from the marketed figure")
    if nodes > 1:
        notes.append(f"{nodes} nodes x {gpu.gpus_per_node} {gpu.name}: TP {tp} inside each node over "
                     f"{_scale_up(gpu)}, PP {pp} across nodes over the cluster network (InfiniBand or RoCE); "
                     f"{options.engine_model.start_across_nodes}")
    elif pp > 1:
        notes.append(f"TP {tp} x PP {pp} inside one node: pipeline stages for what tensor parallel does not take")
    expert_parallel = options.engine_model.expert_parallel_note
    if arch is not None and arch.is_moe and count > 1 and expert_parallel:
        notes.append(expert_parallel)
    if utilization is not None and options.gpu_memory_utilization is None:
        default = float(options.engine_model.setting(options, "gpu_memory_utilization"))
        if utilization > default:
            load = (f"{options.concurrency:,} x {estimate.context:,} tokens" if estimate.kv_cache_bytes
                    else "the weights and runtime")
            notes.append(f"--gpu-memory-utilization raised from {default:g} to {utilization:g} to hold {load}")
    if arch is not None and estimate.kv_bytes_per_sequence and cap.max_concurrency == 0 and cap.kv_pool_bytes > 0:
        notes.append(options.engine_model.context_too_long_note(estimate.context, tokens, cap.largest_context or 0))
    elif cap.kv_pool_bytes == 0 and estimate.total_bytes > cap.budget_bytes:
        notes.append(f"weights and runtime need {estimate.non_kv_bytes / GB:.1f} GB per GPU of a "
                     f"{cap.budget_bytes / GB:.1f} GB budget")
    return notes


# --- all plans -----------------------------------------------------------------------------------------

def candidate_gpus(options: ServingOptions, request: PlanRequest) -> list[Gpu]:
    """The GPU types to plan on: the asked ones, else the engine's vendors (or all with show_all), by --vendor."""
    engine = options.engine_model
    catalog = list(load_catalog())
    if request.gpus:
        chosen = [g for name in request.gpus for g in catalog if g.name == name]
        for gpu in chosen:
            if gpu.vendor not in engine.vendors and not request.show_all:
                raise UsageError(f"{engine.label} does not run on {gpu.vendor} GPUs ({gpu.name}); it runs on "
                                 f"{', '.join(sorted(engine.vendors))}", option="gpu")
        return chosen
    chosen = catalog if request.show_all else [g for g in catalog if g.vendor in engine.vendors]
    if request.vendors:
        wanted = {v.lower() for v in request.vendors}
        known = {g.vendor.lower() for g in catalog}
        unknown = sorted(wanted - known)
        if unknown:
            raise UsageError(f"unknown vendor {', '.join(unknown)}; the catalog has "
                             f"{', '.join(sorted({g.vendor for g in catalog}))}", option="vendor")
        chosen = [g for g in chosen if g.vendor.lower() in wanted]
        if not chosen:
            raise UsageError(f"{engine.label} runs on none of {', '.join(request.vendors)}'s GPUs (it runs on "
                             f"{', '.join(sorted(engine.vendors))})", hint="show_all lists them anyway",
                             hint_options=("show_all",))
    return chosen


def make_plans(breakdown: Callable[[ServingOptions], ServingEstimate], facts: ModelFacts, arch: Architecture | None,
               options: ServingOptions, request: PlanRequest, prices: PriceTable) -> list[Plan]:
    """One plan per GPU type (its fewest GPUs that fit, or the largest shape tried), ranked; at most
    `request.limit` unless `show_all` or GPU types were named. `breakdown(layout)`: the per-GPU breakdown at the
    options of one layout (TP, PP 1, a GPU)."""
    plans = []
    refused: list[Note] = []
    engine = options.engine_model
    shapes_by_node: dict[tuple[int, bool], list[tuple[int, int]]] = {}  # GPU types alike in these get the same
    breakdowns: dict[tuple[int, Hashable], ServingEstimate] = {}  # by TP and the engine's class of GPU
    for gpu in candidate_gpus(options, request):
        node = (gpu.gpus_per_node, spans_nodes(gpu))
        found = shapes_by_node.get(node)
        if found is None:
            found, why = shapes(gpu, arch, request, options)
            if not found:
                refused.append(why or Note(gpu.name))  # it names the GPU type: not shared
                continue
            shapes_by_node[node] = found
        target = gpu.target
        gpu_class = engine.gpu_class(target)  # engines' defaults differ by GPU class (vLLM's batch tokens)
        sized = None
        layouts: dict[int, ServingOptions] = {}  # shapes across nodes share TP: one layout, one breakdown
        for tp, pp in found:
            layout = layouts.get(tp)
            at_tp = breakdowns.get((tp, gpu_class))
            if at_tp is None:
                layout = layouts[tp] = layout or options.laid_out(tp=tp, pp=1, gpu=target)
                at_tp = breakdowns[tp, gpu_class] = breakdown(layout)
            if pp == 1 and at_tp.weights_bytes > gpu.usable_bytes and (tp, pp) != found[-1]:
                continue  # its weights alone exceed the GPU: it cannot fit, and it is not the last shape tried
            if layout is None:
                layout = layouts[tp] = options.laid_out(tp=tp, pp=1, gpu=target)
            sized = size_on(gpu, tp, pp, layout, at_tp, facts, arch)
            if sized.fits:
                break
        assert sized is not None
        refusals: tuple[str, ...] = ()
        if not sized.fits and not request.shape_fixed:
            nodes = -(-sized.gpus // gpu.gpus_per_node)
            where = f"{nodes} nodes of {gpu.gpus_per_node}" if nodes > 1 else f"{sized.gpus}"
            refusals += (f"does not fit on {where} {gpu.name}",)
        if gpu.vendor not in engine.vendors:
            refusals += (f"{engine.label} does not run on {gpu.vendor} GPUs",)
        plans.append(plan_on(gpu, sized, facts, arch, options, prices.get(gpu.name), refusals))
    if not plans:
        reasons = list(dict.fromkeys(refused))[:3]  # GPU types refused alike are said once
        hints = [r.hint for r in reasons if r.hint]
        raise UsageError(reasons[0].text if len(reasons) == 1 else
                         "no GPU can take this shape: " + "; ".join(r.text for r in reasons),
                         hint="; ".join(dict.fromkeys(hints)) or None,
                         hint_options=tuple(dict.fromkeys(o for r in reasons for o in r.hint_options)),
                         option="tp" if request.tp else "pp" if request.pp else "nodes")
    ranked = sorted(plans, key=_rank)
    if request.show_all or request.gpus:
        return ranked
    fitting = [p for p in ranked if p.fits]
    return (fitting or ranked)[:request.limit]


def _rank(plan: Plan) -> tuple:
    idle = plan.count * plan.capacity.budget_bytes - plan.count * plan.estimate.total_bytes
    priced = plan.usd_per_hour is not None
    return (not plan.fits, not priced, plan.usd_per_hour or 0.0, plan.count, idle, plan.gpu.name)


