"""Regenerate the generated blocks of README.md and docs/*.md from the real program, or check they are current.

Blocks are delimited by HTML comments, so they stay invisible on GitHub:
    <!-- cmd: gpumem hf meta-llama/Llama-2-70b-hf --bits 4 -->   output of that command (offline, 100 columns)
    <!-- help: gpumem hf -->                                      `gpumem hf --help`
    <!-- script: scripts/accuracy.py -->                          output of a script of this repo
    <!-- include: docs/benchmark.md#results -->                   a part of another file (between
                                                                  <!-- begin: results --> and <!-- end: results -->)
    <!-- end -->
Commands run in-process, offline, against the built-in snapshot with an empty cache, no colour and 80
columns (what a new user's terminal shows), so the output is the same on every machine.

    PYTHONPATH=src python scripts/update_readme.py          # rewrite README.md and docs/*.md
    PYTHONPATH=src python scripts/update_readme.py --check  # exit 1 if any of them is stale
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
import tempfile

from click.testing import CliRunner

from gpumem.cli import cli, main
from gpumem_dev.fixtures import ROOT

README = ROOT / "README.md"
DOCUMENTS = [README, *sorted((ROOT / "docs").glob("*.md"))]
WIDTH = 80
BLOCK = re.compile(r"(<!-- (cmd|help|script|include): (.+?) -->\n)(.*?)(<!-- end -->)", re.S)


def run_command(argv: list[str]) -> str:
    """Output of `gpumem ARGS` as a user sees it (stdout, then stderr), offline and deterministic."""
    env = {"HF_HUB_OFFLINE": "1", "NO_COLOR": "1", "COLUMNS": str(WIDTH), "TERM": "dumb"}
    with tempfile.TemporaryDirectory() as home, _environ({**env, "HF_HOME": home}):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(argv)
            except SystemExit:
                pass
    text = out.getvalue() + err.getvalue()
    return "\n".join(line.rstrip() for line in text.splitlines()).strip("\n") + "\n"


def help_text(command: list[str]) -> str:
    """`gpumem COMMAND --help` at a fixed width."""
    result = CliRunner().invoke(cli, [*command, "--help"], terminal_width=WIDTH, prog_name="gpumem")
    return result.output


def include(spec: str) -> str:
    """The part of a file between `<!-- begin: NAME -->` and `<!-- end: NAME -->`."""
    path, _, name = spec.partition("#")
    text = (ROOT / path).read_text()
    begin, end = f"<!-- begin: {name} -->", f"<!-- end: {name} -->"
    return text[text.index(begin) + len(begin):text.index(end)].strip("\n") + "\n"


def render(kind: str, spec: str) -> str:
    """The new content of one block."""
    if kind == "cmd":
        argv = shlex.split(spec)[1:]
        return f"```console\n$ {spec}\n{run_command(argv)}```\n"
    if kind == "help":
        return f"```text\n{help_text(shlex.split(spec)[1:])}```\n"
    if kind == "script":
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}  # the script imports gpumem and gpumem_dev
        result = subprocess.run([sys.executable, *shlex.split(spec)], cwd=ROOT, capture_output=True, text=True,
                                env=env)
        return f"```text\n$ python {spec}\n{result.stdout}```\n"
    return include(spec)


def regenerate(text: str) -> str:
    """README text with every generated block rewritten."""
    return BLOCK.sub(lambda m: m.group(1) + render(m.group(2), m.group(3)) + m.group(5), text)


@contextlib.contextmanager
def _environ(values: dict[str, str]):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def update_documents(argv: list[str]) -> int:
    """Rewrite README.md and docs/*.md, or with --check report whether they are current."""
    stale = []
    for path in DOCUMENTS:
        current = path.read_text()
        fresh = regenerate(current)
        if fresh != current:
            stale.append(path.relative_to(ROOT))
            if "--check" not in argv:
                path.write_text(fresh)
    if "--check" in argv and stale:
        print(f"stale: {', '.join(map(str, stale))}: run python scripts/update_readme.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(update_documents(sys.argv[1:]))
