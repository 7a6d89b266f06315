"""Pure: from a repo's file list, decide which weight files to count, as one or more weight sets.

A repo may ship the same weights twice (safetensors and .bin, HF format and Mistral's
`consolidated.safetensors`, `*.fp16.safetensors` variants); gpumem counts one set and says which.
Multi-component repos (diffusers) give one set per component folder; GGUF repos one per variant.
"""

from __future__ import annotations

import posixpath
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from ..errors import NoWeights, UsageError
from .gguf_header import group_gguf_files, variant_label


class _Named(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def files(self) -> tuple[str, ...]: ...


T = TypeVar("T", bound=_Named)  # a WeightSetPlan or a read WeightSet: both have .name and .files

# Folders that hold copies of the weights in other formats or for other runtimes.
_IGNORED_FOLDERS = ("original", "onnx", "openvino", "coreml", "tflite", "flax", "tf", "mlx", "gguf_cache")
# An adapter's files: PEFT's save_pretrained writes adapter_config.json + adapter_model.safetensors
# (MLX writes adapter_config.json + adapters.safetensors: read too, so that it can be refused clearly).
ADAPTER_CONFIG = "adapter_config.json"
# transformers / diffusers variants: model.fp16.safetensors, sharded model.fp16-00001-of-00002.safetensors
_VARIANT = re.compile(r"\.(fp16|fp32|bf16|non_ema|ema)(-\d{5}-of-\d{5})?\.safetensors$")


@dataclass(frozen=True, slots=True)
class WeightSetPlan:
    """Files to read for one counted set of weights."""

    name: str  # "" for the repo root, the folder for a component, the variant for GGUF
    format: str  # "safetensors" | "gguf" | "pytorch-bin"
    folder: str  # "" or the component folder, where its config.json lives
    files: tuple[str, ...]  # weight files, in order
    index: str | None = None  # *.index.json beside them, if any


@dataclass(frozen=True, slots=True)
class Layout:
    """The plan for a whole repo, with notes on what was left out and why."""

    sets: tuple[WeightSetPlan, ...]
    notes: tuple[str, ...] = ()


def plan_layout(paths: Iterable[str], where: str = "repo") -> Layout:
    """Choose the weight sets to count from a repo's file paths; NoWeights if there are none (saying `where`:
    "repo", or "folder" for local files)."""
    paths = sorted(set(paths))
    by_folder: dict[str, list[str]] = defaultdict(list)
    for path in paths:
        by_folder[posixpath.dirname(path)].append(path)
    ggufs = [p for p in paths if p.endswith(".gguf") and not _ignored(p)]
    if ggufs:
        models, projector = split_projector(ggufs)
        extra = (projector,) if projector else ()
        gguf_notes = (f"multimodal: {projector} (the vision/audio projector llama.cpp loads with --mmproj) counted "
                      f"with every variant",) if projector else ()
        return Layout(tuple(WeightSetPlan(name, "gguf", posixpath.dirname(name), files + extra)
                            for name, files in group_gguf_files(models).items()), gguf_notes)
    notes: list[str] = []
    root_files = by_folder.get("", [])
    adapter_files = tuple(f for f in root_files if f.startswith("adapter") and f.endswith(".safetensors"))
    if ADAPTER_CONFIG in root_files and adapter_files:
        others = [f for f in root_files if f not in adapter_files]
        if _folder_set("", others, []) is None:  # nothing but the adapter: an adapter repo
            return Layout((WeightSetPlan("", "safetensors", "", adapter_files),))
        notes.append(f"the root also holds an adapter ({', '.join(adapter_files)}): counted the model's own weights")
        root_files = others
    root = _folder_set("", root_files, notes)
    components_wanted = "model_index.json" in paths or root is None
    sets = [root] if root else []
    if components_wanted:
        for folder in sorted(f for f in by_folder if f and "/" not in f and not _ignored(f + "/")):
            component = _folder_set(folder, by_folder[folder], notes)
            if component:
                sets.append(component)
    elif skipped := sorted({f.split("/")[0] for f in by_folder if f and _has_weights(by_folder[f])}):
        notes.append(f"counted the root weights only; other folders with weights left out: {', '.join(skipped)}")
    if not sets:
        raise NoWeights(_describe_missing(paths, where),
                        hint="gpumem reads safetensors, GGUF, or estimates from a pytorch_model.bin index")
    return Layout(tuple(sets), tuple(notes))


def _folder_set(folder: str, files: list[str], notes: list[str]) -> WeightSetPlan | None:
    safetensors = [f for f in files if f.endswith(".safetensors")]
    indexes = [f for f in files if f.endswith(".safetensors.index.json")]
    where = f"{folder}/: " if folder else ""  # the top folder goes unnamed
    if safetensors:
        variants = [f for f in safetensors if _VARIANT.search(f)]
        plain = [f for f in safetensors if f not in variants]
        if plain and variants:
            notes.append(f"{where}counted {', '.join(map(posixpath.basename, plain))}; "
                         f"left out variant files {', '.join(map(posixpath.basename, variants))}")
            safetensors = plain
        indexes = [i for i in indexes if not _VARIANT.search(i.removesuffix(".index.json"))]
        consolidated = [f for f in safetensors if _is_consolidated(f)]
        if consolidated and len(consolidated) < len(safetensors):
            notes.append(f"{where}counted the Hugging Face format files; left out the Mistral-format "
                         f"{', '.join(map(posixpath.basename, consolidated))}")
            safetensors = [f for f in safetensors if f not in consolidated]
            indexes = [i for i in indexes if not _is_consolidated(i)]  # the index of the shards kept
        if any(_is_bin_weights(f) for f in files):
            notes.append(f"{where}counted the safetensors files; left out the .bin copies")
        return WeightSetPlan(folder, "safetensors", folder, tuple(safetensors), next(iter(indexes), None))
    bins = [f for f in files if _is_bin_weights(f)]
    if bins:
        index = next((f for f in files if f.endswith(".bin.index.json")), None)
        return WeightSetPlan(folder, "pytorch-bin", folder, tuple(bins), index)
    return None


def is_adapter_set(plan: WeightSetPlan) -> bool:
    """Whether a weight set is an adapter's weights (read with the adapter_config.json beside them)."""
    return not plan.folder and all(f.startswith("adapter") for f in plan.files)


def _is_bin_weights(path: str) -> bool:
    """A pickled transformers / diffusers weight file (not training_args.bin, optimizer.bin, ...)."""
    return path.endswith(".bin") and posixpath.basename(path).startswith(("pytorch_model", "diffusion_pytorch_model"))


def _is_consolidated(path: str) -> bool:
    """Mistral's own format (consolidated.safetensors and its index), shipped beside the HF files."""
    return posixpath.basename(path).startswith("consolidated")


def _has_weights(files: list[str]) -> bool:
    return any(f.endswith((".safetensors", ".bin", ".gguf", ".pth", ".pt")) for f in files)


def _ignored(path: str) -> bool:
    return path.split("/")[0] in _IGNORED_FOLDERS if "/" in path else False


def _describe_missing(paths: list[str], where: str) -> str:
    others = sorted({posixpath.splitext(p)[1] for p in paths if posixpath.splitext(p)[1] in
                     {".pth", ".pt", ".h5", ".msgpack", ".onnx", ".ckpt", ".tflite", ".mlmodel", ".npz", ".ot"}})
    if others:
        return f"no safetensors, GGUF or pytorch_model.bin weights; the {where} has {', '.join(others)} files instead"
    return f"no weight files in this {where}" if paths else f"the {where} has no files"


# Projector precisions in the order llama.cpp's docs and model cards offer them (F16 is the usual download).
_PROJECTOR_PREFERENCE = ("f16", "bf16", "q8_0", "f32")


def split_projector(ggufs: Sequence[str]) -> tuple[list[str], str | None]:
    """The language-model GGUF files, and the multimodal projector (`mmproj-*.gguf`) to serve beside them."""
    projectors = [p for p in ggufs if "mmproj" in posixpath.basename(p).lower()]
    models = [p for p in ggufs if p not in projectors]
    if not projectors or not models:
        return list(ggufs), None

    def rank(path: str) -> int:
        name = posixpath.basename(path).lower()
        return next((i for i, tag in enumerate(_PROJECTOR_PREFERENCE) if tag in name), len(_PROJECTOR_PREFERENCE))
    return models, min(projectors, key=lambda p: (rank(p), p))


def pick_gguf_variant(sets: Sequence[T], wanted: str) -> T:
    """The GGUF weight set (plan or read set) a `--file` name means: its name, one of its files, a basename, or its
    variant label (Q4_0) when one file has it."""
    for weights in sets:
        if wanted in (weights.name, *weights.files) or weights.name.endswith("/" + wanted):
            return weights
    labelled = [w for w in sets if (variant_label(w.name) or "").lower() == wanted.lower()]  # --file Q4_0
    if len(labelled) == 1:
        return labelled[0]
    raise UsageError(f"no GGUF file {wanted!r} in this repo",
                     hint="choose one of: " + ", ".join(f"{w.name} ({variant_label(w.name)})" if variant_label(w.name)
                                                        else w.name for w in sets))
