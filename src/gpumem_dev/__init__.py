"""gpumem's development tooling: the loopback fake Hub, fixture loaders and builders, the fuzzer.

Not part of the gpumem wheel (pyproject's package list names `gpumem` only). It lives in `src/` beside gpumem so
the one `PYTHONPATH=src` (or pytest's `pythonpath = ["src"]`) makes both importable: tests, scripts and the
builders import it by name instead of reaching into each other's folders. Builders run as modules:

    PYTHONPATH=src python -m gpumem_dev.build_snapshot        # src/gpumem/data/snapshot from fixtures/hub
    PYTHONPATH=src python -m gpumem_dev.make_gguf_fixtures    # fixtures/gguf
    PYTHONPATH=src python -m gpumem_dev.fuzz --seconds 60     # the long fuzz run
"""
