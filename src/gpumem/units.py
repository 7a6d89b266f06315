"""Human units shared by every output format: GB (10^9 bytes) and parameter counts."""

from __future__ import annotations

GB = 10**9


def gb(value: int | float | None, digits: int = 2) -> str:
    """Bytes as 'N.NN GB' (10^9)."""
    return "-" if value is None else f"{value / GB:,.{digits}f} GB"


def count(value: int | None) -> str:
    """An exact count with separators, and a short form: '6,738,415,616 (6.74 B)'."""
    if value is None or value < 10**6:
        return "unknown" if value is None else f"{value:,}"
    return f"{value:,} ({short_count(value)})"




def short_count(value: int | None) -> str:
    """A parameter count in short form: '6.74 B'."""
    if value is None:
        return "unknown"
    return next((f"{value / size:.2f} {unit}" for unit, size in (("T", 10**12), ("B", 10**9), ("M", 10**6))
                 if value >= size), f"{value:,}")


def concurrency(value: int | None) -> str:
    """A sequence count, or '-' when unknown."""
    return "-" if value is None else f"{value:,}"
