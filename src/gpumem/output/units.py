"""Human units shared by every output: sizes in the unit that reads (MB below 1 GB, GB above; 10^n bytes),
counts with separators, and typed table cells whose CSV value is exact."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..constants import GB, MB
from .tables import Cell, Column

_SIZE_UNITS = (("GB", GB, 2), ("MB", MB, 1), ("kB", 10**3, 1))


def size(value: float | None, digits: int | None = None) -> str:
    """Bytes in the unit that reads: '15.23 GB', '721.8 MB', '12.0 kB', '512 B'; '-' for None."""
    if value is None:
        return "-"
    for unit, scale, default_digits in _SIZE_UNITS:
        if abs(value) >= scale:
            return f"{value / scale:,.{default_digits if digits is None else digits}f} {unit}"
    return f"{value:,.0f} B"


def gb(value: float | None, digits: int = 2) -> str:
    """Bytes as GB, or in MB / kB when under a GB (kept for callers that name GB)."""
    return size(value, digits if value is not None and abs(value) >= GB else None)


def plain_decimal(value: float, digits: int = 10) -> str:
    """A float as CSV writes it: no float noise ('165.5439556608', not '165.54395566079998'), no trailing zeros.

    Ten decimals of a GB are a tenth of a byte: the formula's P x Q / 8 x 1.2 bytes exactly."""
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def count(value: int | None) -> str:
    """An exact count with separators, and a short form: '6,738,415,616 (6.74 B)'."""
    if value is None:
        return "unknown"
    if value < 10**6:
        return f"{value:,}"
    return f"{value:,} ({short_count(value)})"


def short_count(value: int | None) -> str:
    """A count in short form: '6.74 B', '124.44 M', '721.79 K', '512'."""
    if value is None:
        return "unknown"
    return next((f"{value / scale:,.2f} {unit}" for unit, scale in (("T", 10**12), ("B", 10**9), ("M", 10**6),
                                                                   ("K", 10**3)) if value >= scale), f"{value:,}")


def count_cell(value: int | None, missing: str = "-") -> Cell:
    """An integer cell with separators; CSV gets the bare integer."""
    return Cell(missing, "") if value is None else Cell(f"{value:,}", value)


def short_count_cell(value: int | None) -> Cell:
    """A parameter count in short form ('7.62 B'); CSV gets the exact integer."""
    return Cell("unknown", "") if value is None else Cell(short_count(value), value)


def sequences_cell(values: Sequence[float | int | None]) -> Callable[[float | int | None], Cell]:
    """A cell maker for one column of sequence counts, with one rule for the whole column: two decimals when an
    engine reports a fraction (vLLM's "Maximum concurrency ... 4.12x"), none when every value is whole
    (llama.cpp's slots). CSV gets the plain value."""
    digits = 2 if any(isinstance(v, float) for v in values) else 0

    def cell(value: float | int | None) -> Cell:
        if value is None:
            return Cell("-", "")
        return Cell(f"{value:,.{digits}f}", plain_decimal(value) if isinstance(value, float) else value)

    return cell


def formula_widths(formula_by_bits: dict[str, float]) -> str:
    """'16 bit 168.0 GB · 8 bit 84.0 GB · 4 bit 42.0 GB'."""
    return " · ".join(f"{bits} bit {size(value * GB, 1)}" for bits, value in formula_by_bits.items())


def size_column(header: str, name: str, values: Sequence[float | None], *, drop: int = 0,
                in_gb: bool = False) -> tuple[Column, Callable[[float | None], Cell]]:
    """A size column and its cell maker: the unit that reads for the column's largest value, said once in the
    header ("headroom (GB)"), two decimals in GB, one in MB. CSV: exact bytes in `name` (which ends in _bytes),
    or plain GB in `name` (ending in _gb) when `in_gb` (values are then GB, as the formula gives them).

    When the column spans units so widely that a value would read as zero, each cell says its own unit.
    """
    scale = GB if in_gb else 1
    present = [abs(v) * scale for v in values if v is not None]
    largest = max(present, default=0)
    unit, divisor, digits = next(((u, s, d) for u, s, d in _SIZE_UNITS[:2] if largest >= s), _SIZE_UNITS[1])
    per_cell = any(0 < v < divisor / 10**digits for v in present)

    def cell(value: float | None) -> Cell:
        if value is None:
            return Cell("-", "")
        exact = plain_decimal(value) if in_gb else int(value)
        return Cell(size(value * scale) if per_cell else f"{value * scale / divisor:,.{digits}f}", exact)

    return Column(header if per_cell else f"{header} ({unit})", name, drop=drop), cell
