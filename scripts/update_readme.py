"""Regenerate (or with --check, check) the generated blocks of README.md and docs/*.md:
`PYTHONPATH=src python scripts/update_readme.py [--check]`; the code is gpumem_dev.readme, which the tests import."""

import sys

from gpumem_dev.readme import update_documents

sys.exit(update_documents(sys.argv[1:]))
