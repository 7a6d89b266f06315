"""What gpumem prints, described once: tables (title, columns, typed cells, caption), bars and command lines.

A command builds a `Document` (see `views`) and `render.emit` writes it as plain text, through rich on a
terminal (colour, SVG), as Markdown or as CSV, so every format carries the same content. Adding a table is
adding a description; no writer changes:

    from gpumem.output.tables import Column, Document, Table, text
    from gpumem.output.units import count_cell, size_column

    column, cell = size_column("need per GPU", "per_gpu_bytes", [plan["per_gpu_total_bytes"] for plan in plans])
    Table(
        title="Plans",
        columns=(Column("GPU", "gpu", align="left", identifier=True), Column("GPUs", "count"), column),
        rows=tuple((text(p["gpu"]), count_cell(p["count"]), cell(p["per_gpu_total_bytes"])) for p in plans),
        caption="need per GPU: weights, KV cache, activations and overhead",
    )

Sizes carry their unit once, in the header ("need per GPU (GB)"), and exact bytes in CSV. This module also
lays a table out for a terminal `width`: headers wrap at spaces, then wrapping text columns narrow, then the
columns with the highest `drop` go (the caption says which); identifiers (model ids, GPU names, files) are
never wrapped or cut, numbers never truncated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from .wrapping import words, wrap, wrap_command, wrap_title

GAP = 2  # spaces between columns
RULE = "─"
BAR_WIDTH = 50

# A styled piece of a line: (text, rich style or "").
Segment = tuple[str, str]
Line = list[Segment]


@dataclass(frozen=True)
class Cell:
    """One table cell: the text people read, and the exact value CSV writes (int, plain decimal, true/false)."""

    text: str
    value: object = None  # None: CSV writes `text`
    style: str = ""  # rich style on a terminal ("bold", "dim")

    @property
    def csv(self) -> object:
        """What a CSV writer puts in the cell."""
        if self.value is None:
            return self.text
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        return self.value


def text(value: str | None, style: str = "", csv: object = None) -> Cell:
    """A cell of text ('' for None)."""
    return Cell(value or "", csv, style)


@dataclass(frozen=True)
class Column:
    """A column: its header in words (with the unit, once), CSV name, alignment, and how it behaves when narrow."""

    header: str
    name: str  # CSV header: snake_case, unit included ("per_gpu_bytes")
    align: Literal["left", "right"] = "right"
    identifier: bool = False  # model ids, GPU names, files: never wrapped, cut or dropped
    wrap: bool = False  # prose that may wrap at spaces onto more lines
    drop: int = 0  # 0: always shown; otherwise dropped (highest first) when the table is too wide


@dataclass(frozen=True)
class Table:
    """A titled table. `header=False` makes a two-column list of fields (label, value)."""

    title: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[Cell, ...], ...]
    caption: str = ""
    header: bool = True
    keys: tuple[tuple[str, object], ...] = ()  # CSV columns in front of every row: what the title says

    def __post_init__(self) -> None:
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ValueError(f"{self.title!r}: a row of {len(row)} cells for {len(self.columns)} columns")


def fields(title: str, items: Sequence[tuple[str, str | Cell] | tuple[str, str | Cell, str]],
           caption: str = "") -> Table:
    """A list of labelled values (the summary of a model): `Label   value`, values wrapping at spaces.

    A value given as a Cell carries its exact CSV value (a byte count behind "15.23 GB"), and a third item
    names the field in CSV ("weight_bytes"; default: the label)."""
    columns = (Column("", "field", align="left"), Column("", "value", align="left", wrap=True))
    rows = tuple((Cell(item[0], item[2] if len(item) > 2 else None, "bold"),
                  item[1] if isinstance(item[1], Cell) else Cell(item[1])) for item in items)
    return Table(title, columns, rows, caption, header=False)


@dataclass(frozen=True)
class BarSegment:
    """One part of a bar: label, bytes, and how it is drawn (glyph without colour, colour on a terminal)."""

    label: str
    value: int
    size: str  # the value as people read it ("15.23 GB")
    glyph: str
    colour: str


@dataclass(frozen=True)
class Bar:
    """A stacked bar of one whole (a GPU's memory budget), with its legend."""

    title: str
    segments: tuple[BarSegment, ...]
    total: int

    def as_table(self) -> Table:
        """The bar's numbers as a table (Markdown and CSV)."""
        columns = (Column("part", "part", align="left"), Column("size", "bytes"), Column("share", "share"))
        rows = tuple((text(s.label), Cell(s.size, s.value), _share(s.value, self.total)) for s in self.segments)
        return Table(self.title, columns, rows)


def _share(value: int, total: int) -> Cell:
    fraction = value / total if total else 0.0
    return Cell(f"{fraction:.0%}", f"{fraction:.4f}")


@dataclass(frozen=True)
class Commands:
    """Shell command lines (to copy and run): wrapped with `\\` continuations, never cut."""

    title: str
    lines: tuple[str, ...]

    def as_table(self) -> Table:
        """The commands as a one-column table (CSV)."""
        return Table(self.title, (Column("command", "command", align="left", identifier=True),),
                     tuple((text(line),) for line in self.lines))


Block = Table | Bar | Commands


@dataclass(frozen=True)
class Document:
    """Everything one command prints on stdout, in order."""

    blocks: tuple[Block, ...] = field(default=())

    def cleaned(self, clean: Callable[[str], str]) -> Document:
        """The same document with `clean` applied to every text it shows (names and notes from repos and servers
        can hold escape codes); CSV values that are text are cleaned too."""
        def cell(c: Cell) -> Cell:
            return Cell(clean(c.text), clean(c.value) if isinstance(c.value, str) else c.value, c.style)

        blocks: list[Block] = []
        for block in self.blocks:
            if isinstance(block, Table):
                blocks.append(replace(block, title=clean(block.title), caption=clean(block.caption),
                                      rows=tuple(tuple(cell(c) for c in row) for row in block.rows)))
            elif isinstance(block, Bar):
                blocks.append(replace(block, title=clean(block.title)))
            else:
                blocks.append(replace(block, title=clean(block.title), lines=tuple(clean(x) for x in block.lines)))
        return Document(tuple(blocks))

    @property
    def tables(self) -> list[Table]:
        """Every block as a table (a bar by its numbers, command lines one per row)."""
        return [b if isinstance(b, Table) else b.as_table() for b in self.blocks]


# -- laying out for a terminal of `width` columns ---------------------------------------------------


def layout(document: Document, width: int) -> list[Line]:
    """The document as styled lines no longer than `width` (identifiers excepted, which are never cut)."""
    lines: list[Line] = []
    for block in document.blocks:
        if lines:
            lines.append([])
        if isinstance(block, Table):
            lines += layout_table(block, width)
        elif isinstance(block, Bar):
            lines += layout_bar(block, width)
        else:
            lines += layout_commands(block, width)
    return lines


def layout_table(table: Table, width: int) -> list[Line]:
    """Title (wrapped at `width`), header, rule, rows, caption."""
    columns = list(range(len(table.columns)))
    dropped: list[str] = []
    while True:
        widths = _fit_widths(table, columns, width)
        if _total(widths) <= width:
            break
        droppable = [i for i in columns if table.columns[i].drop]
        if not droppable:
            break  # identifiers are never cut: the line runs long rather than break one
        victim = max(droppable, key=lambda i: (table.columns[i].drop, i))
        columns.remove(victim)
        dropped.append(table.columns[victim].header)
    lines: list[Line] = [[(line, "bold")] for line in wrap_title(table.title, width)] if table.title else []
    if table.header:
        headers = [wrap(table.columns[i].header, w) for i, w in zip(columns, widths)]
        depth = max((len(h) for h in headers), default=0)
        for level in range(depth):
            texts = [(h[level - depth + len(h)] if level >= depth - len(h) else "") for h in headers]  # bottom-aligned
            lines.append(_join([Cell(t, style="bold") for t in texts], [table.columns[i] for i in columns], widths))
        lines.append([(RULE * _total(widths), "dim")])
    for row in table.rows:
        cells = [row[i] for i in columns]
        wrapped = [wrap(c.text, w) if table.columns[i].wrap else [c.text] for c, i, w in zip(cells, columns, widths)]
        for depth_index in range(max(len(w) for w in wrapped) if wrapped else 0):
            pieces = [Cell(w[depth_index] if depth_index < len(w) else "", style=c.style) for w, c in zip(wrapped, cells)]
            lines.append(_join(pieces, [table.columns[i] for i in columns], widths))
    caption = table.caption
    if dropped:
        left_out = f"left out at {width} columns: {', '.join(dropped)} (a wider terminal or --format csv shows them)"
        caption = f"{caption}; {left_out}" if caption else left_out.capitalize()
    lines += [[(line, "dim")] for line in wrap(caption, width)] if caption else []
    return lines


def _fit_widths(table: Table, columns: list[int], width: int) -> list[int]:
    """Column widths: natural first; then headers wrap and wrapping columns narrow, the most slack first."""
    natural, floors = [], []
    for i in columns:
        column = table.columns[i]
        cells = [row[i].text for row in table.rows]
        longest_cell = max((len(c) for c in cells), default=0)
        header = len(column.header) if table.header else 0
        header_floor = max((len(word) for word in words(column.header)), default=0) if table.header else 0
        cell_floor = max((len(word) for c in cells for word in words(c)), default=0) if column.wrap else longest_cell
        natural.append(max(longest_cell, header))
        floors.append(max(cell_floor, header_floor, 1))
    widths = list(natural)
    while _total(widths) > width:
        excess = [(w - f, k) for k, (w, f) in enumerate(zip(widths, floors)) if w > f]
        if not excess:
            break
        _, k = max(excess)  # one character at a time from the column with the most to give: shares evenly
        widths[k] -= 1
    return widths


def _total(widths: Sequence[int]) -> int:
    return sum(widths) + GAP * max(0, len(widths) - 1)


def _join(cells: Sequence[Cell], columns: Sequence[Column], widths: Sequence[int]) -> Line:
    line: Line = []
    for k, (cell, column, w) in enumerate(zip(cells, columns, widths)):
        padded = cell.text.ljust(w) if column.align == "left" else cell.text.rjust(w)
        if k:
            line.append((" " * GAP, ""))
        line.append((padded, cell.style))
    return _rstrip(line)


def _rstrip(line: Line) -> Line:
    """No trailing spaces: drop empty trailing segments and strip the last."""
    while line and not line[-1][0].strip():
        line.pop()
    if line:
        line[-1] = (line[-1][0].rstrip(), line[-1][1])
    return line


def bar_cells(segments: Sequence[BarSegment], total: int, width: int) -> list[int]:
    """Characters per segment, summing to exactly `width` when the segments fill the whole (largest remainder);
    segments that overflow it (a plan that does not fit) share the width instead of running past it."""
    total = max(total, sum(s.value for s in segments))
    exact = [s.value / total * width if total else 0.0 for s in segments]
    cells = [int(x) for x in exact]
    filled = min(width, round(sum(exact)))
    for k in sorted(range(len(exact)), key=lambda k: exact[k] - cells[k], reverse=True)[:max(0, filled - sum(cells))]:
        cells[k] += 1
    return cells


def layout_bar(bar: Bar, width: int) -> list[Line]:
    """Title, the bar (always BAR_WIDTH or the terminal's width), and a legend whose items never split."""
    bar_width = min(BAR_WIDTH, width)
    lines: list[Line] = [[(line, "bold")] for line in wrap_title(bar.title, width)]
    lines.append([(s.glyph * n, f"{s.colour} on {s.colour}") for s, n in
                  zip(bar.segments, bar_cells(bar.segments, bar.total, bar_width)) if n])
    legend: Line = []
    used = 0
    for segment in bar.segments:
        item = f"{segment.label} {segment.size}"
        size = len(segment.glyph) + 1 + len(item)
        if legend and used + GAP + size > width:
            lines.append(legend)
            legend, used = [], 0
        if legend:
            legend.append((" " * GAP, ""))
            used += GAP
        legend += [(segment.glyph, segment.colour), (" " + item, "")]
        used += size
    if legend:
        lines.append(legend)
    return lines


def layout_commands(block: Commands, width: int) -> list[Line]:
    """Command lines wrapped at spaces with ` \\` continuations, indented by two."""
    lines: list[Line] = [[(line, "bold")] for line in wrap_title(block.title, width)] if block.title else []
    for command in block.lines:
        parts = wrap_command(command, width - 2)
        lines += [[("  " + part, "")] for part in parts]
    return lines


def plain_lines(lines: Sequence[Line]) -> str:
    """Styled lines as plain text, one per line."""
    return "".join("".join(piece for piece, _ in line) + "\n" for line in lines)
