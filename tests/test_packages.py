"""The package layout's one rule (docs/architecture.md): each package imports only the ones before it.

model imports nothing of gpumem but errors and constants; reading and planning import model; output imports
model, reading and planning; api and cli (the top level) import anything. Checked on every import statement,
those inside functions and under TYPE_CHECKING included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import gpumem

ROOT = Path(gpumem.__file__).parent
BASE = {"errors", "constants"}
ALLOWED = {
    "model": {"model"} | BASE,
    "reading": {"reading", "model"} | BASE,
    "planning": {"planning", "model"} | BASE,
    "output": {"output", "model", "reading", "planning"} | BASE,
}


def imported_parts(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, the gpumem part imported: a package name or a top-level module) for each import of gpumem code
    in `path`, a module of the package at `root`."""
    package = path.relative_to(root.parent).parent.parts  # ("gpumem", "planning", "engines")
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[:len(package) - node.level + 1]) + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "gpumem":
                base = node.module.split(".")
            else:
                continue
            if len(base) > 1:
                found.append((node.lineno, base[1]))
            else:  # `from . import x` at the top level, or `from gpumem import x`
                found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name.split(".")[1]) for a in node.names
                      if a.name.startswith("gpumem.")]
    return found


def test_each_package_imports_only_the_ones_before_it():
    wrong = []
    for package, allowed in ALLOWED.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            wrong += [f"{path.relative_to(ROOT)}:{line} imports {part}" for line, part in imported_parts(path)
                      if part not in allowed]
    assert wrong == []


def test_the_rule_sees_wrong_way_imports_of_every_form(tmp_path):
    probe = tmp_path / "gpumem" / "model" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text("from ..output.units import GB\nfrom gpumem.reading import hub\nfrom .. import api\n"
                     "import gpumem.planning.memory\nfrom .types import TensorInfo\nfrom ..errors import BadConfig\n")
    assert [part for _, part in imported_parts(probe, tmp_path / "gpumem")] == [
        "output", "reading", "api", "planning", "model", "errors"]
