"""Golden outputs: table, Markdown, CSV and JSON renderings of fixture repos served by the fake Hub.

Rendered at 100 columns without colour. `pytest tests/test_golden.py --update-golden` rewrites them;
review the diff before committing.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree

import pytest
from conftest import FIXTURES

GOLDEN = FIXTURES.parent / "tests" / "golden"

CASES = {
    "hf-gpt2-table.txt": ("hf", "openai-community/gpt2"),
    "hf-llama2-7b-table.txt": ("hf", "meta-llama/Llama-2-7b-hf", "--token", "hf_fakehub_granted_0123456789abcdef",
                               "--gpu", "RTX 4090", "--context", "2048", "--concurrency", "4"),
    "hf-mixtral-markdown.md": ("hf", "mistralai/Mixtral-8x7B-v0.1", "--format", "markdown", "--gpu", "H100"),
    "hf-qwen-json.json": ("hf", "Qwen/Qwen2.5-7B", "--json", "--gpu", "L40S", "--tp", "2"),
    "compare-table.txt": ("compare", "openai-community/gpt2", "Qwen/Qwen2.5-7B", "microsoft/Phi-3-mini-4k-instruct"),
    "compare-csv.csv": ("compare", "openai-community/gpt2", "Qwen/Qwen2.5-7B", "--format", "csv"),
    "fit-phi3-table.txt": ("fit", "--gpu", "T4", "microsoft/Phi-3-mini-4k-instruct"),
    "calc-70b.txt": ("calc", "--params", "70B", "--bits", "4", "--gpu", "L4"),
}


@pytest.fixture
def plain(hub, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("NO_COLOR", "1")
    return hub


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_output(plain, gpumem, request, name):
    code, out, _ = gpumem(*CASES[name], "--no-cache") if CASES[name][0] != "calc" else gpumem(*CASES[name])
    assert code == 0
    path = GOLDEN / name
    if request.config.getoption("--update-golden"):
        path.write_text(out)
    assert out == path.read_text()


def test_json_golden_is_the_documented_schema():
    report = json.loads((GOLDEN / "hf-qwen-json.json").read_text())
    assert report["schema_version"] == 1
    assert {"repo_id", "revision", "source", "parameters", "stored_elements", "weight_bytes", "formula",
            "recommendations", "serving"} <= set(report)
    assert set(report["formula"]) == {"bits", "overhead", "memory_gb"}
    assert {"tp", "max_concurrency"} <= set(report["recommendations"][0])
    assert report["serving"]["tp"] == 2


def test_no_color_and_pipes_carry_no_escape_codes(hub, gpumem, monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")  # as if on a terminal
    code, coloured, _ = gpumem("hf", "openai-community/gpt2", "--no-cache")
    assert code == 0 and "\x1b[" in coloured
    monkeypatch.setenv("NO_COLOR", "1")
    code, plain_out, plain_err = gpumem("hf", "openai-community/gpt2", "--no-cache")
    assert code == 0 and "\x1b[" not in plain_out + plain_err
    monkeypatch.delenv("FORCE_COLOR")
    monkeypatch.delenv("NO_COLOR")
    code, piped, _ = gpumem("hf", "openai-community/gpt2", "--no-cache")
    assert "\x1b[" not in piped


def test_narrow_terminals_stay_within_their_width(plain, gpumem, monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    code, out, _ = gpumem("hf", "Qwen/Qwen2.5-7B", "--no-cache")
    assert code == 0 and max(len(line) for line in out.splitlines()) <= 60


def test_svg_export_is_valid_svg(plain, gpumem, tmp_path):
    target = tmp_path / "report.svg"
    code, out, _ = gpumem("hf", "openai-community/gpt2", "--no-cache", "--svg", str(target))
    assert code == 0
    root = ElementTree.parse(target).getroot()
    assert root.tag.endswith("svg")
    assert "124,439,808" in target.read_text().replace("&#160;", " ")
    assert not list(tmp_path.glob("*.part"))


def test_notes_go_to_stderr_and_json_stays_parseable(hub, gpumem):
    code, out, err = gpumem("hf", "meta-llama/Llama-2-70b-hf", "--json", "--no-cache")
    assert code == 0 and json.loads(out)["source"] == "snapshot"
    assert err.startswith("Note: ")
    code, out, err = gpumem("hf", "meta-llama/Llama-2-70b-hf", "--json", "--no-cache", "--quiet")
    assert err == ""


def test_progress_appears_only_on_a_terminal_after_a_moment(monkeypatch, capsys):
    from gpumem import progress

    quiet_run = progress.ReadProgress(3, quiet=False)  # stderr is captured: not a terminal
    with quiet_run:
        quiet_run.header_read("model-00001-of-00002.safetensors")
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(progress.sys.stderr, "isatty", lambda: True)
    monkeypatch.setattr(progress.ReadProgress, "DELAY_S", 0.0)
    shown = progress.ReadProgress(3, quiet=False)
    with shown:
        for repo in ("a/b", "c/d"):
            shown.header_read("model.safetensors")
            shown.repo_done(repo)
    assert shown._progress is not None  # the bar was started, and stopped on exit
    silenced = progress.ReadProgress(3, quiet=True)
    with silenced:
        silenced.header_read("model.safetensors")
    assert silenced._progress is None
