"""Shared test set-up: a hermetic environment and loaders for the real-model fixtures."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from gpumem_dev import fakehub
from gpumem_dev.fixtures import FIXTURES, HUB_FIXTURES, load_fixture_json, manifest_tensors

__all__ = ["FIXTURES", "HUB_FIXTURES", "assert_interrupted_at_once", "load_fixture_json",
           "manifest_tensors"]  # tests import them from here


@pytest.fixture(autouse=True)
def hermetic_env(tmp_path, monkeypatch):
    """Point every Hugging Face / gpumem location at a temp dir and drop any token or endpoint."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT", "HF_HUB_OFFLINE", "NO_COLOR", "FORCE_COLOR",
                 "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS", "GPUMEM_DEBUG", "GPUMEM_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
    yield


_LABEL = re.compile(r"^(Note|Hint|Error): ")


def unwrap(err: str) -> str:
    """stderr with each note, hint or error on one line again: gpumem wraps them at the terminal's width with the
    text indented under the label (tests/test_output.py checks that layout; the others read the words)."""
    lines: list[str] = []
    indent = None
    for line in err.splitlines():
        if indent and line.startswith(indent) and line[len(indent):][:1].strip():
            lines[-1] += " " + line[len(indent):]
            continue
        if indent and lines[-1].endswith(" \\") and line.startswith(indent + "    "):  # a long `command`
            lines[-1] = lines[-1][:-2] + " " + line.strip()
            continue
        label = _LABEL.match(line)
        indent = " " * len(label.group(0)) if label else None
        lines.append(line)
    return "".join(line + "\n" for line in lines)


fake_hub = pytest.fixture(scope="session")(fakehub.fake_hub)


@pytest.fixture(scope="session")
def ca(tmp_path_factory):
    """A throw-away certificate authority for HTTPS fake Hubs, and the path of its bundle (to trust it)."""
    import trustme

    authority = trustme.CA()
    bundle = tmp_path_factory.mktemp("ca") / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    return authority, str(bundle)


@pytest.fixture
def hub(fake_hub, monkeypatch):
    """The session's fake Hub as HF_ENDPOINT, with a clean request log and no faults."""
    fake_hub.reset_log()
    fake_hub.reset_faults()
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.endpoint)
    yield fake_hub
    fake_hub.reset_faults()


def _run_cli(capsys, *args: str) -> tuple[int, str, str]:
    from gpumem.cli import main

    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def gpumem(capsys):
    """Run the real CLI entry point in-process: returns (exit code, stdout, stderr with each note, hint and error
    on one line again: `unwrap`; `gpumem_raw` gives stderr as printed)."""

    def run(*args: str) -> tuple[int, str, str]:
        code, out, err = _run_cli(capsys, *args)
        return code, out, unwrap(err)

    return run


@pytest.fixture
def gpumem_raw(capsys):
    """The CLI in-process, stdout and stderr exactly as printed (wrapped at COLUMNS)."""
    return lambda *args: _run_cli(capsys, *args)


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", help="Rewrite tests/golden/ from the current output.")


def assert_interrupted_at_once(endpoint: str, args: Sequence[str], started: Callable[[], bool]) -> None:
    """`python -m gpumem ARGS` against the Hub at `endpoint`, sent SIGINT once `started()` (its requests are in
    flight; at most 20 s): it must exit 130 within 1.5 s, its last line "Interrupted.", no traceback."""
    env = {**os.environ, "HF_ENDPOINT": endpoint, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    # A shell without job control starts background jobs with SIGINT ignored, and Python then keeps ignoring it
    # (CI may run us that way): give the child the default disposition, as a terminal's foreground job has.
    process = subprocess.Popen([sys.executable, "-m", "gpumem", *args], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 20
        while not started() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started()
        sent = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=10)
        elapsed = time.monotonic() - sent
    finally:
        process.kill()
    assert process.returncode == 130 and err.strip().splitlines()[-1] == "Interrupted.", err
    assert "Traceback" not in err and elapsed < 1.5
