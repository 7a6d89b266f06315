"""Human units and table cells shared by every output format: GB (10^9 bytes), counts, fit rows."""

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


def formula_widths(formula_by_bits: dict[str, float]) -> str:
    """'16 bit 168.0 GB · 8 bit 84.0 GB · 4 bit 42.0 GB'."""
    return " · ".join(f"{bits} bit {value:,.1f} GB" for bits, value in formula_by_bits.items())


FIT_HEADERS = ("load width", "GPUs", "per-GPU need", "headroom", "fits", "max seqs", "longest context")


def fit_rows(d: dict) -> list[tuple[str, ...]]:
    """The cells of a fit table (shared with the Markdown writer)."""
    return [("as stored" if o["bits"] is None else f"{o['bits']:g} bit", str(o["count"]),
             gb(o["per_gpu_total_bytes"]), f"{o['headroom_gb']:,.1f} GB", "yes" if o["fits"] else "no",
             concurrency(o["max_concurrency"]) if o["fits"] else "-", _longest(o, d["context"]))
            for o in d["options"]]


def _longest(option: dict, context: int) -> str:
    if option["max_concurrency"]:
        return f"≥ {context:,}"
    return f"{option['largest_context']:,}" if option.get("largest_context") else "-"
