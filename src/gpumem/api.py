"""gpumem's public API: short functions that wire the layers (hub -> headers -> counts ->
architecture -> memory -> GPUs) into ModelReport / CalcReport results. The CLI is a thin layer over this."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .constants import CALC_BITS
from .errors import AdapterTraining, BadConfig, GpumemError, UsageError, repo_error_record
from .model.types import VOCAB, ModelSummary, Note, RepoMetadata, WeightCount, WeightSet
from .output.report import FORMULA_BITS, CalcReport, ComponentCount, FitReport, ModelReport, TrainingReport
from .planning.engines import Engine
from .planning.gpus import GPU_COUNTS, find_gpu, fit_options, load_catalog
from .planning.memory import FormulaResult, ServingEstimate, ServingOptions, active_parameters, estimate_serving
from .planning.plans import ModelFacts, Plan, PlanRequest, make_plans
from .reading.sources import HubOptions, is_offline, open_client

if TYPE_CHECKING:
    from .model.architecture import Architecture
    from .planning.training import TrainingBase, TrainingOptions

# The Hub client, cache, snapshot and counting modules are imported where they are used, so that
# `gpumem calc` and `gpumem --help` start fast.

__all__ = ["HubOptions", "RepoOutcome", "is_offline", "open_client", "inspect_repo", "inspect_repos", "inspect_local",
           "inspect_base", "is_adapter", "estimate", "estimate_many", "fit", "fit_many", "train", "training_base",
           "calc", "parse_parameter_count"]


def inspect_repo(repo_id: str, revision: str = "main", options: HubOptions | None = None, *, client=None,
                 gguf_file: str | None = None) -> RepoMetadata:
    """Read a Hub repo's metadata: from the cache, the Hub, or (unreachable / gated without token) the snapshot.

    `gguf_file` reads only that variant of a GGUF repo.
    """
    return inspect_repos([repo_id], revision, options, client=client, gguf_file=gguf_file)[0]


def inspect_repos(repo_ids: Sequence[str], revision: str = "main", options: HubOptions | None = None, *,
                  client=None, return_errors: bool = False, on_done: Callable[[str], None] | None = None,
                  gguf_file: str | None = None) -> list:
    """Read many repos over one shared connection pool, concurrently; errors raise (or are returned in place).

    `on_done(repo_id)` is called as each repo finishes (for progress display). Where answers come from
    (cache, Hub, built-in snapshot) is sources.read_repos' policy.
    """
    from .reading.sources import read_repos

    return read_repos(repo_ids, revision, options, client=client, return_errors=return_errors, on_done=on_done,
                      gguf_file=gguf_file)


def inspect_local(path: str) -> RepoMetadata:
    """Read a local safetensors / GGUF file or model folder (headers only, never tensors)."""
    from .reading.local import read_local

    return read_local(path)


def estimate(metadata: RepoMetadata, *, bits: float | None = None, serving: ServingOptions | None = None,
             gpu: str | Sequence[str] | None = None, file: str | None = None,
             adapters: Sequence[RepoMetadata] = (), plan: PlanRequest | None = None) -> list[ModelReport]:
    """Count, size and place a model: one report (or one per GGUF variant; `file` picks one).

    `gpu` names the GPU type (or types) to answer for; default: the whole catalog. Each plan is sized on its own
    GPU (`serving.gpu` is set per plan), so `serving` carries no GPU.

    `adapters` are PEFT adapter repos served on this model: each is checked against it, and the report
    counts base + adapters (and, for vLLM, the LoRA slots it preallocates). `plan` fixes the plans' shape,
    vendors, list length and prices; `gpu` (one name or several) picks GPU types. The report's serving
    breakdown is its first plan's.
    """
    serving = serving or ServingOptions()
    bits = None if bits is None else _check_bits(bits)
    request = plan_request(plan, gpu)
    if is_adapter(metadata):
        raise UsageError(f"{metadata.repo_id} is a PEFT adapter: estimate its base with the adapter passed as "
                         "`adapters` (inspect_base reads the base it names)")
    return [_report(metadata, group, bits, serving, request, adapters) for group in _groups(metadata, file)]


def is_adapter(metadata: RepoMetadata) -> bool:
    """Whether the repo is a PEFT adapter (adapter_config.json + adapter_model.safetensors)."""
    return metadata.weight_sets[0].adapter_config is not None


def adapter_base(metadata: RepoMetadata, base: str | None = None) -> str:
    """The Hub id of the model an adapter repo applies to: `base`, else its config's base_model_name_or_path."""
    from .model.adapters import AdapterError, parse_adapter_config

    config = parse_adapter_config(metadata.weight_sets[0].adapter_config)
    name = base or config.base_model
    if name is None:
        raise AdapterError(f"{metadata.repo_id}: adapter_config.json names no base model (base_model_name_or_path)",
                           hint="pass the Hub id of the model it adapts as base", hint_options=("base",))
    if base is None and (name.startswith(("/", "./", "../", "~")) or "\\" in name or name.count("/") > 1):
        raise UsageError(f"{metadata.repo_id} was trained on a local model ({name!r}), not a Hub repo",
                         hint="pass the Hub id of the model it adapts as base", hint_options=("base",))
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
        options = serving
        notes: tuple[str, ...] = ()
        if arch and arch.max_context and serving.context > arch.max_context:  # as the serving breakdown caps it
            options = replace(serving, context=arch.max_context)
            if serving.context_asked:
                notes = (f"context capped at the model's maximum of {arch.max_context:,} tokens "
                         f"(asked {serving.context:,})",)
        rows = fit_options(summary, arch, options, target, widths, counts or GPU_COUNTS)
        reports.append(FitReport(metadata.repo_id, metadata.revision, metadata.source, target.name, options.context,
                                 count.parameters, tuple(rows), file=group[0].name if group[0].format == "gguf" else None,
                                 notes=notes))
    return reports


Report = TypeVar("Report", ModelReport, FitReport)


@dataclass(frozen=True)
class RepoOutcome(Generic[Report]):
    """One repo of a many-repo run: its reports (several for a GGUF repo's variants), or what stopped it:
    ModelReports from `estimate_many`, FitReports from `fit_many`."""

    repo_id: str
    reports: tuple[Report, ...] = ()
    error: GpumemError | None = None

    def error_dict(self) -> dict:
        """The one JSON shape of a failed repo, the same for hf, compare and fit."""
        assert self.error is not None
        return repo_error_record(self.repo_id, self.error)


def estimate_many(repo_ids: Sequence[str], revision: str = "main", options: HubOptions | None = None, *,
                  client=None, on_done: Callable[[str], None] | None = None, bits: float | None = None,
                  serving: ServingOptions | None = None, gpu: str | Sequence[str] | None = None,
                  file: str | None = None, loras: Sequence[str] = (), base: str | None = None,
                  plan: PlanRequest | None = None) -> list[RepoOutcome[ModelReport]]:
    """`estimate` for many Hub repos read concurrently; a repo that fails has its error in its place.

    An adapter repo is answered on its base (`base`, else the one its config names); `loras` (adapter repo
    ids, read first: one that fails raises) are served on every model.
    """
    adapters = inspect_repos(loras, "main", options, client=client) if loras else []

    def estimate_one(metadata: RepoMetadata) -> list[ModelReport]:
        if is_adapter(metadata):
            model = inspect_base(metadata, base, options, client=client)
            return estimate(model, bits=bits, serving=serving, gpu=gpu, file=file, adapters=[metadata, *adapters],
                            plan=plan)
        return estimate(metadata, bits=bits, serving=serving, gpu=gpu, file=file, adapters=adapters, plan=plan)
    return _many(repo_ids, revision, options, client, on_done, file, estimate_one)


def fit_many(repo_ids: Sequence[str], gpu: str | Sequence[str], revision: str = "main",
             options: HubOptions | None = None, *, client=None, on_done: Callable[[str], None] | None = None,
             serving: ServingOptions | None = None, counts: Sequence[int] | None = None,
             file: str | None = None) -> list[RepoOutcome[FitReport]]:
    """`fit` for many Hub repos read concurrently, on one GPU type or several; a repo that fails has its error in
    its place."""
    names = [gpu] if isinstance(gpu, str) else list(gpu)
    for name in names:
        find_gpu(name)  # an unknown GPU is the caller's error, before any request
    return _many(repo_ids, revision, options, client, on_done, file,
                 lambda metadata: [r for name in names for r in fit(metadata, name, serving=serving, counts=counts,
                                                                   file=file)])


def _many(repo_ids: Sequence[str], revision: str, options: HubOptions | None, client,
          on_done: Callable[[str], None] | None, file: str | None,
          answer: Callable[[RepoMetadata], Sequence[Report]]) -> list[RepoOutcome[Report]]:
    results = inspect_repos(repo_ids, revision, options, client=client, return_errors=True, on_done=on_done,
                            gguf_file=file)
    outcomes = []
    for repo_id, result in zip(repo_ids, results):
        try:
            if isinstance(result, GpumemError):
                raise result
            outcomes.append(RepoOutcome(repo_id, tuple(answer(result))))
        except GpumemError as exc:
            outcomes.append(RepoOutcome(repo_id, error=exc))
    return outcomes


# Vendors whose GPUs the common trainers (PyTorch FSDP, DeepSpeed, bitsandbytes) run on.
TRAINING_VENDORS = ("NVIDIA", "AMD")
TRAINING_PLANS_SHOWN = 8


def train(metadata: RepoMetadata, options: TrainingOptions | None = None, *, gpu: str | None = None,
          prices: Sequence[tuple[str, float]] = ()) -> TrainingReport:
    """Fine-tuning memory (full, LoRA or QLoRA) per GPU, and the fewest GPUs of each type that hold it.

    Plans carry their cost per hour where a price is known (the package table, the user's prices file,
    `prices` = (GPU, USD per GPU-hour) overrides).
    """
    from .planning.prices import load_prices, user_prices_file
    from .planning.training import TrainingOptions, estimate_training, plan_training

    options = options or TrainingOptions()
    base = training_base(metadata)
    estimate_ = estimate_training(base, options)
    catalog = [find_gpu(gpu)] if gpu else [g for g in load_catalog() if g.vendor in TRAINING_VENDORS]
    table = load_prices(prices, user_prices_file())
    known = {g.name: (p.usd_per_hour, p.label) for g in catalog if (p := table.get(g.name))}
    plans = plan_training(estimate_, [(g.name, g.usable_bytes) for g in catalog], prices=known)[:TRAINING_PLANS_SHOWN]
    notes = [*metadata.notes, *estimate_.notes]
    return TrainingReport(metadata.repo_id, metadata.revision, metadata.source, base.parameters, estimate_,
                          tuple(plans), tuple(dict.fromkeys(notes)))


def training_base(metadata: RepoMetadata) -> TrainingBase:
    """What training needs of a checkpoint: its exact parameters, its modules' shapes, its architecture."""
    from .model.adapters import summary_modules
    from .planning.training import TrainingBase

    main = metadata.weight_sets[0]
    if is_adapter(metadata):
        from .model.adapters import parse_adapter_config

        config = parse_adapter_config(main.adapter_config)
        targets = config.target_modules if isinstance(config.target_modules, str) else ",".join(config.target_modules)
        raise AdapterTraining(f"{metadata.repo_id} is a LoRA adapter: plan the training on its base model",
                              base=config.base_model, rank=config.rank, target_modules=targets)
    if main.format != "safetensors":
        raise UsageError(f"{metadata.repo_id}: training plans need the safetensors checkpoint (this repo has "
                         f"{main.format} weights)", hint="plan the training on the original Hugging Face repo")
    summary, arch, arch_note = _prepare(metadata.weight_sets)
    count = summary.count
    if arch is None:
        raise BadConfig(arch_note or f"{metadata.repo_id}: no readable config.json: training memory needs the "
                        "model's layers, width and vocabulary")
    if count.parameters is None:
        raise BadConfig(f"{metadata.repo_id}: its parameter count is unknown (its report's notes say why)")
    quantization = count.quantization.method if count.quantization else None
    return TrainingBase(count.parameters, summary_modules(summary, arch), arch, quantization, count.weight_bytes)


def _groups(metadata: RepoMetadata, file: str | None) -> list[list[WeightSet]]:
    """Weight sets reported together: one per GGUF variant, else all of them (diffusers components) as one."""
    if metadata.weight_sets[0].format == "gguf":
        return _pick_gguf(metadata.weight_sets, file)
    if file is not None:
        raise UsageError(f"file picks a GGUF variant, and {metadata.repo_id} has no GGUF files", option="file")
    return [list(metadata.weight_sets)]


def plan_request(plan: PlanRequest | None, gpu: str | Sequence[str] | None = None) -> PlanRequest:
    """The plan request with GPU names resolved to the catalog's and prices loaded (package, user file)."""
    from .planning.prices import load_prices, user_prices_file

    plan = plan or PlanRequest()
    names = [gpu] if isinstance(gpu, str) else list(gpu or ())
    resolved = tuple(dict.fromkeys(find_gpu(n).name for n in [*plan.gpus, *names]))
    prices = plan.prices if plan.prices is not None else load_prices(user_file=user_prices_file())
    return replace(plan, gpus=resolved, prices=prices)


def _plans(facts: ModelFacts, summary: ModelSummary, arch: Architecture | None, serving: ServingOptions,
           bits: float | None, request: PlanRequest) -> list[Plan]:
    """Plans for one model, every layout sized from the engine's loaded summary, derived once here."""
    loaded = serving.engine_model.loaded_summary(summary, arch, bits)

    def at(layout: ServingOptions) -> ServingEstimate:
        return estimate_serving(summary, arch, layout, bits, loaded=loaded)

    assert request.prices is not None
    return make_plans(at, facts, arch, serving, request, request.prices)


def _vocab_bytes(summary: ModelSummary, bits: float | None) -> Callable[[int], int]:
    """Embedding + head bytes on one GPU at each TP size (pipeline stages hold them at their ends)."""
    vocab = [c for c in summary.classes if c.split == VOCAB and c.role != "buffer"]

    def at(tp: int) -> int:
        return sum(c.count * -(-(c.nbytes if bits is None else int(c.parameters * bits // 8)) // tp) for c in vocab)
    return at


def _is_fp8(count: WeightCount) -> bool:
    quant = count.quantization
    return bool(quant and quant.method and "fp8" in quant.method)


def _report(metadata: RepoMetadata, group: Sequence[WeightSet], bits: float | None, serving: ServingOptions,
            request: PlanRequest, adapter_repos: Sequence[RepoMetadata] = ()) -> ModelReport:
    main = group[0]
    serving = serving.for_format(main.format)
    summary, arch, arch_note = _prepare(group)
    count = summary.count
    stored_bits = _checkpoint_bits(count)
    formula_bits = bits if bits is not None else stored_bits
    notes = [*metadata.notes, *(n for ws in group for n in ws.notes), *count.notes, *([arch_note] if arch_note else [])]
    adapters: tuple = ()
    if adapter_repos:
        adapters, serving = _with_adapters(metadata, main, summary, arch, serving, adapter_repos)
        if (lora_note := serving.engine_model.lora_note()) is not None:
            notes.append(lora_note)
    active = active_parameters(summary, arch)
    facts = ModelFacts(metadata.repo_id, count.parameters, active, _is_fp8(count) and bits is None,
                       _vocab_bytes(summary, bits), *_gguf_file(metadata, main))
    recs = _plans(facts, summary, arch, serving, bits, request)
    if bits is not None and stored_bits is not None and bits != stored_bits and any(r.command for r in recs):
        notes.append(_what_if_note(metadata.repo_id, bits, stored_bits, serving.engine_model, main.format))
    first = recs[0]  # the breakdown shown is the first plan's
    serving = replace(serving, tp=first.tp, pp=first.pp)
    estimate_ = serving.engine_model.report_breakdown(first, serving, gpu_named=bool(request.gpus))
    return ModelReport(
        metadata.repo_id, metadata.revision, metadata.source, main.format, tuple(f for ws in group for f in ws.files),
        count, formula_bits,
        FormulaResult.compute(count.parameters, formula_bits) if count.parameters and formula_bits else None,
        tuple(FormulaResult.compute(count.parameters, b) for b in FORMULA_BITS) if count.parameters else (),
        arch, estimate_, tuple(recs), file=main.name if main.format == "gguf" else None, variant=_variant(main),
        estimated=main.format == "pytorch-bin",
        components=_components(group) if len(group) > 1 else (), notes=tuple(dict.fromkeys([*notes, *estimate_.notes])),
        adapters=adapters, lora=serving.engine_model.lora_slots(serving.lora, serving.tp) if serving.lora else None)


def _with_adapters(metadata: RepoMetadata, main: WeightSet, summary: ModelSummary, arch: Architecture | None,
                   serving: ServingOptions, adapter_repos: Sequence[RepoMetadata]):
    """Each adapter read and checked against this base, and the serving options that carry them."""
    from .model.adapters import AdapterError, LoraServing, parse_adapter_config, read_adapter, summary_modules

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


def _gguf_file(metadata: RepoMetadata, weights: WeightSet) -> tuple[str | None, bool]:
    """The GGUF file llama.cpp starts (the first part of a split file), and whether it is a local path."""
    if weights.format != "gguf":
        return None, False
    name = weights.files[0]
    if metadata.source != "local":
        return name, False
    target = PurePath(metadata.repo_id)  # `gpumem local` names the file itself or its folder
    return str(target if target.name == name else target / name), True


def _prepare(group: Sequence[WeightSet]) -> tuple[ModelSummary, Architecture | None, str | None]:
    """What a report or fit of one group needs: its summary, the architecture (and why not)."""
    return (_summary(group), *_architecture(group[0].config))


def _summary(group: Sequence[WeightSet]) -> ModelSummary:
    """One weight set's summary (counted when read), or the count of components reported as one."""
    main = group[0]
    if len(group) == 1 and main.summary is not None:  # counted when read (or cached): no counting code loaded
        return main.summary
    from .model.params import summarize_weight_set, summarize_weights

    if len(group) == 1:
        return summarize_weight_set(main)
    return summarize_weights(tuple(t for ws in group for t in ws.tensors), main.config, main.quantize_config)


def _variant(weights: WeightSet) -> str | None:
    if weights.format != "gguf":
        return None
    from .model.gguf_header import variant_label

    return variant_label(weights.name)


def _components(group: Sequence[WeightSet]) -> tuple[ComponentCount, ...]:
    counts = [(ws.name or "(root)", _summary([ws]).count) for ws in group]
    return tuple(ComponentCount(name, c.parameters, c.weight_bytes) for name, c in counts)


def _architecture(config: dict | None) -> tuple[Architecture | None, str | None]:
    if not config:
        return None, None  # the memory model says what a weights-only answer leaves out
    from .model.architecture import parse_architecture  # here: `gpumem calc` reads no config

    try:
        return parse_architecture(config), None
    except BadConfig as exc:
        return None, f"config not understood ({exc.message}): weights only"


def _what_if_note(repo_id: str, bits: float, stored_bits: float, engine: Engine[Any], format_: str) -> Note:
    """What to run for a --bits what-if: the start command serves the checkpoint as stored, not at `bits`."""
    kinds: dict[float, str] = {8: "FP8, GPTQ", 4: "GPTQ, AWQ"}
    kind = "GGUF file" if format_ == "gguf" else f"checkpoint ({kinds.get(bits, 'GPTQ')})"
    width = f"{bits:g}-bit"
    article = "an" if width.startswith(("8", "11-", "18-")) else "a"
    note = (f"bits {bits:g} is a what-if: the start command serves {repo_id} as stored ({stored_bits:g}-bit); for "
            f"the {width} plans serve {article} {width} {kind} of the model in its place")
    on_load = engine.quantize_on_load(bits)
    return Note(note + (f", or {on_load}" if on_load else ""), option="bits")


def _checkpoint_bits(count: WeightCount) -> float | None:
    """The checkpoint's own width: the quantization's bits, else the dtype holding most bytes."""
    if count.quantization and count.quantization.bits:
        return count.quantization.bits
    if not count.parameters or not count.stored_total:
        return None
    width = round(count.weight_bytes * 8 / count.stored_total, 2)
    return int(width) if width.is_integer() else width


def _pick_gguf(sets: tuple[WeightSet, ...], file: str | None) -> list[list[WeightSet]]:
    from .model.layout import pick_gguf_variant

    return [[ws] for ws in sets] if file is None else [[pick_gguf_variant(sets, file)]]


_MAX_PARAMETERS = 10**14  # a hundred times the largest models published
_FEWEST_PARAMETERS = 10**4  # a bare number below this is a count in billions missing its B
_SUFFIXES = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9, "T": 10**12}


def parse_parameter_count(text: str) -> int:
    """Parse 70B, 7.24B, 125M, 1.5T, 70e9 or 68976648192 into an integer count."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMbBgGtT]?)\s*", text or "")
    if not match:
        raise UsageError(f"cannot read {text!r} as a parameter count", hint="use e.g. 70B, 7.24B, 125M, 70e9 or 68976648192")
    value = float(match[1]) * _SUFFIXES[match[2].upper()]
    if not match[2] and value < _FEWEST_PARAMETERS:
        raise UsageError(f"{text.strip()} parameters is too few for a model; did you mean {text.strip()}B?",
                         hint="give the unit: 70B, 7.24B, 125M (or every digit: 68976648192)")
    if not 1 <= value <= _MAX_PARAMETERS:
        raise UsageError(f"parameter count must be between 1 and 100T, got {text!r}")
    return round(value)


def calc(parameters: int | str, bits: float = CALC_BITS, *, serving: ServingOptions | None = None,
         gpu: str | Sequence[str] | None = None, plan: PlanRequest | None = None) -> CalcReport:
    """The formula (and weights-only GPU fit) for a parameter count given by hand."""
    count_ = parameters if isinstance(parameters, int) else parse_parameter_count(parameters)
    bits = _check_bits(bits)
    weights = ModelSummary(WeightCount(count_, {}, round(count_ * bits / 8)))
    request = plan_request(plan, gpu)
    facts = ModelFacts(None, count_, count_, False, lambda tp: 0)
    recs = _plans(facts, weights, None, serving or ServingOptions(), bits, request)
    return CalcReport(count_, bits, FormulaResult.compute(count_, bits), tuple(FormulaResult.compute(count_, b) for b in FORMULA_BITS),
                      tuple(recs))


def _check_bits(bits: float) -> float:
    """Bits per parameter as given, an int when whole (so JSON shows 4, not 4.0)."""
    if not 1 <= bits <= 64:
        raise UsageError(f"bits must be between 1 and 64, got {bits:g}", option="bits")
    return int(bits) if float(bits).is_integer() else bits
