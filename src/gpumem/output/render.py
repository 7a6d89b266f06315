"""Writers for the documents `views` describes: plain text, rich (a terminal, SVG), Markdown, CSV; JSON is the
reports' `to_dict()`. `emit` picks one. stdout carries data only; notes, warnings and errors go to stderr.

Plain text and rich share one layout (`tables.layout`) at the terminal's width, so a pipe and a terminal show
the same lines; rich adds colour on a terminal and records SVGs. It is imported only for those, so `--json`,
CSV and piped `gpumem calc` never load it; json and csv load only for their formats.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import GpumemError, repo_error_record
from ..model.types import Note
from ..reading.sanitize import clean, csv_cell
from . import views
from .tables import Commands, Document, Line, Table, layout, plain_lines
from .wrapping import say, terminal_width, wrap, wrap_command

FORMATS = ("table", "json", "markdown", "csv")


def emit(document: Document, data: object, *, format: str, svg: str | None = None) -> None:
    """Write one command's output to stdout in `format`; `svg` also saves the table view as an SVG image."""
    if format == "json":  # json.dumps escapes control characters itself
        import json

        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        if svg:
            save_svg(_safe(document), svg)
        return
    document = _safe(document)
    if format == "csv":
        sys.stdout.write(to_csv(document))
    elif format == "markdown":
        sys.stdout.write(to_markdown(document, terminal_width()))
    else:
        lines = layout(document, terminal_width())
        if _colour():
            _print_rich(lines)
        else:
            sys.stdout.write(plain_lines(lines))
    if svg:
        save_svg(document, svg)


def _safe(document: Document) -> Document:
    """Text gpumem did not write (repo, file and tensor names, server messages) shown without escape codes;
    cleaned before the layout, so that widths are measured on what is shown."""
    return document.cleaned(lambda value: clean(value, 10_000))


def _colour() -> bool:
    """Colour only on a terminal (or FORCE_COLOR), never with NO_COLOR."""
    if os.environ.get("NO_COLOR"):
        return False
    return bool(os.environ.get("FORCE_COLOR")) or sys.stdout.isatty()


def _rich_text(line: Line):
    from rich.text import Text

    out = Text(no_wrap=True, overflow="ignore")
    for piece, style in line:
        out.append(piece, style=style or None)
    return out


def _print_rich(lines: Sequence[Line]) -> None:
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:  # `| head`: cli.main ends quietly (rich itself would exit 1)
            raise BrokenPipeError

    console = _Console(highlight=False, force_terminal=True if os.environ.get("FORCE_COLOR") else None)
    for line in lines:
        console.print(_rich_text(line), soft_wrap=True)


def save_svg(document: Document, path: str) -> None:
    """The table view as an SVG image as wide as its content; bars are drawn as filled rects."""
    from rich.console import Console

    from ..reading.files import write_atomically

    lines = layout(document, terminal_width())
    width = max((sum(len(piece) for piece, _ in line) for line in lines), default=20)
    console = Console(record=True, width=width, file=io.StringIO(), force_terminal=True, color_system="truecolor",
                      highlight=False)
    for line in lines:
        console.print(_rich_text(line), soft_wrap=True)
    try:  # a device, FIFO or folder at `path` is refused, never replaced (files.write_atomically)
        write_atomically(Path(path).absolute(), console.export_svg(title="gpumem"))
    except OSError as exc:
        from ..errors import OutputError

        raise OutputError(f"--svg {path}: cannot write it ({exc.strerror or exc})") from None


def to_markdown(document: Document, width: int = 80) -> str:
    """GitHub-flavoured Markdown: a heading per table, numbers right-aligned, fields as a list, captions below.

    Prose (list items, captions) wraps at `width` and commands wrap with ` \\` as on a terminal; a heading and a
    table row are one line each by Markdown's grammar, so those alone may be longer (a viewer lays them out)."""
    parts = []
    for block in document.blocks:
        if isinstance(block, Commands):
            lines = [part for line in block.lines for part in wrap_command(line, width)]
            parts.append(f"### {_md(block.title)}\n\n```sh\n" + "\n".join(lines) + "\n```\n")
            continue
        table = block if isinstance(block, Table) else block.as_table()
        lines = [f"### {_md(table.title)}", ""] if table.title else []
        if table.header:
            lines.append("| " + " | ".join(_md(c.header) for c in table.columns) + " |")
            lines.append("|" + "".join(" ---: |" if c.align == "right" else " --- |" for c in table.columns))
            lines += ["| " + " | ".join(_md(cell.text.strip()) for cell in row) + " |" for row in table.rows]
        else:
            for row in table.rows:
                item = wrap(f"- **{_md(row[0].text.strip())}**: {_md(row[1].text)}", width - 2)
                lines += [item[0], *("  " + more for more in item[1:])]  # continuation lines belong to the item
        if table.caption:
            lines += ["", *wrap(f"_{_md(table.caption)}_", width)]
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def _md(value: str) -> str:
    """Cell text that cannot break a Markdown table (pipes escaped) nor a terminal (controls shown)."""
    return value.replace("|", "\\|")


def to_csv(document: Document) -> str:
    """CSV: exact values (bytes as integers, decimals without float noise, true/false). Tables with the same
    columns (`fit` of several models) make one CSV; different tables are sections, each a `# title` line, its
    header row and rows, separated by a blank line. Text a spreadsheet would run as a formula starts with '."""
    import csv

    sections: list[tuple[str, list[str], list[list[object]]]] = []
    for table in document.tables:
        header = [name for name, _ in table.keys] + [c.name for c in table.columns]
        rows = [[value for _, value in table.keys] + [cell.csv for cell in row] for row in table.rows]
        if sections and sections[-1][1] == header:
            sections[-1][2].extend(rows)
        else:
            sections.append((table.title, header, rows))
    out = []
    for title, header, rows in sections:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        writer.writerows([csv_cell(value) for value in row] for row in rows)  # no formulas from repo text
        out.append((f"# {title}\n" if len(sections) > 1 else "") + buffer.getvalue())
    return "\n".join(out)


# -- the commands ---------------------------------------------------------------------------------


def emit_reports(ids: Sequence[str], results: Sequence, *, format: str, svg: str | None, quiet: bool,
                 compare: bool = False, say_note: Callable[[str], str] | None = None) -> None:
    """Print the reports of one or more repos (a GpumemError in place of a repo that failed); `say_note` words
    each note (the CLI: a `Note`'s parameters as its flags)."""
    reports = [r for result in results if isinstance(result, list) for r in result]
    dicts = [_notes_said(r.to_dict(), say_note) for r in reports]
    errors = [repo_error_record(i, e) for i, e in zip(ids, results) if isinstance(e, GpumemError)]
    payload = dicts[0] if len(dicts) == 1 and not errors else [*dicts, *errors]
    if dicts:
        document = views.comparison(dicts) if compare or len(dicts) != 1 else views.report(dicts[0])
        emit(document, payload, format=format, svg=svg)
    elif format == "json":
        emit(Document(), payload, format=format)
    report_errors(ids, results)
    if not quiet:
        print_notes(dicts)


def report_errors(ids: Sequence[str], results: Sequence) -> None:
    """`Error: REPO: message` (and its hint) on stderr for each repo of a many-repo run that failed."""
    sys.stdout.flush()  # keep the data above the errors when both go to one terminal
    for repo_id, result in zip(ids, results):
        if isinstance(result, GpumemError):
            message = clean(result.message, 1000)  # named once: "repository X not found" needs no "X: " before it
            say("Error", message if repo_id in result.message else f"{clean(repo_id, 200)}: {message}")
            if result.hint:
                say("Hint", clean(result.hint, 1000))


def _notes_said(value: Any, say_note: Callable[[str], str] | None) -> Any:
    """A report's dict with each `Note` in it as `say_note` words it (None: in the library's words)."""
    if say_note is None:
        return value
    if isinstance(value, dict):
        return {key: _notes_said(item, say_note) for key, item in value.items()}
    if isinstance(value, list):
        return [_notes_said(item, say_note) for item in value]
    return say_note(value) if isinstance(value, Note) else value


def print_notes(dicts: Sequence[dict]) -> None:
    """Each note once per run: said of every model, it is printed bare; else with the models it concerns."""
    names = list(dict.fromkeys(views.title_of(d) for d in dicts))
    holders: dict[str, list[str]] = {}
    for d in dicts:
        for note in d.get("notes", ()):
            holders.setdefault(note, [])
            if views.title_of(d) not in holders[note]:
                holders[note].append(views.title_of(d))
    for note, who in holders.items():
        prefix = "" if len(names) == 1 or len(who) == len(names) else f"{', '.join(who)}: "
        say("Note", clean(prefix + note, 2000))


def emit_fits(ids: Sequence[str], results: Sequence, *, format: str, svg: str | None, quiet: bool,
              say_note: Callable[[str], str] | None = None) -> None:
    """Print `gpumem fit` for one or more repos (a GpumemError in place of a repo that failed)."""
    dicts = [_notes_said(r.to_dict(), say_note) for result in results if isinstance(result, list) for r in result]
    errors = [repo_error_record(i, e) for i, e in zip(ids, results) if isinstance(e, GpumemError)]
    emit(views.fits(dicts), dicts[0] if len(dicts) == 1 and not errors else [*dicts, *errors], format=format,
         svg=svg)
    report_errors(ids, results)
    if not quiet:
        print_notes(dicts)


def emit_calc(report, *, format: str, svg: str | None, quiet: bool,
              say_note: Callable[[str], str] | None = None) -> None:
    """Print `gpumem calc`."""
    d = _notes_said(report.to_dict(), say_note)
    emit(views.calc(d), d, format=format, svg=svg)


def emit_gpus(catalog, *, format: str, svg: str | None, quiet: bool) -> None:
    """Print the GPU catalog."""
    rows = [g.to_dict() for g in catalog]
    emit(views.gpus(rows), rows, format=format, svg=svg)


def emit_cache_info(info, *, json_: bool, cleared: bool) -> None:
    """Print `gpumem cache info` / `clear`."""
    data = {**info.to_dict(), "cleared": cleared}
    emit(views.cache_info(data, cleared=cleared), data, format="json" if json_ else "table")


def emit_training(report, *, format: str, svg: str | None, quiet: bool,
                  say_note: Callable[[str], str] | None = None) -> None:
    """Print `gpumem train`: the set-up, the first plan's per-GPU breakdown, the plans."""
    d = _notes_said(report.to_dict(), say_note)
    emit(views.training(d), d, format=format, svg=svg)
    if not quiet:
        print_notes([d])


def emit_cache_list(repos, info, *, format: str, svg: str | None, quiet: bool) -> None:
    """Print `gpumem cache list`."""
    data = {"path": info.path, "repos": [r.to_dict() for r in repos]}
    emit(views.cache_list(data), data, format=format, svg=svg)


def emit_cache_cleared(repo_id: str, removed, *, json_: bool) -> None:
    """Print `gpumem cache clear REPO`."""
    data = {"repo_id": repo_id, "removed": [r.to_dict() for r in removed],
            "entries": sum(len(r.commits) for r in removed), "size_bytes": sum(r.size_bytes for r in removed)}
    emit(views.cache_cleared(data), data, format="json" if json_ else "table")
