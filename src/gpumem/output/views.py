"""Each command's output described once, from the reports' documented `to_dict()` shapes.

`render.emit` writes these documents as text, rich, Markdown or CSV; JSON is the dicts themselves.
To show something new, add a block (a `Table`, `Bar` or `Commands` of `tables`) here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from ..planning.engines import get_engine
from ..planning.memory import KV_DTYPE_BYTES
from .tables import Bar, BarSegment, Cell, Column, Commands, Document, Table, fields, text
from .units import (
    GB,
    count,
    count_cell,
    formula_widths,
    plain_decimal,
    sequences_cell,
    short_count_cell,
    size,
    size_column,
)

# Stacked-bar parts: distinct glyphs so the bar reads without colour too.
_BAR_PARTS = (("weights", "█", "cyan"), ("KV cache", "▓", "magenta"), ("activations", "▒", "yellow"),
              ("overhead", "░", "red"), ("free", "·", "green"))
_BREAKDOWN = (("weights", "weights_bytes"), ("KV cache", "kv_cache_bytes"), ("activations", "activation_bytes"),
              ("overhead", "overhead_bytes"), ("total", "total_bytes"))

_GPU = Column("GPU", "gpu", align="left", identifier=True)


def report(d: dict) -> Document:
    """`gpumem hf` / `local` for one model: summary, per-GPU breakdown, GPU options, the best option's bar."""
    blocks: list = [summary(d)]
    if d["serving"]:
        blocks.append(breakdown(d))
    if d["recommendations"]:
        blocks.append(gpu_options(d["recommendations"], d["serving"]))
        first = d["recommendations"][0]
        if d["serving"]:
            blocks.append(budget_bar(d, first))
        if first.get("command"):
            blocks.append(commands(first))
    return Document(tuple(blocks))


def plan_label(plan: dict) -> str:
    """'2 × A100 80GB', '2 nodes × 8 H100 SXM'."""
    if plan.get("nodes", 1) > 1:
        return f"{plan['nodes']} nodes × {plan['count'] // plan['nodes']} {plan['gpu']}"
    return f"{plan['count']} × {plan['gpu']}"


def commands(plan: dict) -> Commands:
    """How to start the first plan: the engine's command, or across nodes what the nodes run (the engine's
    `launch_across_nodes`) under the engine's `node_commands_title`."""
    if plan.get("node_commands"):
        title = f"Start it ({plan_label(plan)}): {get_engine(plan['engine']).node_commands_title}"
        return Commands(title, tuple(dict.fromkeys((*plan["node_commands"], plan["command"]))))
    return Commands(f"Start it ({plan_label(plan)})", (plan["command"],))


def title_of(d: dict) -> str:
    """A report's name: the repo id, the GGUF variant when there is one, and the adapters served on it."""
    return model_name(d) + "".join(f" + {a['repo_id']}" for a in d.get("adapters", []))


def model_name(d: dict) -> str:
    """The repo id and its GGUF file ('TheBloke/Llama-2-7B-GGUF · llama-2-7b.Q4_K_M.gguf'); a local file's path
    alone, which already ends with the file's name."""
    file = d.get("file")
    return d["repo_id"] if not file or d["repo_id"].endswith(file) else f"{d['repo_id']} · {file}"


def summary(d: dict) -> Table:
    """What was read: revision, parameters, stored bytes, quantization, components, the formula."""
    estimated = " (ESTIMATE)" if d["parameters_estimated"] else ""
    read_from = ("Read from", "local files (headers only)", "source") if d["source"] == "local" else \
        ("Revision", f"{d['revision']} ({d['source']})", "revision")
    items: list = [
        read_from,
        ("Parameters", Cell(count(d["parameters"]) + estimated, _exact(d["parameters"])), "parameters")]
    if d["serving"] and d["serving"]["active_parameters"] != d.get("base_model", d)["parameters"]:
        active = d["serving"]["active_parameters"]
        items.append(("Active per token", Cell(count(active), _exact(active)), "active_parameters"))
    stored = ", ".join(f"{k} {v:,}" for k, v in d["stored_elements"].items())
    items.append(("Stored", Cell(f"{size(d['weight_bytes'])} in {d['format']}" + (f" ({stored})" if stored else ""),
                                 d["weight_bytes"]), "weight_bytes"))
    if q := d["quantization"]:
        described = f"{q['method']} {q['bits'] or '?'}-bit, {q['bits_per_weight']:.2f} bits per weight"
        if q["side_data_bytes"]:  # GGUF keeps its scales inside the blocks: none stored beside them
            described += f" with side data ({size(q['side_data_bytes'])} of scales and zeros)"
        items.append(("Quantization", described, "quantization"))
    for adapter in d.get("adapters", []):
        targets = adapter["target_modules"]
        targets = targets if isinstance(targets, str) else ", ".join(targets)
        items.append(("LoRA adapter", Cell(f"{adapter['repo_id']}: {adapter['variant']} r {adapter['rank']}, alpha "
                                           f"{adapter['alpha']:g} on {targets} · {count(adapter['parameters'])} · "
                                           f"{size(adapter['weight_bytes'])}", adapter["repo_id"]), "adapter"))
    if lora := d.get("lora_serving"):
        items.append(("vLLM LoRA slots", Cell(f"{lora['max_loras']} × rank {lora['max_lora_rank']} on "
                                              f"{lora['wrapped_modules']} linear layers: "
                                              f"{size(lora['slot_bytes_per_gpu'])} per GPU (in weights)",
                                              lora["slot_bytes_per_gpu"]), "lora_slot_bytes_per_gpu"))
    for component in d.get("components", []):
        items.append((f"  {component['name']}", Cell(f"{count(component['parameters'])} · "
                                                     f"{size(component['weight_bytes'])}", component["weight_bytes"]),
                      f"{component['name']}_weight_bytes"))
    if f := d["formula"]:
        items += _formula_items(f, d["formula_by_bits"])
    return fields(title_of(d), items)


def _exact(value: int | None) -> object:
    return "" if value is None else value


def _formula_items(f: dict, by_bits: dict[str, float]) -> list[tuple[str, Cell, str]]:
    """The formula's answer at the load width, and at 16/8/4 bit (CSV: GB as plain decimals)."""
    memory = Cell(f"P × 4 B / (32 / {f['bits']:g}) × {f['overhead']} = {size(f['memory_gb'] * GB, 1)}",
                  plain_decimal(f["memory_gb"]))
    widths = Cell(formula_widths(by_bits), " ".join(f"{b}:{plain_decimal(v)}" for b, v in by_bits.items()))
    return [("Formula", memory, "formula_gb"), ("At 16/8/4 bit", widths, "formula_by_bits_gb")]


def kv_label(serving: dict, stored_elements: dict[str, int]) -> str:
    """'KV fp8', or under auto the dtype vLLM picks: bf16 for a BF16 checkpoint, fp16 for F16 and F32."""
    if serving["kv_dtype"] != "auto":
        return f"KV {serving['kv_dtype']}"
    main = max(stored_elements, key=stored_elements.__getitem__) if stored_elements else ""
    resolved = serving.get("kv_dtype_resolved") or {"BF16": "bf16", "F16": "fp16", "F32": "fp16"}.get(main) or \
        f"{KV_DTYPE_BYTES['auto'] * 8}-bit"
    return f"KV {resolved} (auto)"


def breakdown(d: dict) -> Table:
    """The per-GPU terms of serving the model."""
    s = d["serving"]
    per_gpu = s["per_gpu"]
    sequences = f"{s['concurrency']:,} sequence{'s' if s['concurrency'] != 1 else ''}"
    shape = get_engine(s["engine"]).shape_words(s["tp"], s.get("pp", 1))
    first = f" (the first plan, {plan_label(d['recommendations'][0])})" if d.get("recommendations") else ""
    engine = f"{s['engine']} {s['engine_version']}" if s.get("engine_version") else s["engine"]
    title = f"Per GPU{first}: {engine}, {sequences} of {s['context']:,} tokens, {kv_label(s, d['stored_elements'])}, {shape}"
    values = [per_gpu[key] for _, key in _BREAKDOWN]
    columns, cells = [], []
    for label, key in _BREAKDOWN:
        column, cell = size_column(label, key, values)
        columns.append(column)
        styled = cell(per_gpu[key])
        cells.append(Cell(styled.text, styled.value, "bold") if key == "total_bytes" else styled)
    caption = f"KV cache: {s['kv_bytes_per_token']:,} bytes per token"
    return Table(title, tuple(columns), (tuple(cells),), caption)


def gpu_options(recommendations: Sequence[dict], serving: dict | None, *,
                title: str = "GPU options (best first)") -> Table:
    """One row per plan: GPU type x count, shape, what one GPU needs, what is left, sequences, speed, price."""
    context = serving["context"] if serving else None
    has_kv = bool(serving and serving["kv_bytes_per_token"])
    engine = get_engine(serving["engine"]) if serving else None
    fitting = [r for r in recommendations if r.get("fits")]
    runs = [r for r in recommendations if r.get("runs_on_gpu", True)]  # a need only where the engine runs
    need, need_cell = size_column("need per GPU", "per_gpu_total_bytes", [r["per_gpu_total_bytes"] for r in runs])
    room, room_cell = size_column("headroom", "headroom_gb", [r["headroom_gb"] for r in fitting] or [1], in_gb=True,
                                  drop=1)
    split = engine is not None and engine.splits_layers  # llama.cpp: whole layers per GPU, no TP or PP
    shape_column = Column("split", "shape", drop=5) if split else Column("TP × PP", "shape", drop=5)
    columns = [_GPU, Column("GPUs", "count"), shape_column, need, room]
    if serving:
        columns.append(Column(f"sequences of {context:,} tokens", "max_concurrency", drop=4))
        columns += [Column("decode (tokens/s)", "decode_tokens_per_s", drop=3),
                    Column("first token (s)", "ttft_s", drop=2)]
    columns.append(Column("$/hour", "usd_per_hour"))
    if serving:  # tokens need a speed, and a speed needs the architecture
        columns.append(Column("$ per M tokens", "usd_per_million_tokens", drop=6))
    sequences = sequences_cell([r.get("max_concurrency") for r in fitting])
    rate = _rate_cell([r.get("decode_tokens_per_s") for r in fitting])
    rows = []
    for r in recommendations:
        shape = Cell(f"{r['tp']} × {r['pp']}" if r.get("pp", 1) > 1 else f"{r['tp']}", f"{r['tp']}x{r.get('pp', 1)}")
        if split:
            shape = Cell("layers" if r["count"] > 1 else "-", "layer" if r["count"] > 1 else "none")
        gpus = Cell(f"{r['nodes']} × {r['count'] // r['nodes']}" if r.get("nodes", 1) > 1 else f"{r['count']:,}",
                    r["count"])
        price = [_money(r.get("usd_per_hour"))] + ([_money(r.get("usd_per_million_tokens"))] if serving else [])
        if r.get("fits"):
            row = [text(r["gpu"]), gpus, shape, need_cell(r["per_gpu_total_bytes"]), room_cell(r["headroom_gb"])]
            if serving:
                row.append(sequences(r.get("max_concurrency")) if has_kv else Cell("n/a", ""))
                row += [rate(r.get("decode_tokens_per_s")), _seconds(r.get("ttft_s"))]
        else:
            row = [text(r["gpu"], "dim"), *_refusal(r, shape, need_cell)]
            if serving:
                row += [Cell("", ""), Cell("", ""), Cell("", "")]
            price = [Cell("", "")] * (2 if serving else 1)
        rows.append(tuple(row + price))
    bases = sorted({r["price_basis"] for r in recommendations if r.get("price_basis")})
    ranking = f"best: cheapest $/hour ({', '.join(bases) or 'no price known'}), then fewest GPUs"
    if not serving:
        caption = f"need: weights and runtime overhead; {ranking}"
    else:
        caption = (f"need per GPU: weights, KV cache, activations and overhead (busiest pipeline stage); {ranking} "
                   "(docs/prices.md); decode and first token: docs/speed.md")
        if not has_kv:
            caption += "; sequences n/a: no KV cache was modelled"
    if any(not r.get("fits") for r in runs):
        caption += "; does not fit: the need per GPU at the count shown (> N: at N, and more would be needed)"
    for label in dict.fromkeys(get_engine(r["engine"]).label for r in recommendations if r not in runs):
        caption += f"; no {label}: {label} does not run on that vendor's GPUs"
    return Table(title, tuple(columns), tuple(rows), caption)


def _refusal(r: dict, shape: Cell, need_cell: Callable[[float | None], Cell]) -> list[Cell]:
    """A plan that does not fit, said alike for every GPU: how many GPUs would be needed ('> 8': more than the
    most tried), with the need per GPU at that count; or, where the engine does not run, that none can."""
    if not r.get("runs_on_gpu", True):
        return [Cell("-", "", "dim"), Cell("-", ""), Cell("-", ""), Cell(f"no {get_engine(r['engine']).label}", "", "dim")]
    exhausted = not r.get("notes") or "does not fit on" in r["notes"][-1]  # every shape tried (none was fixed)
    need = need_cell(r["per_gpu_total_bytes"])
    return [Cell(f"> {r['count']}" if exhausted else f"{r['count']}", "", "dim"), shape,
            Cell(need.text, need.value, "dim"), Cell("does not fit", "", "dim")]


def _money(value: float | None) -> Cell:
    return Cell("-", "") if value is None else Cell(f"{value:,.2f}", plain_decimal(value, 4))


def _rate_cell(values: Sequence[float | None]) -> Callable[[float | None], Cell]:
    """Decode speeds, one rule for the column: whole tokens per second, or one decimal for every row when a
    speed is under 10 (3.5 beside 41.0, never 3.5 beside 41)."""
    digits = 1 if any(v is not None and v < 10 for v in values) else 0

    def cell(value: float | None) -> Cell:
        return Cell("-", "") if value is None else Cell(f"{value:,.{digits}f}", plain_decimal(value, 2))

    return cell


def _seconds(value: float | None) -> Cell:
    if value is None:
        return Cell("-", "")
    return Cell("< 0.01" if 0 < value < 0.005 else f"{value:.2f}", plain_decimal(value, 4))  # never a bare "0.00"


def budget_bar(d: dict, rec: dict) -> Bar:
    """One GPU of the first plan (the breakdown's): what each term takes of the engine's budget, and what is left
    (the plan's headroom). What the engine holds beside its budget (vLLM: CUDA context and graphs; SGLang: all
    overhead and activations) is not drawn: its legend item says how much, from overhead first."""
    budget = rec["budget_bytes"]
    per_gpu = rec["per_gpu"]
    outside = rec.get("outside_budget_bytes", 0)
    beside = {"overhead_bytes": min(outside, per_gpu["overhead_bytes"])}  # overhead first, then activations
    beside["activation_bytes"] = min(outside - beside["overhead_bytes"], per_gpu["activation_bytes"])
    parts = [(label, glyph, colour, per_gpu[key] - beside.get(key, 0), beside.get(key, 0))
             for (label, glyph, colour), (_, key) in zip(_BAR_PARTS[:4], _BREAKDOWN[:4])]
    used = sum(p[3] for p in parts)  # of the budget
    free = max(0, budget - used)
    segments = [BarSegment(label, value, size(value) + (f" (+{size(out)} outside the budget)" if out else ""),
                           glyph, colour) for label, glyph, colour, value, out in parts]
    label, glyph, colour = _BAR_PARTS[-1]
    segments.append(BarSegment(label, free, size(free), glyph, colour))
    who = f"One {rec['gpu']}" if rec["count"] == 1 else f"One of {plan_label(rec)}"
    engine = get_engine(d["serving"]["engine"])
    utilization = rec.get("gpu_memory_utilization")
    at = f" (--gpu-memory-utilization {utilization:g})" if utilization is not None else ""
    short = f"; does not fit by {size(used - budget)}" if used > budget else ""
    return Bar(f"{who}: {engine.budget_label} {size(budget)}{at}{short}", tuple(segments), budget)


def comparison(dicts: Sequence[dict]) -> Document:
    """One row per model (or GGUF variant): counts, size, bits per weight, the formula, the need, the best fit."""
    one_repo = len({d["repo_id"] for d in dicts}) == 1 and all(d.get("file") for d in dicts)
    title = f"{dicts[0]['repo_id']}: variants side by side" if one_repo else "Models side by side"
    stored, stored_cell = size_column("stored", "weight_bytes", [d["weight_bytes"] for d in dicts], drop=3)
    formula = [(b, size_column(f"{b} bit", f"formula_{b}_bit_gb",
                               [v for d in dicts for v in d["formula_by_bits"].values()], in_gb=True, drop=drop))
               for b, drop in (("16", 5), ("8", 6), ("4", 4))]
    need, need_cell = size_column("need per GPU", "per_gpu_total_bytes",
                                  [d["serving"]["per_gpu"]["total_bytes"] for d in dicts if d["serving"]])
    columns = (Column("file" if one_repo else "model", "file" if one_repo else "model", align="left", identifier=True),
               Column("parameters", "parameters"), stored, Column("bits per weight", "bits_per_weight", drop=7),
               *(column for _, (column, _) in formula), need,
               Column("smallest fit", "smallest_fit", align="left", identifier=True))
    rows = []
    for d in dicts:
        best = next(iter(d["recommendations"]), None)  # the first plan, ranked as `hf` ranks them
        best = best if best and best.get("fits") else None
        name = d["file"] if one_repo else d["repo_id"] + (f" · {d.get('variant') or d['file']}" if d.get("file") else "")
        rows.append((
            text(name), short_count_cell(d["parameters"]), stored_cell(d["weight_bytes"]), _bits_per_weight(d),
            *(cell(d["formula_by_bits"][b]) if b in d["formula_by_bits"] else Cell("-", "") for b, (_, cell) in formula),
            need_cell(d["serving"]["per_gpu"]["total_bytes"]) if d["serving"] else Cell("-", ""),
            text(plan_label(best) if best else "none", csv=_fit_csv(best)),
        ))
    caption = "16/8/4 bit: the formula P × 4 B / (32 / Q) × 1.2; need per GPU: the serving breakdown"
    return Document((Table(title, columns, tuple(rows), caption),))


def _fit_csv(best: dict | None) -> str:
    return plan_label(best).replace("×", "x") if best else ""


def _bits_per_weight(d: dict) -> Cell:
    """Stored bits per parameter: the quantization's effective figure, else bytes x 8 / parameters."""
    if d["quantization"]:
        value = d["quantization"]["bits_per_weight"]
    elif d["parameters"]:
        value = d["weight_bytes"] * 8 / d["parameters"]
    else:
        return Cell("-", "")
    return Cell(f"{value:.2f}", plain_decimal(value, 4))


def fits(dicts: Sequence[dict]) -> Document:
    """`gpumem fit`: per model (and GGUF variant), one row per load width and GPU count."""
    return Document(tuple(fit_table(d) for d in dicts))


def fit_table(d: dict) -> Table:
    """At which widths and counts one model fits one GPU type."""
    options = d["options"]
    fitting = [o for o in options if o["fits"]]
    need, need_cell = size_column("need per GPU", "per_gpu_total_bytes", [o["per_gpu_total_bytes"] for o in options])
    room, room_cell = size_column("headroom", "headroom_gb", [o["headroom_gb"] for o in fitting] or [1], in_gb=True)
    columns = (Column("load width", "bits", align="left"), Column("GPUs", "count"), need, room,
               Column("fits", "fits"), Column("sequences", "max_concurrency"),
               Column("longest context", "largest_context"))
    sequences = sequences_cell([o["max_concurrency"] for o in fitting])
    rows = []
    for o in options:
        rows.append((
            Cell("as stored" if o["bits"] is None else f"{o['bits']:g} bit", "stored" if o["bits"] is None else o["bits"]),
            count_cell(o["count"]), need_cell(o["per_gpu_total_bytes"]),
            room_cell(o["headroom_gb"]) if o["fits"] else Cell("-", plain_decimal(o["headroom_gb"])),
            Cell("yes" if o["fits"] else "no", o["fits"], "" if o["fits"] else "dim"),
            sequences(o["max_concurrency"]) if o["fits"] else Cell("-", 0),
            _longest(o, d["context"]),
        ))
    title = f"{model_name(d)} on {d['gpu']}: sequences of {d['context']:,} tokens"
    caption = "longest context: the longest sequence one GPU set holds (≥ when the asked context fits)"
    keys = (("repo_id", d["repo_id"]), ("file", d.get("file") or ""), ("gpu", d["gpu"]), ("context", d["context"]))
    return Table(title, columns, tuple(rows), caption, keys=keys)


def _longest(option: dict, context: int) -> Cell:
    if option["max_concurrency"]:
        return Cell(f"≥ {context:,}", context)
    if option.get("largest_context"):
        return count_cell(option["largest_context"])
    return Cell("-", "")


def calc(d: dict) -> Document:
    """`gpumem calc`: the formula for a count given by hand, and the GPUs that hold the weights."""
    f = d["formula"]
    items = [("Parameters", Cell(count(d["parameters"]), d["parameters"]), "parameters"),
             ("Load width", Cell(f"{f['bits']:g} bit", f["bits"]), "bits"), *_formula_items(f, d["formula_by_bits"])]
    blocks: list = [fields("Memory by the formula", items)]
    if d["recommendations"]:
        blocks.append(gpu_options(d["recommendations"], None))
    return Document(tuple(blocks))


def gpus(rows: Sequence[dict]) -> Document:
    """The GPU catalog: memory as marketed and as the driver reports it, speed, number formats; names accepted."""
    usable = [r["usable_mib"] * 2**20 for r in rows]
    usable_column, usable_cell = size_column("usable", "usable_bytes", usable)
    columns = (_GPU, Column("vendor", "vendor", align="left", drop=3), Column("memory (GB)", "marketed_gb"),
               usable_column, Column("bandwidth (GB/s)", "bandwidth_gbps"),
               Column("BF16 TFLOPS", "bf16_tflops", drop=2), Column("FP8", "fp8", drop=1),
               Column("FP4", "fp4", drop=1), Column("interconnect", "interconnect", align="left", drop=4))
    table_rows = tuple((
        text(r["name"]), text(r["vendor"]), Cell(f"{r['marketed_gb']:,g}", r["marketed_gb"]),
        usable_cell(r["usable_mib"] * 2**20), count_cell(r["bandwidth_gbps"]),
        Cell("-", "") if r["bf16_tflops"] is None else Cell(f"{r['bf16_tflops']:,g}", r["bf16_tflops"]),
        Cell("yes" if r["fp8"] else "no", r["fp8"]), Cell("yes" if r["fp4"] else "no", r["fp4"]),
        text(r["interconnect"]),
    ) for r in rows)
    catalog = Table("GPU catalog", columns, table_rows,
                    "usable: the memory the driver reports (nvidia-smi's MiB, in GB); sizes are 10^9 bytes")
    names = Table("Names --gpu accepts", (_GPU, Column("also accepted", "aliases", align="left", wrap=True)),
                  tuple((text(r["name"]), text(", ".join(r["aliases"]))) for r in rows))
    notes = Table("Notes", (_GPU, Column("note", "note", align="left", wrap=True)),
                  tuple((text(r["name"]), text(r["note"])) for r in rows if r.get("note")))
    return Document((catalog, names, notes))


def cache_list(data: dict) -> Document:
    """`gpumem cache list`: one row per cached repo (and endpoint)."""
    repos = data["repos"]
    if not repos:
        return Document((fields("gpumem cache", [("Folder", data["path"]), ("Holds", "nothing cached yet")]),))
    endpoints = {r["endpoint"] for r in repos}
    stored, stored_cell = size_column("size", "size_bytes", [r["size_bytes"] for r in repos])
    columns = [Column("repo", "repo_id", align="left", identifier=True),
               Column("revisions", "revisions", align="left", wrap=True, drop=2), Column("commits", "commits"),
               stored, Column("last written (UTC)", "modified", align="left", drop=1)]
    if len(endpoints) > 1:
        columns.insert(1, Column("endpoint", "endpoint", align="left", identifier=True))
    rows = []
    for r in repos:
        written = time.strftime("%Y-%m-%d %H:%M", time.gmtime(r["modified"]))
        row = [text(r["repo_id"]), text(", ".join(r["revisions"]) or "-", csv=" ".join(r["revisions"])),
               count_cell(len(r["commits"])), stored_cell(r["size_bytes"]), Cell(written, round(r["modified"]))]
        if len(endpoints) > 1:
            row.insert(1, text(r["endpoint"]))
        rows.append(tuple(row))
    return Document((Table("gpumem cache", tuple(columns), tuple(rows), f"in {data['path']}"),))


def cache_cleared(data: dict) -> Document:
    """`gpumem cache clear REPO`."""
    if not data["removed"]:
        return Document((fields("gpumem cache", [("Removed", f"nothing: {data['repo_id']} was not cached")]),))
    names = ", ".join(dict.fromkeys(r["repo_id"] for r in data["removed"]))
    removed = f"{data['entries']:,} entr{'y' if data['entries'] == 1 else 'ies'} of {names}, {size(data['size_bytes'])}"
    return Document((fields("gpumem cache", [("Removed", removed)]),))


def cache_info(info: dict, *, cleared: bool) -> Document:
    """`gpumem cache info` / `clear`."""
    verb = "Removed" if cleared else "Holds"
    holds = f"{info['entries']:,} entries for {info['repos']:,} repos, {size(info['size_bytes'])}"
    items = [("Folder", info["path"]), (verb, holds)]
    return Document((fields("gpumem cache", items),))



_TRAINING_PARTS = (("frozen weights", "weights_bytes"), ("trainable weights", "trainable_bytes"),
                   ("gradients", "gradients_bytes"), ("optimizer states", "optimizer_bytes"),
                   ("activations", "activation_bytes"), ("overhead", "overhead_bytes"), ("total", "total_bytes"))
_METHODS = {"full": "full fine-tuning", "lora": "LoRA", "qlora": "QLoRA (NF4 base)"}


def training(d: dict) -> Document:
    """`gpumem train`: the set-up, the first plan's per-GPU breakdown, the plans."""
    t = d["training"]
    method = _METHODS[t["method"]]
    if t["method"] != "full":
        targets = t["target_modules"] if isinstance(t["target_modules"], str) else ",".join(t["target_modules"])
        method += f", rank {t['rank']} on {targets}"
    precision = t["precision"] + (" mixed (fp32 master weights)" if t["master_weights"] else "")
    gpus_ = f"{t['gpus']} GPU{'s' if t['gpus'] != 1 else ''}"
    items = [
        ("Method", Cell(method, t["method"]), "method"),
        ("Trainable", Cell(f"{count(t['trainable_parameters'])} of {count(d['parameters'])} parameters",
                           t["trainable_parameters"]), "trainable_parameters"),
        ("Precision", precision, "precision"), ("Optimizer", t["optimizer"], "optimizer"),
        ("Micro-batch", Cell(f"{t['batch']:,} × {t['seq_len']:,} tokens", f"{t['batch']}x{t['seq_len']}"), "batch"),
        ("Checkpointing", Cell("on" if t["gradient_checkpointing"] else "off", t["gradient_checkpointing"]),
         "gradient_checkpointing"),
        ("Sharding", f"ZeRO {t['zero']} over {gpus_}", "zero"),
        ("All of it", Cell(f"{size(t['total_bytes'])} before sharding", t["total_bytes"]), "total_bytes"),
    ]
    per_gpu = t["per_gpu"]
    values = [per_gpu[key] for _, key in _TRAINING_PARTS]
    parts = [size_column(label, key, values) for label, key in _TRAINING_PARTS]
    breakdown_ = Table(f"Per GPU (the first plan, {gpus_})", tuple(column for column, _ in parts),
                       (tuple(cell(per_gpu[key]) for (_, cell), (_, key) in zip(parts, _TRAINING_PARTS)),))
    plans = d["recommendations"]
    need, need_cell = size_column("need per GPU", "per_gpu_total_bytes", [p["per_gpu"]["total_bytes"] for p in plans])
    room, room_cell = size_column("headroom", "headroom_gb", [p["headroom_gb"] for p in plans], in_gb=True)
    columns: tuple[Column, ...] = (_GPU, Column("GPUs", "count"), Column("nodes", "nodes"), need, room,
                                   Column("fits", "fits"))
    rows: tuple[tuple[Cell, ...], ...] = tuple((text(p["gpu"]), count_cell(p["count"]), count_cell(p["nodes"]),
                                                need_cell(p["per_gpu"]["total_bytes"]),
                  room_cell(p["headroom_gb"]), Cell("yes" if p["fits"] else "no", p["fits"]))
                 for p in plans)
    if any(p.get("usd_per_hour") is not None for p in plans):  # what the plan costs, where a price is known
        columns += (Column("$/hour", "usd_per_hour"),)
        rows = tuple((*row, Cell("-" if p["usd_per_hour"] is None else f"{p['usd_per_hour']:,.2f}", p["usd_per_hour"]))
                     for row, p in zip(rows, plans))
    blocks: list = [fields(d["repo_id"], items), breakdown_]
    if plans:
        blocks.append(Table("GPU plans (fewest GPUs first)", columns, rows))
    return Document(tuple(blocks))
