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
    if value is None or value < 10**6:
        return "unknown" if value is None else f"{value:,}"
    return f"{value:,} ({short_count(value)})"


def _stdout(record: bool = False) -> Console:
    # rich honours COLUMNS and writes no escape codes when piped; NO_COLOR also drops bold/dim (no codes at all).
    return Console(record=record, highlight=False, soft_wrap=False, color_system=_color_system())


def _stderr() -> Console:
    return Console(stderr=True, highlight=False, color_system=_color_system())


def _color_system() -> str | None:
    return None if os.environ.get("NO_COLOR") else "auto"


# -- model reports --------------------------------------------------------------------------------


def emit_reports(ids: Sequence[str], results: Sequence, *, format: str, svg: str | None, quiet: bool,
                 compare: bool = False) -> None:
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
        console.print(_comparison(dicts) if compare else report_tables(dicts))
        if svg:
            _save_svg(console, svg)
    _warn(ids, results, dicts, quiet)


def _warn(ids: Sequence[str], results: Sequence, dicts: list[dict], quiet: bool) -> None:
    sys.stdout.flush()  # keep the data above the notes when both go to one terminal
    err = _stderr()
    for repo_id, result in zip(ids, results):
        if isinstance(result, Exception):
            err.print(Text(f"Error: {repo_id}: {result.message}"))
    if quiet:
        return
    several = len({d["repo_id"] for d in dicts}) > 1
    for note in dict.fromkeys((f"{d['repo_id']}: " if several else "") + n for d in dicts for n in d["notes"]):
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
    """One GPU of the best option as a bar: what each term takes of its memory budget, and what is free."""
    per_gpu = d["serving"]["per_gpu"] if rec["tp"] == d["serving"]["tp"] else None
    used = ([per_gpu["weights_bytes"], per_gpu["kv_cache_bytes"], per_gpu["activation_bytes"],
             per_gpu["overhead_bytes"]] if per_gpu else [rec["per_gpu_total_bytes"], 0, 0, 0])
    budget = rec["budget_bytes"]
    values = [*used, max(0, budget - sum(used))]
    text = Text(f"\nOne {rec['gpu']} of {rec['count']}: budget {gb(budget, 1)}\n")
    for (_, glyph, colour), value in zip(_SEGMENTS, values):
        text.append(glyph * round(value / max(budget, 1) * _BAR_WIDTH), style=colour)
    text.append("\n")
    labels = [f"{glyph} {label} {gb(value, 1)}" for (label, glyph, _), value in zip(_SEGMENTS, values)]
    for (_, _, colour), label in zip(_SEGMENTS, labels):
        text.append(label + "  ", style=colour)
    return text


def _comparison(dicts: list[dict]) -> Table:
    table = Table(title="Models side by side (GB = 10^9 bytes)", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("model", overflow="fold")
    for name in ("params", "stored", "16 bit", "8 bit", "4 bit", "need/GPU", "smallest fit"):
        table.add_column(name, justify="right" if name != "smallest fit" else "left", overflow="fold")
    for d in dicts:
        widths = d["formula_by_bits"]
        best = next((r for r in d["recommendations"] if r.get("fits")), None)
        table.add_row(
            d["repo_id"] + (f" · {d['file']}" if d.get("file") else ""), short_count(d["parameters"]),
            f"{d['weight_bytes'] / GB:,.1f}",
            *(f"{widths[b]:,.1f}" if b in widths else "-" for b in ("16", "8", "4")),
            f"{d['serving']['per_gpu']['total_bytes'] / GB:,.1f}" if d["serving"] else "-",
            f"{best['count']} × {best['gpu']}" if best else "none (8 max)",
        )
    table.caption = "16/8/4 bit: the formula P × 4 B / (32 / Q) × 1.2; need/GPU: the serving breakdown"
    return table


def short_count(value: int | None) -> str:
    """A parameter count in short form: '6.74 B'."""
    if value is None:
        return "unknown"
    return next((f"{value / size:.2f} {unit}" for unit, size in (("T", 10**12), ("B", 10**9), ("M", 10**6))
                 if value >= size), f"{value:,}")


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


def emit_fits(reports, *, format: str, svg: str | None, quiet: bool) -> None:
    """Print `gpumem fit`."""
    dicts = [r.to_dict() for r in reports]
    if format == "json":
        sys.stdout.write(json.dumps(dicts[0] if len(dicts) == 1 else dicts, indent=2) + "\n")
        return
    rows = [(d, o) for d in dicts for o in d["options"]]
    if format == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(("repo_id", "gpu", "bits", "count", "fits", "per_gpu_total_bytes", "headroom_gb",
                         "max_concurrency", "largest_context"))
        for d, o in rows:
            writer.writerow((d["repo_id"], d["gpu"], o["bits"] or "stored", o["count"], o["fits"],
                             o["per_gpu_total_bytes"], o["headroom_gb"], o["max_concurrency"], o["largest_context"]))
        sys.stdout.write(out.getvalue())
        return
    console = _stdout(record=bool(svg))
    for d in dicts:
        table = Table(title=f"{d['repo_id']} on {d['gpu']} · sequences of {d['context']:,} tokens",
                      title_justify="left", box=box.SIMPLE_HEAD)
        for name in ("load width", "GPUs", "per-GPU need", "headroom", "fits", "max seqs", "longest context"):
            table.add_column(name, justify="left" if name == "load width" else "right")
        for o in d["options"]:
            table.add_row("as stored" if o["bits"] is None else f"{o['bits']:g} bit", str(o["count"]),
                          gb(o["per_gpu_total_bytes"]), f"{o['headroom_gb']:,.1f} GB", "yes" if o["fits"] else "no",
                          _concurrency(o["max_concurrency"]) if o["fits"] else "-",
                          _longest(o, d["context"]))
        if format == "markdown":
            sys.stdout.write(_markdown_table(table))
        else:
            console.print(table)
    if svg and format == "table":
        _save_svg(console, svg)


def _longest(option: dict, context: int) -> str:
    if option["max_concurrency"]:
        return f"≥ {context:,}"
    return f"{option['largest_context']:,}" if option.get("largest_context") else "-"


def _markdown_table(table: Table) -> str:
    """A rich Table's title, header and cells as a GitHub Markdown table."""
    headers = [str(c.header) for c in table.columns]
    cells = [[str(cell) for cell in column.cells] for column in table.columns]
    lines = [f"**{table.title}**", "", "| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in zip(*cells)]
    return "\n".join(lines) + "\n\n"


class RepoProgress:
    """A transient progress bar on stderr while many repos are read; silent off a TTY or with --quiet."""

    def __init__(self, total: int, quiet: bool) -> None:
        self._progress = None
        if total > 1 and not quiet and sys.stderr.isatty():
            from rich.progress import Progress

            self._progress = Progress(console=_stderr(), transient=True)
            self._task = self._progress.add_task("Reading repos", total=total)

    def __enter__(self) -> RepoProgress:
        if self._progress:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress:
            self._progress.stop()

    def advance(self, _repo_id: str) -> None:
        """One more repo read."""
        if self._progress:
            self._progress.advance(self._task)


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
