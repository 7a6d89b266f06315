"""The result objects gpumem's API returns and its renderers show (frozen, with `to_dict()`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..model.types import WeightCount
from ..planning.gpus import Recommendation
from ..planning.memory import FormulaResult, ServingEstimate
from ..planning.plans import RANKING, Plan

if TYPE_CHECKING:  # annotations only: a calc or hf report does not load the training model, calc no config
    from ..model.adapters import Adapter
    from ..model.architecture import Architecture
    from ..planning.engines import LoraSlots
    from ..planning.training import TrainingEstimate, TrainingPlan

SCHEMA_VERSION = 2  # 2: recommendations are plans (TP x PP x nodes, command, speed, price)
FORMULA_BITS = (16, 8, 4)  # the widths shown side by side


@dataclass(frozen=True)
class ComponentCount:
    """Counts of one component of a multi-component repo (diffusers: unet, vae, text_encoder, ...)."""

    name: str
    parameters: int | None
    weight_bytes: int

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"name": self.name, "parameters": self.parameters, "weight_bytes": self.weight_bytes}


@dataclass(frozen=True)
class ModelReport:
    """Everything gpumem answers about one model (or one GGUF variant of a repo)."""

    repo_id: str
    revision: str
    source: str  # "hub" | "cache" | "snapshot" | "local"
    format: str  # "safetensors" | "gguf" | "pytorch-bin"
    files: tuple[str, ...]
    count: WeightCount
    bits: float | None  # the width the formula uses: --bits, else the checkpoint's own
    formula: FormulaResult | None
    formula_by_bits: tuple[FormulaResult, ...]
    architecture: Architecture | None
    serving: ServingEstimate | None  # one GPU of the first plan
    recommendations: tuple[Plan, ...]  # ranked: RANKING
    file: str | None = None  # the GGUF variant this report is about
    variant: str | None = None  # its quantization label (Q4_K_M, ...), read from the file name
    estimated: bool = False  # parameters estimated (pickle-only repos), not read from headers
    components: tuple[ComponentCount, ...] = ()
    notes: tuple[str, ...] = field(default=())
    adapters: tuple[Adapter, ...] = ()  # PEFT adapters served on this model
    lora: LoraSlots | None = None  # vLLM's LoRA slots for them (at the breakdown's TP)

    @property
    def parameters(self) -> int | None:
        """The real parameter count of what gets loaded (the model and its adapters; None when unknown)."""
        if self.count.parameters is None:
            return None
        return self.count.parameters + sum(a.parameters for a in self.adapters)

    def to_dict(self) -> dict:
        """The documented JSON object (schema_version 2, docs/json.md); integers are exact bytes and counts."""
        quant = self.count.quantization
        data: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "repo_id": self.repo_id,
            "revision": self.revision,
            "source": self.source,
            "format": self.format,
            "parameters": self.parameters,
            "parameters_estimated": self.estimated,
            "stored_elements": dict(self.count.stored_elements),
            "weight_bytes": self.count.weight_bytes + sum(a.weight_bytes for a in self.adapters),
            "buffer_elements": self.count.buffer_elements,
            "quantization": None if quant is None else {
                "method": quant.method, "bits": quant.bits, "bits_per_weight": round(quant.bits_per_weight, 4),
                "quantized_parameters": quant.quantized_parameters, "side_data_bytes": quant.side_data_bytes,
            },
            "formula": self.formula.to_dict() if self.formula else None,
            "formula_by_bits": {str(f.bits): f.memory_gb for f in self.formula_by_bits},
            "serving": self.serving.to_dict() if self.serving else None,
            "recommendations": [r.to_dict() for r in self.recommendations],
            "ranking": RANKING,
            "files": list(self.files),
            "notes": list(self.notes),
        }
        if self.file is not None:
            data["file"] = self.file
            data["variant"] = self.variant
        if self.components:
            data["components"] = [c.to_dict() for c in self.components]
        if self.adapters:
            data["base_model"] = {"repo_id": self.repo_id, "parameters": self.count.parameters,
                                  "weight_bytes": self.count.weight_bytes}
            data["adapters"] = [a.to_dict() for a in self.adapters]
            if len(self.adapters) == 1:
                data["adapter"] = data["adapters"][0]
            data["lora_serving"] = self.lora.to_dict() if self.lora else None
        return data


@dataclass(frozen=True)
class CalcReport:
    """`gpumem calc`: the formula for a parameter count given by hand."""

    parameters: int
    bits: float
    formula: FormulaResult
    formula_by_bits: tuple[FormulaResult, ...]
    recommendations: tuple[Plan, ...]

    def to_dict(self) -> dict:
        """The keys of ModelReport.to_dict that apply to a bare parameter count."""
        return {
            "schema_version": SCHEMA_VERSION,
            "parameters": self.parameters,
            "formula": self.formula.to_dict(),
            "formula_by_bits": {str(f.bits): f.memory_gb for f in self.formula_by_bits},
            "recommendations": [r.to_dict() for r in self.recommendations],
            "ranking": RANKING,
        }


@dataclass(frozen=True)
class FitReport:
    """`gpumem fit`: at which width, context and concurrency a model fits N GPUs of one type."""

    repo_id: str
    revision: str
    source: str
    gpu: str
    context: int
    parameters: int | None
    rows: tuple[tuple[float | None, Recommendation], ...]  # (bits, None = as stored; the fit at that width)
    file: str | None = None  # the GGUF variant checked
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """JSON-ready form: one entry per (bits, count)."""
        return {
            "schema_version": SCHEMA_VERSION, "repo_id": self.repo_id, "revision": self.revision,
            "source": self.source, "gpu": self.gpu, "context": self.context, "parameters": self.parameters,
            "options": [{"bits": bits, **rec.to_dict()} for bits, rec in self.rows],
            **({"file": self.file} if self.file else {}), "notes": list(self.notes),
        }


@dataclass(frozen=True)
class TrainingReport:
    """`gpumem train`: fine-tuning memory of one model, per GPU, and the plans that hold it."""

    repo_id: str
    revision: str
    source: str
    parameters: int
    estimate: TrainingEstimate
    plans: tuple[TrainingPlan, ...]
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict:
        """JSON: `training` (its per_gpu is the first plan's) and `recommendations` as plans."""
        first = self.plans[0].count if self.plans else 1
        return {"schema_version": SCHEMA_VERSION, "repo_id": self.repo_id, "revision": self.revision,
                "source": self.source, "parameters": self.parameters, "training": self.estimate.to_dict(first),
                "recommendations": [p.to_dict() for p in self.plans], "notes": list(self.notes)}
