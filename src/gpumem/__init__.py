"""gpumem: how much GPU memory a Hugging Face model needs, and which GPUs to rent.

The public API lives in `gpumem.api` and is re-exported here lazily, so importing gpumem (and
starting the CLI) stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["GpumemError", "HubOptions", "calc", "estimate", "fit", "inspect_local", "inspect_repo", "inspect_repos",
           "open_client"]


def __getattr__(name: str) -> Any:
    if name == "GpumemError":
        return import_module(".errors", __name__).GpumemError
    if name in __all__:
        return getattr(import_module(".api", __name__), name)
    if name == "__version__":
        from importlib.metadata import version

        return version("gpumem")
    raise AttributeError(f"module 'gpumem' has no attribute {name!r}")
