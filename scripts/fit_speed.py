#!/usr/bin/env python3
"""Fit the speed model (gpumem.planning.throughput) on the published benchmarks and print docs/speed.md's tables.

Usage: PYTHONPATH=src python scripts/fit_speed.py   (from the repository root)
"""

from __future__ import annotations

from pathlib import Path

from gpumem.planning.speed_calibration import fit_family, load_observations, relative_error, summary
from gpumem.planning.throughput import FAMILIES

ROOT = Path(__file__).resolve().parent.parent
MEASUREMENTS = ROOT / "fixtures" / "measurements"


def main() -> None:
    observations, left_out = load_observations(MEASUREMENTS / "speed-public-benchmarks.jsonl",
                                               MEASUREMENTS / "speed-model-shapes.json")
    fitted = {family: fit_family(observations, family) for family in FAMILIES}
    for family, constants in fitted.items():
        print(f"{family}: fitted {constants}\n{'':{len(family)}}  shipped {FAMILIES[family]}")
    print("\n| family | kind | model | set | rows | median abs error | mean abs error | worst |\n"
          "| --- | --- | --- | --- | --- | --- | --- | --- |")
    for (family, kind, layers, held), s in summary(observations, FAMILIES).items():
        worst, error = s["worst"]
        print(f"| {family} | {kind} | {layers} | {'held out' if held else 'fitted'} | {s['rows']} | {s['median_abs']:.1%} | "
              f"{s['mean_abs']:.1%} | {worst} {error:+.0%} |")
    print("\n| row | family | kind | set | measured | predicted | error |\n| --- | --- | --- | --- | --- | --- | --- |")
    for o in observations:
        error = relative_error(o, FAMILIES[o.family])
        if o.kind == "decode":
            measured, predicted = f"{1 / o.measured_s:.1f} tok/s", f"{(1 + error) / o.measured_s:.1f} tok/s"
        else:
            measured, predicted = f"{o.measured_s * 1e3:.0f} ms", f"{o.measured_s * (1 + error) * 1e3:.0f} ms"
        print(f"| {o.id} | {o.family} | {o.kind} | {'held out' if o.held_out else 'fitted'} | {measured} | "
              f"{predicted} | {error:+.0%} |")
    for line in left_out:
        print(f"left out: {line}")


if __name__ == "__main__":
    main()
