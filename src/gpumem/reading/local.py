"""Inspect a local safetensors / GGUF file or model folder: headers only, tensors never loaded."""

from __future__ import annotations

import os
from pathlib import Path

from ..constants import SMALL_FILE_CAP
from ..errors import FormatError, GpumemError, NotFoundError, NoWeights
from ..model.layout import plan_layout
from ..model.types import RepoMetadata
from .fetch import build_weight_set, parse_json, read_weight_header, small_files_needed
from .files import open_regular, read_capped

_MAX_DEPTH = 3  # model folders nest components one level (diffusers); deeper trees are not models


def read_local(path: str) -> RepoMetadata:
    """Read a local file or folder into RepoMetadata (source "local"), as the Hub reader does."""
    target = Path(path).expanduser()
    if not target.exists():
        raise NotFoundError(f"{path}: no such file or folder")
    if not target.is_file() and not target.is_dir():
        raise FormatError(f"{path}: not a regular file or folder; refusing to read it")
    root = target.parent if target.is_file() else target
    paths = [target.name] if target.is_file() else _list_files(root)
    listed = set(paths)
    if target.is_file() and not target.name.endswith((".safetensors", ".gguf", ".bin")):
        raise NoWeights(f"{path} is not a safetensors, GGUF or pytorch_model.bin file",
                        hint="give a weights file (.safetensors, .gguf, pytorch_model.bin) or a model folder")
    layout = plan_layout(listed, "folder")
    # Only the weight files are stat-ed: a dangling link elsewhere in the folder (extra.txt) is none of ours.
    sizes = {file: _size(root / file, file) for plan in layout.sets for file in plan.files}
    documents = {p: _read_json(root / p, p) for p in small_files_needed(layout.sets, listed, {})}
    headers = {}
    for plan in layout.sets:
        if plan.format != "pytorch-bin":
            for file in plan.files:
                headers[file] = _read_header(root / file, plan.format, file, sizes[file])
    sets = tuple(build_weight_set(plan, sizes.get, listed, documents, headers) for plan in layout.sets)
    return RepoMetadata(str(target), "local", "local", sets, tuple(paths), layout.notes)


def _list_files(root: Path) -> list[str]:
    found: list[str] = []
    for folder, dirs, files in os.walk(root):
        depth = len(Path(folder).relative_to(root).parts)
        dirs[:] = [] if depth >= _MAX_DEPTH else [d for d in dirs if not d.startswith(".")]
        found.extend(str((Path(folder) / f).relative_to(root).as_posix()) for f in files if not f.startswith("."))
    return found


def _size(file: Path, name: str) -> int:
    try:
        return file.stat().st_size
    except OSError as exc:
        raise _unreadable(name, exc) from None


def _read_header(file: Path, fmt: str, name: str, size: int):
    """A weight file's header through a regular-file handle; no single read over the 16 MiB cap."""
    try:
        with open_regular(file, name) as handle:
            def read(start: int, length: int) -> bytes:
                handle.seek(start)
                return handle.read(min(length, SMALL_FILE_CAP))
            return read_weight_header(read, fmt, name, size)
    except OSError as exc:
        raise _unreadable(name, exc) from None


def _read_json(file: Path, name: str) -> dict:
    return parse_json(read_capped(file, SMALL_FILE_CAP, name), name)


def _unreadable(name: str, exc: OSError) -> GpumemError:
    return GpumemError(f"{name}: cannot read ({exc.strerror or exc})")
