"""Terminal output with rich: the summary, breakdown and GPU tables, the stacked bar, progress, SVG.

Imported only when a table is printed, so `--json` and `calc --format csv` never load rich.
Colour only on a terminal; NO_COLOR (or a pipe) gives plain text with no escape codes at all.
"""

from __future__ import annotations

import os
from pathlib import Path

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from .files import write_atomically
from .units import (
    FIT_HEADERS,
    GB,
    concurrency,
    count,
    fit_rows,
    formula_widths,
    gb,
    short_count,
)

# Stacked-bar segments: distinct glyphs so the bar reads without colour too.
_SEGMENTS = (("weights", "█", "cyan"), ("KV cache", "▓", "magenta"), ("activations", "▒", "yellow"),
             ("overhead", "░", "red"), ("free", "·", "green"))
_BAR_WIDTH = 50


def stdout_console(record: bool = False) -> Console:
    """The console tables go to (recording when an SVG is wanted)."""
    # rich honours COLUMNS and writes no escape codes when piped; NO_COLOR also drops bold/dim.
    return Console(record=record, highlight=False, soft_wrap=False,
                   color_system=None if os.environ.get("NO_COLOR") else "auto")


def print_reports(dicts: list[dict], *, compare: bool, svg: str | None) -> None:
    """Details for one report, a comparison table for several (or when comparing)."""
    console = stdout_console(record=bool(svg))
    console.print(_comparison(dicts) if compare or len(dicts) != 1 else _detail(dicts[0]))
    _finish(console, svg)


def _detail(d: dict) -> Group:
    parts = [_summary(d)]
    if d["serving"]:
        parts.append(_breakdown(d))
    if d["recommendations"]:
        parts.append(_gpu_table(d))
        best = next((r for r in d["recommendations"] if r.get("fits")), None)
        if best and d["serving"]:
            parts.append(_stacked_bar(d, best))
    return Group(*parts)


def _summary(d: dict) -> Table:
    title = d["repo_id"] + (f" · {d['file']}" if d.get("file") else "")
    title += "".join(f" + {a['repo_id']}" for a in d.get("adapters", []))
    table = Table(title=Text(title, style="bold"), box=box.SIMPLE_HEAD, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("Revision", f"{d['revision']} ({d['source']})")
    estimated = " (ESTIMATE)" if d["parameters_estimated"] else ""
    table.add_row("Parameters", count(d["parameters"]) + estimated)
    if d["serving"] and d["serving"]["active_parameters"] != d.get("base_model", d)["parameters"]:
        table.add_row("Active / token", count(d["serving"]["active_parameters"]))
    stored = ", ".join(f"{k} {v:,}" for k, v in d["stored_elements"].items())
    table.add_row("Stored", f"{gb(d['weight_bytes'])} in {d['format']}" + (f" ({stored})" if stored else ""))
    if q := d["quantization"]:
        table.add_row("Quantization", f"{q['method']} {q['bits'] or '?'}-bit, {q['bits_per_weight']:.2f} bits/weight "
                                      f"with side data ({gb(q['side_data_bytes'])} of scales/zeros)")
    for adapter in d.get("adapters", []):
        targets = adapter["target_modules"]
        targets = targets if isinstance(targets, str) else ", ".join(targets)
        table.add_row("LoRA adapter", f"{adapter['repo_id']}: {adapter['variant']} r {adapter['rank']}, alpha "
                                      f"{adapter['alpha']:g} on {targets} · {count(adapter['parameters'])} · "
                                      f"{gb(adapter['weight_bytes'])}")
    if lora := d.get("lora_serving"):
        table.add_row("vLLM LoRA slots", f"{lora['max_loras']} × rank {lora['max_lora_rank']} on "
                                         f"{lora['wrapped_modules']} linear layers: {gb(lora['slot_bytes_per_gpu'])} "
                                         "per GPU (in weights)")
    for component in d.get("components", []):
        table.add_row(f"  {component['name']}", f"{count(component['parameters'])} · {gb(component['weight_bytes'])}")
    if f := d["formula"]:
        widths = formula_widths(d["formula_by_bits"])
        table.add_row("Formula", f"P × 4 B / (32 / {f['bits']:g}) × {f['overhead']} = {f['memory_gb']:,.1f} GB  ({widths})")
    return table


def _breakdown(d: dict) -> Table:
    s = d["serving"]
    per_gpu = s["per_gpu"]
    title = (f"Serving breakdown per GPU · {s['engine']}, {s['context']:,} tokens × {s['concurrency']} "
             f"sequence{'s' if s['concurrency'] != 1 else ''}, KV {s['kv_dtype']}, TP {s['tp']}")
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for name in ("weights", "KV cache", "activations", "overhead", "total"):
        table.add_column(name, justify="right")
    table.add_row(gb(per_gpu["weights_bytes"]), gb(per_gpu["kv_cache_bytes"]), gb(per_gpu["activation_bytes"]),
                  gb(per_gpu["overhead_bytes"]), Text(gb(per_gpu["total_bytes"]), style="bold"))
    table.caption = f"KV cache: {s['kv_bytes_per_token']:,} bytes per token"
    return table


def _gpu_table(d: dict) -> Table:
    context = d["serving"]["context"] if d["serving"] else None
    table = Table(title="GPU options (best first)", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("GPU")
    table.add_column("count", justify="right")
    table.add_column("TP", justify="right")
    table.add_column("per-GPU need", justify="right")
    table.add_column("headroom", justify="right")
    table.add_column(f"max seqs @ {context:,}" if context else "max seqs", justify="right")
    for rec in d["recommendations"]:
        if rec.get("fits"):
            table.add_row(rec["gpu"], str(rec["count"]), str(rec.get("tp", rec["count"])),
                          gb(rec.get("per_gpu_total_bytes")), f"{rec['headroom_gb']:,.1f} GB",
                          concurrency(rec.get("max_concurrency")) if context else "-")
        else:
            table.add_row(Text(rec["gpu"], style="dim"), Text("does not fit on 8", style="dim"), "", "", "", "")
    return table


def _stacked_bar(d: dict, rec: dict) -> Text:
    """One GPU of the best option as a bar: what each term takes of its memory budget, and what is free."""
    budget = rec["budget_bytes"]
    if rec["tp"] == d["serving"]["tp"]:
        per_gpu = d["serving"]["per_gpu"]
        parts = [(label, glyph, colour, per_gpu[key]) for (label, glyph, colour), key in zip(
            _SEGMENTS, ("weights_bytes", "kv_cache_bytes", "activation_bytes", "overhead_bytes"))]
    else:  # the breakdown above is for --tp; this option splits the model another way: its total only
        parts = [("need at TP " + str(rec["tp"]), *_SEGMENTS[0][1:], rec["per_gpu_total_bytes"])]
    free_label, free_glyph, free_colour = _SEGMENTS[-1]
    parts.append((free_label, free_glyph, free_colour, max(0, budget - sum(p[3] for p in parts))))
    text = Text(f"\nOne {rec['gpu']} of {rec['count']}: budget {gb(budget, 1)}\n")
    for _, glyph, colour, value in parts:
        text.append(glyph * round(value / max(budget, 1) * _BAR_WIDTH), style=colour)
    text.append("\n")
    for label, glyph, colour, value in parts:
        text.append(f"{glyph} {label} {gb(value, 1)}  ", style=colour)
    return text


def _comparison(dicts: list[dict]) -> Table:
    """One row per model (or GGUF variant): counts, size, bits per weight, the formula, the best fit."""
    one_repo = len({d["repo_id"] for d in dicts}) == 1 and all(d.get("file") for d in dicts)
    title = f"{dicts[0]['repo_id']}: variants side by side" if one_repo else "Models side by side"
    table = Table(title=f"{title} (GB = 10^9 bytes)", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True)
    table.add_column("file" if one_repo else "model", overflow="fold")
    for name in ("params", "stored", "bits/w", "16 bit", "8 bit", "4 bit", "need/GPU", "smallest fit"):
        table.add_column(name, justify="right" if name != "smallest fit" else "left", no_wrap=True)
    for d in dicts:
        widths = d["formula_by_bits"]
        best = next((r for r in d["recommendations"] if r.get("fits")), None)
        name = d["file"] if one_repo else d["repo_id"] + (f" · {d.get('variant') or d['file']}" if d.get("file") else "")
        table.add_row(
            name, short_count(d["parameters"]), f"{d['weight_bytes'] / GB:,.1f}", _bits_per_weight(d),
            *(f"{widths[b]:,.1f}" if b in widths else "-" for b in ("16", "8", "4")),
            f"{d['serving']['per_gpu']['total_bytes'] / GB:,.1f}" if d["serving"] else "-",
            f"{best['count']} × {best['gpu']}" if best else "none (8 max)",
        )
    table.caption = "16/8/4 bit: the formula P × 4 B / (32 / Q) × 1.2; need/GPU: the serving breakdown"
    return table


def _bits_per_weight(d: dict) -> str:
    """Stored bits per parameter: the quantization's effective figure, else bytes x 8 / parameters."""
    if d["quantization"]:
        return f"{d['quantization']['bits_per_weight']:.2f}"
    return f"{d['weight_bytes'] * 8 / d['parameters']:.2f}" if d["parameters"] else "-"


def print_fits(dicts: list[dict], *, svg: str | None) -> None:
    """`gpumem fit` tables: one row per load width and GPU count."""
    console = stdout_console(record=bool(svg))
    for d in dicts:
        table = Table(title=f"{d['repo_id']} on {d['gpu']} · sequences of {d['context']:,} tokens",
                      title_justify="left", box=box.SIMPLE_HEAD)
        for name in FIT_HEADERS:
            table.add_column(name, justify="left" if name == "load width" else "right")
        for row in fit_rows(d):
            table.add_row(*row)
        console.print(table)
    _finish(console, svg)


def print_text(text: str, *, svg: str | None) -> None:
    """Plain text through rich, so that it can be saved as an SVG."""
    console = stdout_console(record=bool(svg))
    console.print(Text(text.rstrip("\n")))
    _finish(console, svg)


def print_gpus(rows: list[dict], columns: list[str], *, svg: str | None) -> None:
    """The GPU catalog as a table."""
    table = Table(title="GPU catalog (usable = what the driver reports)", title_justify="left", box=box.SIMPLE_HEAD)
    for column in columns:
        table.add_column(column.replace("_", " "))
    for row in rows:
        table.add_row(*(str(row.get(c, "")) for c in columns))
    console = stdout_console(record=bool(svg))
    console.print(table)
    _finish(console, svg)


def _finish(console: Console, svg: str | None) -> None:
    if svg:
        _save_svg(console, svg)


def _save_svg(console: Console, path: str) -> None:
    """Write the recorded output as SVG atomically: a failed run never leaves half a file."""
    write_atomically(Path(path).absolute(), console.export_svg(title="gpumem"))
