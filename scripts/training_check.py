"""The training model against published fine-tuning measurements, as docs/training.md quotes it.

    PYTHONPATH=src python scripts/training_check.py

The code is gpumem_dev.training_check, which the tests import."""

from gpumem_dev.training_check import main

main()
