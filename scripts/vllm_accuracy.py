"""Predicted vs logged vLLM KV pools and weights, as docs/accuracy.md quotes them.

    PYTHONPATH=src python scripts/vllm_accuracy.py

The code is gpumem_dev.vllm_accuracy, which the tests import."""

import sys

from gpumem_dev.vllm_accuracy import main

sys.exit(main())
