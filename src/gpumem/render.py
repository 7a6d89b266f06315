"""Renderers: every format is drawn from the reports' `to_dict()`, the one documented shape.

stdout carries data only (tables, JSON, Markdown, CSV); notes, warnings and errors go to stderr.
Sizes are in GB (10^9 bytes) everywhere, and labelled so.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

GB = 10**9
# Stacked-bar segments: distinct glyphs so the bar reads without colour too.
_SEGMENTS = (("weights", "█", "cyan"), ("KV cache", "▓", "magenta"), ("activations", "▒", "yellow"),
             ("overhead", "░", "red"), ("free", "·", "green"))
_BAR_WIDTH = 50


def gb(value: int | float | None, digits: int = 2) -> str:
    """Bytes as 'N.NN GB' (10^9)."""
    return "-" if value is None else f"{value / GB:,.{digits}f} GB"


def count(value: int | None) -> str:
    """An exact count with separators, and a short form: '6,738,415,616 (6.74 B)'."""
    if value is None:
        return "unknown"
    for unit, size in (("T", 10**12), ("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if value >= size:
            return f"{value:,} ({value / size:.2f} {unit})"
    return f"{value:,}"


def _stdout(record: bool = False) -> Console:
    # rich already honours NO_COLOR, COLUMNS and non-TTY output (no escape codes when piped).
    return Console(record=record, highlight=False, soft_wrap=False)


def _stderr() -> Console:
    return Console(stderr=True, highlight=False)


# -- model reports --------------------------------------------------------------------------------


def emit_reports(ids: Sequence[str], results: Sequence, *, format: str, svg: str | None, quiet: bool) -> None:
    """Print the reports of one or more repos (a GpumemError in place of a repo that failed)."""
    reports = [r for result in results if isinstance(result, list) for r in result]
    dicts = [r.to_dict() for r in reports]
    if format == "json":
        errors = [{"repo_id": i, "error": e.message, "exit_code": int(e.exit_code)}
                  for i, e in zip(ids, results) if isinstance(e, Exception)]
        payload = dicts[0] if len(dicts) == 1 and not errors else [*dicts, *errors]
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    elif format == "csv":
        sys.stdout.write(render_csv(dicts))
    elif format == "markdown":
        sys.stdout.write(render_markdown(dicts))
    else:
        console = _stdout(record=bool(svg))
        console.print(report_tables(dicts))
        if svg:
            _save_svg(console, svg)
    _warn(ids, results, dicts, quiet)


def _warn(ids: Sequence[str], results: Sequence, dicts: list[dict], quiet: bool) -> None:
    err = _stderr()
    for repo_id, result in zip(ids, results):
        if isinstance(result, Exception):
            err.print(Text(f"Error: {repo_id}: {result.message}"))
    if quiet:
        return
    for note in dict.fromkeys(n for d in dicts for n in d["notes"]):
        err.print(Text(f"Note: {note}", style="dim"))


def report_tables(dicts: list[dict]):
    """A renderable for a list of report dicts: details for one, a comparison table for several."""
    if len(dicts) == 1:
        return _detail(dicts[0])
    return _comparison(dicts)


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
    table = Table(title=Text(title, style="bold"), box=box.SIMPLE_HEAD, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("Revision", f"{d['revision']} ({d['source']})")
    estimated = " (ESTIMATE)" if d["parameters_estimated"] else ""
    table.add_row("Parameters", count(d["parameters"]) + estimated)
    if d["serving"] and d["serving"]["active_parameters"] != d["parameters"]:
        table.add_row("Active / token", count(d["serving"]["active_parameters"]))
    stored = ", ".join(f"{k} {v:,}" for k, v in d["stored_elements"].items())
    table.add_row("Stored", f"{gb(d['weight_bytes'])} in {d['format']}" + (f" ({stored})" if stored else ""))
    if q := d["quantization"]:
        table.add_row("Quantization", f"{q['method']} {q['bits'] or '?'}-bit, {q['bits_per_weight']:.2f} bits/weight "
                                      f"with side data ({gb(q['side_data_bytes'])} of scales/zeros)")
    for component in d.get("components", []):
        table.add_row(f"  {component['name']}", f"{count(component['parameters'])} · {gb(component['weight_bytes'])}")
    if f := d["formula"]:
        widths = " · ".join(f"{bits} bit {value:,.1f} GB" for bits, value in d["formula_by_bits"].items())
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
                          _concurrency(rec.get("max_concurrency")) if context else "-")
        else:
            table.add_row(Text(rec["gpu"], style="dim"), Text("does not fit on 8", style="dim"), "", "", "", "")
    return table


def _concurrency(value) -> str:
    return "-" if value is None else f"{value:,}"


def _stacked_bar(d: dict, rec: dict) -> Text:
    per_gpu = d["serving"]["per_gpu"]
    capacity = rec.get("usable_bytes") or per_gpu["total_bytes"]
    used = [per_gpu["weights_bytes"], per_gpu["kv_cache_bytes"], per_gpu["activation_bytes"], per_gpu["overhead_bytes"]]
    values = [*used, max(0, capacity - sum(used))]
    text = Text(f"\n{rec['gpu']} × {rec['count']}: one GPU of {gb(capacity, 1)}\n")
    cells = [round(v / max(capacity, 1) * _BAR_WIDTH) for v in values]
    for (label, glyph, colour), cells_ in zip(_SEGMENTS, cells):
        text.append(glyph * cells_, style=colour)
    text.append("\n")
    for (label, glyph, colour), value in zip(_SEGMENTS, values):
        text.append(f"{glyph} {label} {gb(value, 1)}  ", style=colour)
    return text


def _comparison(dicts: list[dict]) -> Table:
    table = Table(title="Models side by side", title_justify="left", box=box.SIMPLE_HEAD)
    for name, justify in (("model", "left"), ("parameters", "right"), ("stored", "right"), ("16 bit", "right"),
                          ("8 bit", "right"), ("4 bit", "right"), ("per-GPU need", "right"), ("cheapest fit", "left")):
        table.add_column(name, justify=justify)
    for d in dicts:
        widths = d["formula_by_bits"]
        best = next((r for r in d["recommendations"] if r.get("fits")), None)
        table.add_row(
            d["repo_id"] + (f" · {d['file']}" if d.get("file") else ""), count(d["parameters"]).split(" (")[0],
            gb(d["weight_bytes"], 1), *(f"{widths[b]:,.1f} GB" if b in widths else "-" for b in ("16", "8", "4")),
            gb(d["serving"]["per_gpu"]["total_bytes"], 1) if d["serving"] else "-",
            f"{best['count']} × {best['gpu']}" if best else "none of 8",
        )
    table.caption = "16/8/4 bit: the formula P × 4 B / (32 / Q) × 1.2; per-GPU need: the serving breakdown"
    return table


def render_markdown(dicts: list[dict]) -> str:
    """GitHub-flavoured Markdown, for a model card, a PR or an issue."""
    lines = []
    for d in dicts:
        title = d["repo_id"] + (f" · {d['file']}" if d.get("file") else "")
        lines += [f"### {title}", "", f"- Revision: `{d['revision']}` ({d['source']})",
                  f"- Parameters: {count(d['parameters'])}", f"- Stored: {gb(d['weight_bytes'])} ({d['format']})"]
        if d["formula"]:
            lines.append(f"- Formula at {d['formula']['bits']:g} bit: {d['formula']['memory_gb']:,.1f} GB "
                         "(P × 4 B / (32 / Q) × 1.2)")
        if d["serving"]:
            per_gpu, s = d["serving"]["per_gpu"], d["serving"]
            lines += ["", f"| per GPU ({s['engine']}, {s['context']} tokens × {s['concurrency']}, TP {s['tp']}) | GB |",
                      "| --- | ---: |"]
            lines += [f"| {label} | {per_gpu[key] / GB:,.2f} |" for label, key in (
                ("weights", "weights_bytes"), ("KV cache", "kv_cache_bytes"), ("activations", "activation_bytes"),
                ("overhead", "overhead_bytes"), ("**total**", "total_bytes"))]
        fits = [r for r in d["recommendations"] if r.get("fits")]
        if fits:
            lines += ["", "| GPU | count | TP | headroom (GB) | max concurrency |", "| --- | ---: | ---: | ---: | ---: |"]
            lines += [f"| {r['gpu']} | {r['count']} | {r.get('tp', r['count'])} | {r['headroom_gb']:,.1f} | "
                      f"{_concurrency(r.get('max_concurrency'))} |" for r in fits]
        lines.append("")
    return "\n".join(lines) + "\n"


CSV_COLUMNS = ("repo_id", "file", "revision", "source", "format", "parameters", "weight_bytes", "formula_bits",
               "formula_gb", "formula_16_gb", "formula_8_gb", "formula_4_gb", "per_gpu_total_bytes", "best_gpu",
               "best_gpu_count")


def render_csv(dicts: list[dict]) -> str:
    """One row per model (or GGUF variant)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for d in dicts:
        best = next((r for r in d["recommendations"] if r.get("fits")), {})
        widths = d["formula_by_bits"]
        writer.writerow([d["repo_id"], d.get("file", ""), d["revision"], d["source"], d["format"], d["parameters"],
                         d["weight_bytes"], d["formula"]["bits"] if d["formula"] else "",
                         d["formula"]["memory_gb"] if d["formula"] else "", widths.get("16", ""), widths.get("8", ""),
                         widths.get("4", ""), d["serving"]["per_gpu"]["total_bytes"] if d["serving"] else "",
                         best.get("gpu", ""), best.get("count", "")])
    return out.getvalue()


# -- calc, gpus, cache ----------------------------------------------------------------------------


def emit_calc(report, *, format: str, svg: str | None, quiet: bool) -> None:
    """Print `gpumem calc`."""
    d = report.to_dict()
    if format == "json":
        sys.stdout.write(json.dumps(d, indent=2) + "\n")
        return
    f = d["formula"]
    line = (f"{d['parameters']:,} parameters × 4 B / (32 / {f['bits']:g}) × {f['overhead']} = "
            f"{f['memory_gb']:,.1f} GB")
    if format == "csv":
        sys.stdout.write(f"parameters,bits,memory_gb\n{d['parameters']},{f['bits']:g},{f['memory_gb']}\n")
        return
    if format == "markdown":
        sys.stdout.write(f"**{line}**\n")
        return
    console = _stdout(record=bool(svg))
    console.print(Text(line, style="bold"))
    console.print(" · ".join(f"{b} bit {v:,.1f} GB" for b, v in d["formula_by_bits"].items()))
    if d["recommendations"]:
        console.print(_gpu_table({"recommendations": d["recommendations"], "serving": None}))
    if svg:
        _save_svg(console, svg)


def emit_gpus(catalog, *, format: str, svg: str | None, quiet: bool) -> None:
    """Print the GPU catalog."""
    rows = [g.to_dict() for g in catalog]
    if format == "json":
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    columns = [k for k in rows[0] if k not in ("aliases", "note")] if rows else []
    if format == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        sys.stdout.write(out.getvalue())
        return
    if format == "markdown":
        lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
        lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
        sys.stdout.write("\n".join(lines) + "\n")
        return
    table = Table(title="GPU catalog (usable = what the driver reports)", title_justify="left", box=box.SIMPLE_HEAD)
    for column in columns:
        table.add_column(column.replace("_", " "))
    for row in rows:
        table.add_row(*(str(row.get(c, "")) for c in columns))
    console = _stdout(record=bool(svg))
    console.print(table)
    if svg:
        _save_svg(console, svg)


def emit_cache_info(info, *, json_: bool, cleared: bool) -> None:
    """Print `gpumem cache info` / `clear`."""
    if json_:
        sys.stdout.write(json.dumps({**info.to_dict(), "cleared": cleared}, indent=2) + "\n")
        return
    verb = "Removed" if cleared else "Holds"
    sys.stdout.write(f"Cache: {info.path}\n{verb} {info.entries} entries for {info.repos} repos, "
                     f"{info.size_bytes / 10**6:,.2f} MB\n")


def _save_svg(console: Console, path: str) -> None:
    """Write the recorded output as SVG atomically: a failed run never leaves half a file."""
    svg = console.export_svg(title="gpumem")
    target = Path(path)
    fd, temp = tempfile.mkstemp(dir=target.parent or ".", suffix=".svg.part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(svg)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
