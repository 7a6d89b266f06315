"""Golden outputs: table, Markdown, CSV and JSON renderings of fixture repos served by the fake Hub.

Tables are rendered at 80 and 120 columns without colour, piped. `pytest tests/test_golden.py --update-golden` rewrites them;
review the diff before committing.
"""

from __future__ import annotations

import json

import pytest
from conftest import FIXTURES

GOLDEN = FIXTURES.parent / "tests" / "golden"

CASES = {
    "hf-gpt2-table": ("hf", "openai-community/gpt2"),
    "hf-llama2-7b-table": ("hf", "meta-llama/Llama-2-7b-hf", "--token", "hf_fakehub_granted_0123456789abcdef",
                           "--gpu", "RTX 4090", "--context", "2048", "--concurrency", "4"),
    "hf-mixtral-markdown.md": ("hf", "mistralai/Mixtral-8x7B-v0.1", "--format", "markdown", "--gpu", "H100"),
    "hf-mixtral-csv.csv": ("hf", "mistralai/Mixtral-8x7B-v0.1", "--format", "csv", "--gpu", "H100"),
    "hf-qwen-json.json": ("hf", "Qwen/Qwen2.5-7B", "--json", "--gpu", "L40S", "--tp", "2"),
    "compare-table": ("compare", "openai-community/gpt2", "Qwen/Qwen2.5-7B", "microsoft/Phi-3-mini-4k-instruct"),
    "compare-csv.csv": ("compare", "openai-community/gpt2", "Qwen/Qwen2.5-7B", "--format", "csv"),
    "compare-markdown.md": ("compare", "openai-community/gpt2", "Qwen/Qwen2.5-7B", "--format", "markdown"),
    "fit-phi3-table": ("fit", "--gpu", "T4", "microsoft/Phi-3-mini-4k-instruct"),
    "fit-phi3-markdown.md": ("fit", "--gpu", "T4", "microsoft/Phi-3-mini-4k-instruct", "--format", "markdown"),
    "calc-70b": ("calc", "--params", "70B", "--bits", "4", "--gpu", "L4"),
    "calc-70b-csv.csv": ("calc", "--params", "70B", "--bits", "4", "--gpu", "L4", "--format", "csv"),
}


# Terminal tables at a narrow and a wide terminal; the other formats do not depend on the width.
GOLDEN_RUNS = [(f"{name}-{width}.txt", name, width) if "." not in name else (name, name, 100)
               for name in CASES for width in (80, 120)]
GOLDEN_RUNS = list(dict.fromkeys(GOLDEN_RUNS))


@pytest.mark.parametrize(("file", "name", "width"), GOLDEN_RUNS, ids=[run[0] for run in GOLDEN_RUNS])
def test_golden_output(hub, gpumem, monkeypatch, request, file, name, width):
    monkeypatch.setenv("COLUMNS", str(width))
    monkeypatch.setenv("NO_COLOR", "1")
    code, out, _ = gpumem(*CASES[name], "--no-cache") if CASES[name][0] != "calc" else gpumem(*CASES[name])
    assert code == 0
    path = GOLDEN / file
    if request.config.getoption("--update-golden"):
        path.write_text(out)
    assert out == path.read_text()


def test_json_golden_is_the_documented_schema():
    report = json.loads((GOLDEN / "hf-qwen-json.json").read_text())
    assert report["schema_version"] == 2
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


def test_notes_go_to_stderr_and_json_stays_parseable(hub, gpumem):
    code, out, err = gpumem("hf", "meta-llama/Llama-2-70b-hf", "--json", "--no-cache")
    assert code == 0 and json.loads(out)["source"] == "snapshot"
    assert err.startswith("Note: ")
    code, out, err = gpumem("hf", "meta-llama/Llama-2-70b-hf", "--json", "--no-cache", "--quiet")
    assert err == ""


def test_progress_appears_only_on_a_terminal_after_a_moment(monkeypatch, capsys):
    from gpumem.output import progress

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
        assert shown.shown.wait(10)  # built on a thread of its own: a callback (the HTTP thread) never waits
    assert shown._progress is not None  # the bar was started, and stopped on exit
    silenced = progress.ReadProgress(3, quiet=True)
    with silenced:
        silenced.header_read("model.safetensors")
    assert silenced._progress is None
