"""`hf gpumem` through the real Hugging Face CLI: the manifest gpumem writes is the one hf's dispatcher reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURES


def test_hf_gpumem_runs_gpumem_and_passes_its_exit_code(gpumem, tmp_path, monkeypatch):
    hf = Path(sys.executable).parent / "hf"
    env = {**os.environ, "HOME": str(tmp_path), "HF_HUB_DISABLE_UPDATE_CHECK": "1", "NO_COLOR": "1",
           "COLUMNS": "80", "PYTHONPATH": str(FIXTURES.parent / "src")}
    if not hf.is_file() or subprocess.run([hf, "extensions", "--help"], env=env, capture_output=True).returncode:
        pytest.skip("this huggingface_hub has no `hf extensions`")
    monkeypatch.setenv("HOME", str(tmp_path))
    code, out, _ = gpumem("hf-extension")
    assert code == 0 and "hf gpumem" in out
    manifest = json.loads((tmp_path / ".local/share/hf/extensions/hf-gpumem/manifest.json").read_text())
    assert manifest["short_name"] == "gpumem" and Path(manifest["executable_path"]).is_file()
    done = subprocess.run([hf, "gpumem", "calc", "--params", "7B", "--gpu", "L4"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and "7,000,000,000" in done.stdout and "L4" in done.stdout
    refused = subprocess.run([hf, "gpumem", "calc", "--params", "7"], env=env, capture_output=True, text=True,
                             timeout=120)
    assert refused.returncode == 2 and "did you mean 7B?" in refused.stderr
    listed = subprocess.run([hf, "extensions", "list", "--format", "json"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert "gpumem" in listed.stdout
