"""Shared test set-up: a hermetic environment and loaders for the real-model fixtures."""

from __future__ import annotations

import pytest

from gpumem_dev import fakehub
from gpumem_dev.fixtures import FIXTURES, HUB_FIXTURES, load_fixture_json, manifest_tensors

__all__ = ["FIXTURES", "HUB_FIXTURES", "load_fixture_json", "manifest_tensors"]  # tests import them from here


@pytest.fixture(autouse=True)
def hermetic_env(tmp_path, monkeypatch):
    """Point every Hugging Face / gpumem location at a temp dir and drop any token or endpoint."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT", "HF_HUB_OFFLINE", "NO_COLOR", "FORCE_COLOR",
                 "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS", "GPUMEM_DEBUG", "GPUMEM_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
    yield


fake_hub = pytest.fixture(scope="session")(fakehub.fake_hub)


@pytest.fixture
def hub(fake_hub, monkeypatch):
    """The session's fake Hub as HF_ENDPOINT, with a clean request log and no faults."""
    fake_hub.reset_log()
    fake_hub.reset_faults()
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.endpoint)
    yield fake_hub
    fake_hub.reset_faults()


@pytest.fixture
def gpumem(capsys):
    """Run the real CLI entry point in-process: returns (exit code, stdout, stderr)."""
    from gpumem.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", help="Rewrite tests/golden/ from the current output.")
