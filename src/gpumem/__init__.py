"""gpumem: how much GPU memory a Hugging Face model needs, and which GPUs to rent.

The public API (functions in `gpumem.api`, and the types callers pass and receive) is re-exported here
lazily, so importing gpumem (and starting the CLI) stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

# name -> the module that defines it
_EXPORTS = {
    **dict.fromkeys(["HubOptions", "RepoOutcome", "calc", "estimate", "estimate_many", "fit", "fit_many",
                     "inspect_base", "inspect_local", "inspect_repo", "inspect_repos", "is_adapter", "open_client",
                     "parse_parameter_count", "train"], ".api"),
    **dict.fromkeys(["ServingEstimate", "Capacity", "FormulaResult"], ".planning.memory"),
    **dict.fromkeys(["ServingOptions", "TrainingOptions"], ".planning.options"),
    **dict.fromkeys(["ModelReport", "CalcReport", "FitReport", "TrainingReport", "ComponentCount"], ".output.report"),
    **dict.fromkeys(["ModelSummary", "TensorClass", "TensorInfo", "WeightCount", "WeightSet", "RepoMetadata",
                     "Quantization", "Note"], ".model.types"),
    **dict.fromkeys(["Engine", "ENGINES", "GpuTarget", "PlanStart", "get_engine"], ".planning.engines"),
    **dict.fromkeys(["PlanRequest", "Plan"], ".planning.plans"),
    **dict.fromkeys(["Gpu", "Recommendation", "load_catalog", "find_gpu"], ".planning.gpus"),
    **dict.fromkeys(["Architecture"], ".model.architecture"),
    **dict.fromkeys(["TrainingBase"], ".planning.training"),
    **dict.fromkeys(["GpumemError", "UsageError", "AdapterTraining", "NotFoundError", "AccessError", "FormatError",
                     "NetworkError", "ExitCode"], ".errors"),
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name], __name__), name)
    if name == "__version__":
        from importlib.metadata import version

        return version("gpumem")
    raise AttributeError(f"module 'gpumem' has no attribute {name!r}")
