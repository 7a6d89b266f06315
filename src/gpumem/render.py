"""Output formats: JSON, CSV and Markdown here; tables (rich) in `tables`, loaded only when printed.

Every format is drawn from the reports' `to_dict()`, the one documented shape. stdout carries data
only; notes, warnings and errors go to stderr. Sizes are GB (10^9 bytes) everywhere, and say so.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Sequence

from .units import FIT_HEADERS, GB, concurrency, count, fit_rows, formula_widths, gb


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
    elif dicts:
        from . import tables

        tables.print_reports(dicts, compare=compare, svg=svg)
    _warn(ids, results, dicts, quiet)


def report_errors(ids: Sequence[str], results: Sequence) -> None:
    """`Error: REPO: message` (and its hint) on stderr for each repo of a many-repo run that failed."""
    sys.stdout.flush()  # keep the data above the errors when both go to one terminal
    for repo_id, result in zip(ids, results):
        if isinstance(result, Exception):
            sys.stderr.write(f"Error: {repo_id}: {result.message}\n")
            if result.hint:
                sys.stderr.write(f"Hint: {result.hint}\n")


def _warn(ids: Sequence[str], results: Sequence, dicts: list[dict], quiet: bool) -> None:
    report_errors(ids, results)
    if quiet:
        return
    several = len({d["repo_id"] for d in dicts}) > 1
    for note in dict.fromkeys((f"{d['repo_id']}: " if several else "") + n for d in dicts for n in d["notes"]):
        sys.stderr.write(f"Note: {note}\n")


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
                      f"{concurrency(r.get('max_concurrency'))} |" for r in fits]
        lines.append("")
    return "\n".join(lines) + "\n"


CSV_COLUMNS = ("repo_id", "file", "revision", "source", "format", "parameters", "weight_bytes", "formula_bits",
               "formula_gb", "formula_16_gb", "formula_8_gb", "formula_4_gb", "per_gpu_total_bytes", "best_gpu",
               "best_gpu_count")


def render_csv(dicts: list[dict]) -> str:
    """One row per model (or GGUF variant)."""
    rows = []
    for d in dicts:
        best = next((r for r in d["recommendations"] if r.get("fits")), {})
        widths = d["formula_by_bits"]
        rows.append([d["repo_id"], d.get("file", ""), d["revision"], d["source"], d["format"], d["parameters"],
                     d["weight_bytes"], d["formula"]["bits"] if d["formula"] else "",
                     d["formula"]["memory_gb"] if d["formula"] else "", widths.get("16", ""), widths.get("8", ""),
                     widths.get("4", ""), d["serving"]["per_gpu"]["total_bytes"] if d["serving"] else "",
                     best.get("gpu", ""), best.get("count", "")])
    return csv_text(CSV_COLUMNS, rows)


def csv_text(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A CSV document: header row, then the rows."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return out.getvalue()


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub Markdown table (every column left-aligned)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def emit_fits(reports, *, format: str, svg: str | None, quiet: bool) -> None:
    """Print `gpumem fit`."""
    dicts = [r.to_dict() for r in reports]
    if format == "json":
        sys.stdout.write(json.dumps(dicts[0] if len(dicts) == 1 else dicts, indent=2) + "\n")
        return
    rows = [(d, o) for d in dicts for o in d["options"]]
    if format == "csv":
        sys.stdout.write(csv_text(
            ("repo_id", "gpu", "bits", "count", "fits", "per_gpu_total_bytes", "headroom_gb", "max_concurrency",
             "largest_context"),
            [(d["repo_id"], d["gpu"], o["bits"] or "stored", o["count"], o["fits"], o["per_gpu_total_bytes"],
              o["headroom_gb"], o["max_concurrency"], o["largest_context"]) for d, o in rows]))
        return
    if format == "markdown":
        for d in dicts:
            title = f"**{d['repo_id']} on {d['gpu']} · sequences of {d['context']:,} tokens**"
            sys.stdout.write(f"{title}\n\n{markdown_table(FIT_HEADERS, fit_rows(d))}\n")
        return
    from . import tables

    tables.print_fits(dicts, svg=svg)


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
        sys.stdout.write(csv_text(("parameters", "bits", "memory_gb"), [(d["parameters"], f"{f['bits']:g}", f["memory_gb"])]))
        return
    if format == "markdown":
        sys.stdout.write(f"**{line}**\n")
        return
    # Plain text keeps `gpumem calc` free of rich's import cost (start-up budget: issue 5).
    rows = [(r["gpu"], str(r["count"]), str(r["tp"]), gb(r["per_gpu_total_bytes"]), f"{r['headroom_gb']:,.1f} GB")
            if r["fits"] else (r["gpu"], "> 8", "", "", "does not fit") for r in d["recommendations"]]
    text = f"{line}\n{formula_widths(d['formula_by_bits'])}\n"
    if rows:
        text += "GPU options (best first, weights + runtime overhead)\n"
        text += plain_table(("GPU", "count", "TP", "per-GPU need", "headroom"), rows)
    if svg:  # only rich can record an SVG: the same text, through it
        from . import tables

        tables.print_text(text, svg=svg)
    else:
        sys.stdout.write(text)


def plain_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An aligned text table (first column left, the rest right) with a rule under the header."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]

    def line(cells: Sequence[str]) -> str:
        first, *rest = (str(c) for c in cells)
        return "  " + "   ".join([first.ljust(widths[0]), *(c.rjust(w) for c, w in zip(rest, widths[1:]))]).rstrip()

    rule = " " + "─" * (sum(widths) + 3 * (len(widths) - 1) + 2)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)]) + "\n"


def emit_gpus(catalog, *, format: str, svg: str | None, quiet: bool) -> None:
    """Print the GPU catalog."""
    rows = [g.to_dict() for g in catalog]
    if format == "json":
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    columns = [k for k in rows[0] if k not in ("aliases", "note")] if rows else []
    cells = [[row.get(c, "") for c in columns] for row in rows]
    if format == "csv":
        sys.stdout.write(csv_text(columns, cells))
        return
    if format == "markdown":
        sys.stdout.write(markdown_table(columns, cells))
        return
    from . import tables

    tables.print_gpus(rows, columns, svg=svg)


def emit_cache_info(info, *, json_: bool, cleared: bool) -> None:
    """Print `gpumem cache info` / `clear`."""
    if json_:
        sys.stdout.write(json.dumps({**info.to_dict(), "cleared": cleared}, indent=2) + "\n")
        return
    verb = "Removed" if cleared else "Holds"
    sys.stdout.write(f"Cache: {info.path}\n{verb} {info.entries} entries for {info.repos} repos, "
                     f"{info.size_bytes / 10**6:,.2f} MB\n")


# -- train ---------------------------------------------------------------------------------------

_TRAINING_PARTS = (("frozen weights", "weights_bytes"), ("trainable weights", "trainable_bytes"),
                   ("gradients", "gradients_bytes"), ("optimizer states", "optimizer_bytes"),
                   ("activations", "activation_bytes"), ("overhead", "overhead_bytes"), ("total", "total_bytes"))
_PLAN_HEADERS = ("GPU", "count", "nodes", "per-GPU need", "headroom", "fits")


def _training_lines(d: dict) -> list[str]:
    t = d["training"]
    method = {"full": "full fine-tuning", "lora": "LoRA", "qlora": "QLoRA (NF4 base)"}[t["method"]]
    if t["method"] != "full":
        targets = t["target_modules"] if isinstance(t["target_modules"], str) else ",".join(t["target_modules"])
        method += f", rank {t['rank']} on {targets}"
    precision = t["precision"] + (" mixed (fp32 master weights)" if t["master_weights"] else "")
    checkpointing = "on" if t["gradient_checkpointing"] else "off"
    trainable = (f"Trainable {count(t['trainable_parameters'])} of {count(d['parameters'])} parameters · "
                 f"{precision} · {t['optimizer']}")
    shape = (f"Micro-batch {t['batch']} × {t['seq_len']:,} tokens · gradient checkpointing {checkpointing} · "
             f"ZeRO {t['zero']} over {t['gpus']} GPU{'s' if t['gpus'] != 1 else ''} · all of it before sharding "
             f"{gb(t['total_bytes'])}")
    return [f"{d['repo_id']} · {method}", trainable, shape]


def _plan_rows(d: dict) -> list[tuple[str, ...]]:
    return [(p["gpu"], str(p["count"]), str(p["nodes"]), gb(p["per_gpu"]["total_bytes"]),
             f"{p['headroom_gb']:,.1f} GB", "yes" if p["fits"] else "no") for p in d["recommendations"]]


def emit_training(report, *, format: str, svg: str | None, quiet: bool) -> None:
    """Print `gpumem train`: the set-up, the first plan's per-GPU breakdown, the plans."""
    d = report.to_dict()
    per_gpu = d["training"]["per_gpu"]
    if format == "json":
        sys.stdout.write(json.dumps(d, indent=2) + "\n")
    elif format == "csv":
        sys.stdout.write(csv_text(("repo_id", "method", "trainable_parameters", "gpu", "count", "nodes",
                                  *(key for _, key in _TRAINING_PARTS), "headroom_gb", "fits"),
                                 [(d["repo_id"], d["training"]["method"], d["training"]["trainable_parameters"],
                                   p["gpu"], p["count"], p["nodes"], *(p["per_gpu"][key] for _, key in _TRAINING_PARTS),
                                   p["headroom_gb"], p["fits"]) for p in d["recommendations"]]))
    elif format == "markdown":
        lines = _training_lines(d)
        text = f"### {lines[0]}\n\n" + "".join(f"- {line}\n" for line in lines[1:]) + "\n"
        text += markdown_table(("per GPU", "GB"), [(label, f"{per_gpu[key] / GB:,.2f}") for label, key in _TRAINING_PARTS])
        text += "\n" + markdown_table(_PLAN_HEADERS, _plan_rows(d))
        sys.stdout.write(text)
    else:
        text = "\n".join(_training_lines(d)) + "\n\nPer GPU (the first plan)\n"
        text += plain_table(("", "GB"), [(label, f"{per_gpu[key] / GB:,.2f}") for label, key in _TRAINING_PARTS])
        text += "\nGPU plans (fewest GPUs first)\n" + plain_table(_PLAN_HEADERS, _plan_rows(d))
        if svg:
            from . import tables

            tables.print_text(text, svg=svg)
        else:
            sys.stdout.write(text)
    if not quiet:
        for note in d["notes"]:
            sys.stderr.write(f"Note: {note}\n")
