"""The docs cannot drift: README's generated blocks match the real program, every command is documented."""

from __future__ import annotations

import re
import tomllib

import click
import pytest
from conftest import FIXTURES

from gpumem.cli import cli
from gpumem_dev import readme

ROOT = FIXTURES.parent
README = (ROOT / "README.md").read_text()
COMMANDS_DOC = (ROOT / "docs" / "commands.md").read_text()
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 300


def commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in sorted(group.commands.items()):
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from commands(command, (*prefix, name))


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_generated_blocks_are_current(path):
    text = path.read_text()
    assert readme.regenerate(text) == text, f"{path.name} is stale: run python scripts/update_readme.py"


@pytest.mark.parametrize(("path", "command"), list(commands(cli)), ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_every_command_has_help_and_a_reference_entry(path, command):
    assert command.help and command.help.strip()
    assert f"<!-- help: gpumem {' '.join(path)} -->" in COMMANDS_DOC


def test_readme_is_short_and_every_link_resolves():
    assert len(README.splitlines()) <= README_MAX_LINES
    for path in DOCUMENTS:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", path.read_text()):
            if re.match(r"[\w-]+(\.[\w-]+)+/", target):  # a host name written without its scheme, not a file
                continue
            assert (path.parent / target).exists(), f"{path.name} links to {target}, which does not exist"
    for doc in (ROOT / "docs").glob("*.md"):
        assert f"docs/{doc.name}" in README, f"README does not link docs/{doc.name}"


def test_readme_starts_with_the_two_setup_commands():
    head = README[:README.index("## What it looks like")]
    assert "pip install . && .venv/bin/gpumem hf meta-llama/Llama-2-70b-hf --bits 4" in head
    assert 'pip install -e ".[test]" && .venv/bin/python -m pytest' in head
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install -q -e ".[test]"' in ci and ci.rstrip().endswith(".venv/bin/python -m pytest")
    assert ".venv/bin/python -m ruff check src tests scripts\n.venv/bin/python -m mypy\n" in ci  # lint, types first


def test_package_metadata_for_pipx_uvx_and_the_hf_extension():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == {"gpumem": "gpumem.cli:run", "hf-gpumem": "gpumem.cli:run"}
    assert project["description"] and project["requires-python"] == ">=3.11"
    assert set(project["dependencies"]) >= {"click>=8.1", "certifi", "rich>=13"}


def test_version_and_python_m(gpumem):
    from importlib.metadata import PackageNotFoundError, version

    try:
        version("gpumem")
    except PackageNotFoundError:  # run from a source tree (PYTHONPATH=src): there is no installed version to show
        pytest.skip("gpumem is not installed (CI installs it)")
    code, out, _ = gpumem("--version")
    assert code == 0 and out.startswith("gpumem, version ")
