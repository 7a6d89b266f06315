"""Print gpumem's llama.cpp buffers against the load logs in fixtures/measurements, fitting and held-out apart.

    PYTHONPATH=src python scripts/llamacpp_accuracy.py

Each row: a buffer llama.cpp logged (KV cache, model buffer, compute buffer per GPU and host), gpumem's
prediction and the error. The fitting logs fixed the compute-buffer constants (engines/llamacpp.py); the
held-out logs came afterwards (docs/llamacpp.md).
"""

from __future__ import annotations

import sys

from gpumem_dev.fakehub import llamacpp_logs


def main() -> int:
    for name in ("fitting", "held-out", "measured b11434", "held-out b11434"):
        print(f"\n{name} logs\n")
        print("| log | buffer | gpumem MiB | llama.cpp MiB | error |")
        print("| --- | --- | ---: | ---: | ---: |")
        errors = []
        for case in (c for c in llamacpp_logs.cases() if c.set == name):
            for buffer, predicted, logged in llamacpp_logs.errors(case):
                error = (predicted - logged) / logged * 100
                errors.append((buffer, abs(error)))
                print(f"| {case.id} | {buffer} | {predicted:,.2f} | {logged:,.2f} | {error:+.1f}% |")
        for kind in ("kv", "model", "compute"):
            values = sorted(e for b, e in errors if b.startswith(kind))
            if values:
                print(f"\n{kind}: {len(values)} buffers, median |error| {values[len(values) // 2]:.1f}%, "
                      f"max {values[-1]:.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
