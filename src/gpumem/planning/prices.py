"""GPU prices: the dated table in package data (prices.toml), a user file, and --price overrides.

Later sources win: package data < user file ($GPUMEM_PRICES, else ~/.config/gpumem/prices.toml) <
`--price GPU=USD`. GPU names go through the catalog's matcher, so aliases and nvidia-smi names work.
The user file is TOML:

    date = "2026-11-30"          # optional: how plans label these prices
    [usd_per_hour]
    "H100 SXM" = 2.49
    a100 = 1.10
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ..errors import UsageError
from ..model.types import Note
from .gpus import find_gpu

PRICES_FILE = Path(__file__).parent.parent / "data" / "prices.toml"
USER_PRICES_ENV = "GPUMEM_PRICES"
USER_PRICES_DEFAULT = Path("~/.config/gpumem/prices.toml")


# The origin of a price the caller gave (`load_prices`' overrides): the parameter itself, which the CLI says as
# its flag.
GIVEN_PRICE = Note("price", option="price")


@dataclass(frozen=True, slots=True)
class Price:
    """What one GPU-hour of a type costs, and where that figure comes from."""

    usd_per_hour: float
    date: str  # "2026-05" (the package table's as_of); "" when the user gave none
    origin: str  # "on-demand" (the package table) | "user file PATH" | GIVEN_PRICE
    source: str = ""  # the published page a catalog price comes from
    source_date: str = ""  # the date that page gives (the table's own date is `date`)

    @property
    def label(self) -> str:
        """Short provenance for tables: 'on-demand 2026-05', 'price' (the CLI: '--price')."""
        return f"{self.origin} {self.date}" if self.date else self.origin


@dataclass(frozen=True, slots=True)
class PriceTable:
    """Per-GPU prices (keyed by catalog name) after every override."""

    prices: Mapping[str, Price]
    as_of: str  # the package table's date

    def get(self, gpu_name: str) -> Price | None:
        """The price of one catalog GPU, or None when nobody gave one."""
        return self.prices.get(gpu_name)


@cache
def _catalog_prices() -> tuple[str, tuple[tuple[str, Price], ...]]:
    data = tomllib.loads(PRICES_FILE.read_text(encoding="utf-8"))
    as_of = str(data["as_of"])
    entries = tuple((find_gpu(p["gpu"]).name, Price(float(p["usd_per_hour"]), as_of, "on-demand", p["source"],
                                                    str(p["date"]))) for p in data["price"])
    return as_of, entries


def user_prices_file() -> Path | None:
    """The user's price file when one exists ($GPUMEM_PRICES must exist if set)."""
    named = os.environ.get(USER_PRICES_ENV)
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise UsageError(f"{USER_PRICES_ENV}={named}: no such file",
                             hint="point it at a TOML file with a [usd_per_hour] table (docs/prices.md)")
        return path
    default = USER_PRICES_DEFAULT.expanduser()
    return default if default.is_file() else None


def _read_user_file(path: Path) -> dict[str, Price]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read the price file {path}: {exc}",
                         hint="expected TOML with a [usd_per_hour] table (docs/prices.md)") from None
    table = data.get("usd_per_hour")
    if not isinstance(table, dict):
        raise UsageError(f"the price file {path} has no [usd_per_hour] table",
                         hint='e.g. [usd_per_hour]\n"H100 SXM" = 2.49')
    date = str(data.get("date", ""))
    return {find_gpu(name).name: Price(_usd(value, f"{path}: {name}"), date, f"user file {path}")
            for name, value in table.items()}


def _usd(value: object, where: str, option: str | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 10_000:
        raise UsageError(f"{where}: a price must be US dollars per GPU-hour between 0 and 10000, got {value!r}",
                         option=option)
    return float(value)


def parse_price_option(text: str) -> tuple[str, float]:
    """`--price "H100 SXM=2.49"` -> ("H100 SXM", 2.49) with the catalog's name; UsageError otherwise."""
    name, sep, amount = text.rpartition("=")
    if not sep or not name.strip():
        raise UsageError(f"price expects GPU=USD per GPU-hour, got {text!r}", hint='e.g. "H100=2.49"',
                         option="price")
    try:
        value = float(amount.strip().lstrip("$"))
    except ValueError:
        raise UsageError(f"price {text!r}: {amount!r} is not a number of dollars",
                         hint='e.g. "H100=2.49"', option="price") from None
    return find_gpu(name.strip()).name, _usd(value, f"price {text}", option="price")


def load_prices(overrides: Iterable[tuple[str, float]] = (), user_file: Path | None = None) -> PriceTable:
    """Package prices, then the user file (if any), then `overrides` (catalog name, USD) on top."""
    as_of, entries = _catalog_prices()
    prices: dict[str, Price] = dict(entries)
    if user_file is not None:
        prices.update(_read_user_file(user_file))
    for name, usd in overrides:
        prices[find_gpu(name).name] = Price(usd, "", GIVEN_PRICE)
    return PriceTable(prices, as_of)
