"""The H200 accuracy table that docs/accuracy.md quotes.

    PYTHONPATH=src python scripts/accuracy.py

The code is gpumem_dev.accuracy, which the tests import."""

import sys

from gpumem_dev.accuracy import main

sys.exit(main())
