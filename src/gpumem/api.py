"""gpumem's public API: short functions that wire the layers (hub -> headers -> counts ->
architecture -> memory -> GPUs) into ModelReport / CalcReport results. The CLI is a thin layer over this."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from . import constants
from .architecture import Architecture, parse_architecture
from .errors import (
    AccessError,
    BadConfig,
    GatedRepo,
    GpumemError,
    HubUnavailable,
    OfflineMiss,
    UsageError,
)
from .gpus import GPU_COUNTS, Gpu, find_gpu, fit_options, load_catalog, recommend
from .memory import FormulaResult, ServingOptions, estimate_serving
from .report import FORMULA_BITS, CalcReport, ComponentCount, FitReport, ModelReport, TrainingReport
from .types import ModelSummary, RepoMetadata, WeightCount, WeightSet

if TYPE_CHECKING:
    from .cache import ResultCache
    from .training import TrainingBase, TrainingOptions

# The Hub client, cache, snapshot and counting modules are imported where they are used, so that
# `gpumem calc` and `gpumem --help` start fast.

__all__ = ["HubOptions", "is_offline", "open_client", "inspect_repo", "inspect_repos", "inspect_local", "estimate", "fit",
           "train", "training_base", "calc", "parse_parameter_count"]


@dataclass(frozen=True)
class HubOptions:
    """How to reach the Hub: token (None = discover, False = none), endpoint, offline, cache, timeouts."""

    token: str | bool | None = None
    endpoint: str | None = None
    offline: bool | None = None  # None: HF_HUB_OFFLINE decides
    use_cache: bool = True
    timeout: float = constants.DEFAULT_TIMEOUT_S
    deadline: float | None = constants.DEFAULT_DEADLINE_S


def open_client(options: HubOptions | None = None):
    """A HubClient configured from HubOptions (share it across calls to reuse connections)."""
    from .hub import HubClient

    options = options or HubOptions()
    return HubClient(options.endpoint, options.token, timeout=options.timeout, deadline=options.deadline)


def inspect_repo(repo_id: str, revision: str = "main", options: HubOptions | None = None, *, client=None,
                 gguf_file: str | None = None) -> RepoMetadata:
    """Read a Hub repo's metadata: from the cache, the Hub, or (unreachable / gated without token) the snapshot.

    `gguf_file` reads only that variant of a GGUF repo.
    """
    return inspect_repos([repo_id], revision, options, client=client, gguf_file=gguf_file)[0]


def is_offline(options: HubOptions | None = None) -> bool:
    """Whether these options (or HF_HUB_OFFLINE) forbid the network."""
    options = options or HubOptions()
    return constants.hf_offline() if options.offline is None else options.offline


def inspect_repos(repo_ids: Sequence[str], revision: str = "main", options: HubOptions | None = None, *,
                  client=None, return_errors: bool = False, on_done: Callable[[str], None] | None = None,
                  gguf_file: str | None = None) -> list:
    """Read many repos over one shared connection pool, concurrently; errors raise (or are returned in place).

    `on_done(repo_id)` is called as each repo finishes (for progress display).
    """
    from .cache import ResultCache
    from .hub import validate_repo_id, validate_revision

    options = options or HubOptions()
    validate_revision(revision)
    for repo_id in repo_ids:
        validate_repo_id(repo_id)
    cache = ResultCache() if options.use_cache else None
    if is_offline(options):
        endpoint = constants.hf_endpoint(options.endpoint)
        return [_each(lambda r: _offline(endpoint, r, revision, cache), repo_id, return_errors, on_done)
                for repo_id in repo_ids]
    owned = client is None
    client = client or open_client(options)
    client.restart_deadline()  # a shared client's deadline bounds this call, not its lifetime
    try:
        return client.map_concurrent(
            lambda repo_id: _each(lambda r: _online(client, r, revision, cache, gguf_file), repo_id, return_errors,
                                  on_done),
            repo_ids)
    finally:
        if owned:
            client.close()


def _each(read: Callable[[str], RepoMetadata], repo_id: str, return_errors: bool,
          on_done: Callable[[str], None] | None):
    """One repo of a many-repo run: its metadata, or (when asked) its error in its place."""
    try:
        return read(repo_id)
    except GpumemError as exc:
        if return_errors:
            return exc
        raise
    finally:
        if on_done:
            on_done(repo_id)


def _online(client, repo_id: str, revision: str, cache: ResultCache | None, gguf_file: str | None = None) -> RepoMetadata:
    from .fetch import fetch_repo

    if cache and (sha := cache.sha_for(client.endpoint, repo_id, revision)):
        note = None
        if sha != revision:  # a branch or tag may have moved: one request to find out
            try:
                sha = client.resolve(repo_id, revision).sha
            except HubUnavailable:
                note = f"the Hub could not be reached: answered from the cache ({revision} may have moved since)"
        if cached := cache.load(client.endpoint, repo_id, sha):
            return replace(cached, source="cache", notes=(note, *cached.notes) if note else cached.notes)
    try:
        metadata = fetch_repo(client, repo_id, revision, gguf_file=gguf_file)
    except (HubUnavailable, GatedRepo, AccessError) as exc:
        fallback = _snapshot_fallback(repo_id, exc, client.has_token)
        if fallback is None:
            raise
        return fallback
    metadata = _summarized(metadata)
    if cache and (gguf_file is None or metadata.weight_sets[0].format != "gguf"):  # never cache a partial read
        cache.store(client.endpoint, revision, _without_tensors(metadata))
    return metadata


def _summarized(metadata: RepoMetadata) -> RepoMetadata:
    """The metadata with each weight set counted once (its ModelSummary beside its tensors)."""
    from .params import summarize_weight_set

    return replace(metadata, weight_sets=tuple(ws if ws.summary else replace(ws, summary=summarize_weight_set(ws))
                                               for ws in metadata.weight_sets))


def _without_tensors(metadata: RepoMetadata) -> RepoMetadata:
    """What the cache keeps: the summaries instead of the tensors (DeepSeek-V3: 92k tensors, a few dozen
    classes). Components reported together (diffusers) keep their tensors, as they are counted as one, and so
    do PEFT adapters (small, and read tensor by tensor)."""
    if len(metadata.weight_sets) > 1 and metadata.weight_sets[0].format != "gguf":
        return metadata
    return replace(metadata, weight_sets=tuple(ws if ws.adapter_config is not None else replace(ws, tensors=())
                                               for ws in metadata.weight_sets))


def _offline(endpoint: str, repo_id: str, revision: str, cache: ResultCache | None) -> RepoMetadata:
    from .snapshot import LIVE_DATA_HINT, load_snapshot

    sha = cache.sha_for(endpoint, repo_id, revision) if cache else None
    if sha and (cached := cache.load(endpoint, repo_id, sha)):
        return replace(cached, source="cache")
    if snapshot := load_snapshot(repo_id):
        return _with_note(snapshot, f"offline: answered from the built-in snapshot; {LIVE_DATA_HINT}")
    raise OfflineMiss(f"offline, and neither the cache nor the built-in snapshot holds {repo_id}@{revision}",
                      hint="run once with network access (without --offline / HF_HUB_OFFLINE=1)")


def _snapshot_fallback(repo_id: str, exc: GpumemError, has_token: bool) -> RepoMetadata | None:
    """Answer from the snapshot when the Hub is unreachable, or the repo is gated and no token was given."""
    from .snapshot import LIVE_DATA_HINT, load_snapshot

    if isinstance(exc, AccessError) and (has_token or not isinstance(exc, GatedRepo)):
        return None
    snapshot = load_snapshot(repo_id)
    if snapshot is None:
        return None
    why = "the Hub could not be reached" if isinstance(exc, HubUnavailable) else "the repo is gated and no token was given"
    return _with_note(snapshot, f"{why}: answered from the built-in snapshot; {LIVE_DATA_HINT}")


def inspect_local(path: str) -> RepoMetadata:
    """Read a local safetensors / GGUF file or model folder (headers only, never tensors)."""
    from .local import read_local

    return read_local(path)


def estimate(metadata: RepoMetadata, *, bits: float | None = None, serving: ServingOptions | None = None,
             gpu: str | None = None, file: str | None = None,
             adapters: Sequence[RepoMetadata] = ()) -> list[ModelReport]:
    """Count, size and place a model: one report (or one per GGUF variant; `file` picks one).

    `adapters` are PEFT adapter repos served on this model: each is checked against it, and the report
    counts base + adapters (and, for vLLM, the LoRA slots it preallocates).
    """
    serving = serving or ServingOptions()
    bits = None if bits is None else _check_bits(bits)
    only = find_gpu(gpu) if gpu else None
    if is_adapter(metadata):
        raise UsageError(f"{metadata.repo_id} is a PEFT adapter: estimate its base with the adapter passed as "
                         "`adapters` (inspect_base reads the base it names)")
    return [_report(metadata, group, bits, serving, only, adapters) for group in _groups(metadata, file)]


def is_adapter(metadata: RepoMetadata) -> bool:
    """Whether the repo is a PEFT adapter (adapter_config.json + adapter_model.safetensors)."""
    return metadata.weight_sets[0].adapter_config is not None


def adapter_base(metadata: RepoMetadata, base: str | None = None) -> str:
    """The Hub id of the model an adapter repo applies to: `base`, else its config's base_model_name_or_path."""
    from .adapters import AdapterError, parse_adapter_config

    config = parse_adapter_config(metadata.weight_sets[0].adapter_config)
    name = base or config.base_model
    if name is None:
        raise AdapterError(f"{metadata.repo_id}: adapter_config.json names no base model (base_model_name_or_path)",
                           hint="pass the base model's Hub id with --base")
    if base is None and (name.startswith(("/", "./", "../", "~")) or "\\" in name or name.count("/") > 1):
        raise UsageError(f"{metadata.repo_id} was trained on a local model ({name!r}), not a Hub repo",
                         hint="pass the base model's Hub id with --base")
    return name


def inspect_base(adapter: RepoMetadata, base: str | None = None, options: HubOptions | None = None, *,
                 client=None) -> RepoMetadata:
    """Read the base model of an adapter repo (same source policy as any repo); errors say it is the base."""
    import copy

    base_id = adapter_base(adapter, base)
    try:
        return inspect_repos([base_id], "main", options, client=client)[0]
    except GpumemError as exc:
        wrapped = copy.copy(exc)
        wrapped.message = f"base model of {adapter.repo_id}: {exc.message}"
        wrapped.args = (wrapped.message,)
        raise wrapped from None


def fit(metadata: RepoMetadata, gpu: str, *, serving: ServingOptions | None = None,
        counts: Sequence[int] | None = None, file: str | None = None) -> list[FitReport]:
    """Which load widths (as stored, 16, 8, 4 bit) and GPU counts of one type serve the model, with what room."""
    serving = serving or ServingOptions()
    target = find_gpu(gpu)
    reports = []
    for group in _groups(metadata, file):
        serving = serving.for_format(group[0].format)
        summary, arch, _ = _prepare(group)
        count = summary.count
        widths = [None, *(b for b in FORMULA_BITS if b != _checkpoint_bits(count))] if count.parameters else [None]
        rows = fit_options(summary, arch, serving, target, widths, counts or GPU_COUNTS)
        reports.append(FitReport(metadata.repo_id, metadata.revision, metadata.source, target.name, serving.context,
                                 count.parameters, tuple(rows), file=group[0].name if group[0].format == "gguf" else None))
    return reports


# Vendors whose GPUs the common trainers (PyTorch FSDP, DeepSpeed, bitsandbytes) run on.
TRAINING_VENDORS = ("NVIDIA", "AMD")
TRAINING_PLANS_SHOWN = 8


def train(metadata: RepoMetadata, options: TrainingOptions | None = None, *, gpu: str | None = None) -> TrainingReport:
    """Fine-tuning memory (full, LoRA or QLoRA) per GPU, and the fewest GPUs of each type that hold it."""
    from .training import TrainingOptions, estimate_training, plan_training

    options = options or TrainingOptions()
    base = training_base(metadata)
    estimate_ = estimate_training(base, options)
    catalog = [find_gpu(gpu)] if gpu else [g for g in load_catalog() if g.vendor in TRAINING_VENDORS]
    plans = plan_training(estimate_, [(g.name, g.usable_bytes) for g in catalog])[:TRAINING_PLANS_SHOWN]
    notes = [*metadata.notes, *estimate_.notes]
    return TrainingReport(metadata.repo_id, metadata.revision, metadata.source, base.parameters, estimate_,
                          tuple(plans), tuple(dict.fromkeys(notes)))


def training_base(metadata: RepoMetadata) -> TrainingBase:
    """What training needs of a checkpoint: its exact parameters, its modules' shapes, its architecture."""
    from .adapters import summary_modules
    from .training import TrainingBase

    main = metadata.weight_sets[0]
    if is_adapter(metadata):
        from .adapters import parse_adapter_config

        config = parse_adapter_config(main.adapter_config)
        targets = config.target_modules if isinstance(config.target_modules, str) else ",".join(config.target_modules)
        raise UsageError(f"{metadata.repo_id} is a LoRA adapter: plan the training on its base model",
                         hint=f"gpumem train {config.base_model or 'BASE'} --method lora --rank {config.rank} "
                              f"--target-modules {targets}")
    if main.format != "safetensors":
        raise UsageError(f"{metadata.repo_id}: training plans need the safetensors checkpoint (this repo has "
                         f"{main.format} weights)", hint="point gpumem train at the original Hugging Face repo")
    summary, arch, arch_note = _prepare(metadata.weight_sets)
    count = summary.count
    if arch is None:
        raise BadConfig(arch_note or f"{metadata.repo_id}: no readable config.json: training memory needs the "
                        "model's layers, width and vocabulary")
    if count.parameters is None:
        raise BadConfig(f"{metadata.repo_id}: its parameter count is unknown (see the notes of gpumem hf)")
    quantization = count.quantization.method if count.quantization else None
    return TrainingBase(count.parameters, summary_modules(summary, arch), arch, quantization, count.weight_bytes)


def _groups(metadata: RepoMetadata, file: str | None) -> list[list[WeightSet]]:
    """Weight sets reported together: one per GGUF variant, else all of them (diffusers components) as one."""
    if metadata.weight_sets[0].format == "gguf":
        return _pick_gguf(metadata.weight_sets, file)
    if file is not None:
        raise UsageError(f"file picks a GGUF variant, and {metadata.repo_id} has no GGUF files", option="file")
    return [list(metadata.weight_sets)]


def _report(metadata: RepoMetadata, group: Sequence[WeightSet], bits: float | None, serving: ServingOptions,
            only: Gpu | None, adapter_repos: Sequence[RepoMetadata] = ()) -> ModelReport:
    main = group[0]
    serving = serving.for_format(main.format)
    summary, arch, arch_note = _prepare(group)
    count = summary.count
    formula_bits = bits if bits is not None else _checkpoint_bits(count)
    notes = [*metadata.notes, *(n for ws in group for n in ws.notes), *count.notes, *([arch_note] if arch_note else [])]
    adapters: tuple = ()
    if adapter_repos:
        adapters, serving = _with_adapters(metadata, main, summary, arch, serving, adapter_repos)
        if serving.engine == "vllm":
            notes.append("vLLM gives every linear layer --max-loras slots of --max-lora-rank, whatever the adapters "
                         "target: the weights include those slots")
    estimate_ = estimate_serving(summary, arch, serving, bits=bits)
    if estimate_.offload and only is not None:
        estimate_ = _offload_on(estimate_, only, serving)
    recs = recommend(summary, arch, serving, bits, only=only)
    return ModelReport(
        metadata.repo_id, metadata.revision, metadata.source, main.format, tuple(f for ws in group for f in ws.files),
        count, formula_bits,
        FormulaResult.compute(count.parameters, formula_bits) if count.parameters and formula_bits else None,
        tuple(FormulaResult.compute(count.parameters, b) for b in FORMULA_BITS) if count.parameters else (),
        arch, estimate_, tuple(recs), file=main.name if main.format == "gguf" else None, variant=_variant(main),
        estimated=main.format == "pytorch-bin",
        components=_components(group) if len(group) > 1 else (), notes=tuple(dict.fromkeys([*notes, *estimate_.notes])),
        adapters=adapters, lora=serving.lora.vllm(serving.tp) if serving.lora and serving.engine == "vllm" else None)


def _with_adapters(metadata: RepoMetadata, main: WeightSet, summary: ModelSummary, arch: Architecture | None,
                   serving: ServingOptions, adapter_repos: Sequence[RepoMetadata]):
    """Each adapter read and checked against this base, and the serving options that carry them."""
    from .adapters import AdapterError, LoraServing, parse_adapter_config, read_adapter, summary_modules

    if main.format != "safetensors" or summary.count.parameters is None:
        raise UsageError(f"LoRA adapters are served on a safetensors base; {metadata.repo_id} has {main.format} weights")
    modules = summary_modules(summary, arch)
    adapters = []
    for repo in adapter_repos:
        weights = repo.weight_sets[0]
        if weights.adapter_config is None:
            raise AdapterError(f"{repo.repo_id} is not a PEFT adapter (no adapter_config.json beside "
                               "adapter_model.safetensors)")
        config = parse_adapter_config(weights.adapter_config)
        adapters.append(read_adapter(repo.repo_id, config, weights.tensors, modules, metadata.repo_id))
    # vLLM's lora_dtype "auto" is the model's dtype, and vLLM's "auto" dtype runs fp32 checkpoints in fp16: 2 bytes
    lora = LoraServing(tuple(m for m in modules if m.kind == "linear"), tuple(a.config.max_rank for a in adapters),
                       sum(a.parameters for a in adapters), repos=tuple(a.repo_id for a in adapters))
    return tuple(adapters), replace(serving, lora=lora)


def _offload_on(estimate_, gpu: Gpu, serving: ServingOptions):
    """The -ngl table's decode speeds on `gpu`, and the most layers that fit its budget (llama.cpp, ollama)."""
    from .engines.llamacpp import DEFAULT_RAM_BANDWIDTH_GBPS, largest_ngl, with_speed

    rows = with_speed(estimate_.offload, gpu.bandwidth_gbps)
    budget = serving.engine_model.budget(gpu.usable_bytes, serving)
    fits = largest_ngl(rows, budget)
    detail = {**(estimate_.engine_detail or {}), "gpu": gpu.name, "largest_ngl": fits,
              "ram_bandwidth_gbps": DEFAULT_RAM_BANDWIDTH_GBPS}
    layers = (estimate_.engine_detail or {}).get("n_layer", 0) + 1
    if fits is None:
        note = f"{gpu.name}: not even -ngl 0 fits"
    else:
        speed = rows[fits]["decode_tokens_per_s"]
        note = (f"{gpu.name}: -ngl {fits} of {layers} layers fit"
                + (f", about {speed:g} tokens/s decode (GPU {gpu.bandwidth_gbps:g} GB/s, system RAM "
                   f"{DEFAULT_RAM_BANDWIDTH_GBPS:g} GB/s assumed)" if speed else ""))
    return replace(estimate_, offload=tuple(rows), engine_detail=detail, notes=(*estimate_.notes, note))


def _prepare(group: Sequence[WeightSet]) -> tuple[ModelSummary, Architecture | None, str | None]:
    """What a report or fit of one group needs: its summary, the architecture (and why not)."""
    return (_summary(group), *_architecture(group[0].config))


def _summary(group: Sequence[WeightSet]) -> ModelSummary:
    """One weight set's summary (counted when read), or the count of components reported as one."""
    main = group[0]
    if len(group) == 1 and main.summary is not None:  # counted when read (or cached): no counting code loaded
        return main.summary
    from .params import summarize_weight_set, summarize_weights

    if len(group) == 1:
        return summarize_weight_set(main)
    return summarize_weights(tuple(t for ws in group for t in ws.tensors), main.config, main.quantize_config)


def _variant(weights: WeightSet) -> str | None:
    if weights.format != "gguf":
        return None
    from .gguf_header import variant_label

    return variant_label(weights.name)


def _components(group: Sequence[WeightSet]) -> tuple[ComponentCount, ...]:
    counts = [(ws.name or "(root)", _summary([ws]).count) for ws in group]
    return tuple(ComponentCount(name, c.parameters, c.weight_bytes) for name, c in counts)


def _architecture(config: dict | None) -> tuple[Architecture | None, str | None]:
    if not config:
        return None, None  # the memory model says what a weights-only answer leaves out
    try:
        return parse_architecture(config), None
    except BadConfig as exc:
        return None, f"config not understood ({exc.message}): weights only"


def _checkpoint_bits(count: WeightCount) -> float | None:
    """The checkpoint's own width: the quantization's bits, else the dtype holding most bytes."""
    if count.quantization and count.quantization.bits:
        return count.quantization.bits
    if not count.parameters or not count.stored_total:
        return None
    width = round(count.weight_bytes * 8 / count.stored_total, 2)
    return int(width) if width.is_integer() else width


def _pick_gguf(sets: tuple[WeightSet, ...], file: str | None) -> list[list[WeightSet]]:
    from .layout import pick_gguf_variant

    return [[ws] for ws in sets] if file is None else [[pick_gguf_variant(sets, file)]]


_MAX_PARAMETERS = 10**14  # a hundred times the largest models published
_SUFFIXES = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9, "T": 10**12}


def parse_parameter_count(text: str) -> int:
    """Parse 70B, 7.24B, 125M, 1.5T, 70e9 or 68976648192 into an integer count."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMbBgGtT]?)\s*", text or "")
    if not match:
        raise UsageError(f"cannot read {text!r} as a parameter count", hint="use e.g. 70B, 7.24B, 125M, 70e9 or 68976648192")
    value = float(match[1]) * _SUFFIXES[match[2].upper()]
    if not 1 <= value <= _MAX_PARAMETERS:
        raise UsageError(f"parameter count must be between 1 and 100T, got {text!r}")
    return round(value)


def calc(parameters: int | str, bits: float = 16, *, serving: ServingOptions | None = None,
         gpu: str | None = None) -> CalcReport:
    """The formula (and weights-only GPU fit) for a parameter count given by hand."""
    count_ = parameters if isinstance(parameters, int) else parse_parameter_count(parameters)
    bits = _check_bits(bits)
    weights = ModelSummary(WeightCount(count_, {}, round(count_ * bits / 8)))
    only = find_gpu(gpu) if gpu else None
    recs = recommend(weights, None, serving or ServingOptions(), bits, only=only)
    return CalcReport(count_, bits, FormulaResult.compute(count_, bits), tuple(FormulaResult.compute(count_, b) for b in FORMULA_BITS),
                      tuple(recs))


def _check_bits(bits: float) -> float:
    """Bits per parameter as given, an int when whole (so JSON shows 4, not 4.0)."""
    if not 1 <= bits <= 64:
        raise UsageError(f"bits must be between 1 and 64, got {bits:g}", option="bits")
    return int(bits) if float(bits).is_integer() else bits


def _with_note(metadata: RepoMetadata, note: str) -> RepoMetadata:
    return replace(metadata, notes=(note, *metadata.notes))
