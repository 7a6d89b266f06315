"""Forgiving input and messages that say what the user did not know, through the real CLI and the fake Hub."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from gpumem.errors import UsageError
from gpumem.inputs import gpu_choice_note, one_revision, parse_context, parse_repo_reference
from gpumem_dev.fakehub import formats as fmt

GGUF_REPO = "TheBloke/Llama-2-7B-GGUF"


@pytest.mark.parametrize(("text", "tokens"), [("4096", 4096), ("32k", 32_768), ("128K", 131_072),
                                              ("1M", 1_048_576), ("32,768", 32_768), ("1.5k", 1536)])
def test_contexts_as_model_cards_write_them(text, tokens):
    assert parse_context(text) == tokens


@pytest.mark.parametrize("text", ["", "12q", "-5", "0.3k", "4096.5", "1,2", "2000M"])
def test_contexts_that_are_not_a_number_of_tokens(text):
    with pytest.raises(UsageError):
        parse_context(text)


@pytest.mark.parametrize(("text", "expected"), [
    ("Qwen/Qwen3-8B", ("Qwen/Qwen3-8B", None)),
    ("https://huggingface.co/Qwen/Qwen3-8B", ("Qwen/Qwen3-8B", None)),
    ("https://huggingface.co/Qwen/Qwen3-8B/", ("Qwen/Qwen3-8B", None)),
    ("huggingface.co/Qwen/Qwen3-8B", ("Qwen/Qwen3-8B", None)),
    ("https://hf.co/Qwen/Qwen3-8B/tree/v1.0", ("Qwen/Qwen3-8B", "v1.0")),
    ("https://huggingface.co/Qwen/Qwen3-8B/blob/abc123/config.json", ("Qwen/Qwen3-8B", "abc123")),
    ("https://huggingface.co/Qwen/Qwen3-8B/tree/refs%2Fpr%2F5", ("Qwen/Qwen3-8B", "refs/pr/5")),
    ("https://huggingface.co/Qwen/Qwen3-8B/tree/refs/pr/5", ("Qwen/Qwen3-8B", "refs/pr/5")),
])
def test_pasted_hub_urls_are_repo_ids_with_their_revision(text, expected):
    assert parse_repo_reference(text) == expected


def test_urls_that_do_not_name_a_model_say_so():
    with pytest.raises(UsageError, match="a dataset, not a model"):
        parse_repo_reference("https://huggingface.co/datasets/openai/gsm8k")
    with pytest.raises(UsageError, match="does not name a model repo"):
        parse_repo_reference("https://huggingface.co/Qwen")
    assert parse_repo_reference("https://example.com/a/b") == ("https://example.com/a/b", None)  # left to validation


def test_one_revision_per_run():
    assert one_revision([("a/b", None)], "main") == "main"
    assert one_revision([("a/b", "v1"), ("c/d", None)], "main") == "v1"
    with pytest.raises(UsageError, match="one revision per run"):
        one_revision([("a/b", "v1"), ("c/d", "v2")], "main")


def test_a_short_gpu_name_says_which_variant_it_picked():
    catalog = ["A100 40GB", "A100 80GB", "H100 PCIe", "H100 SXM", "L4"]
    assert "means the A100 80GB (also in the catalog: A100 40GB" in gpu_choice_note("a100", "A100 80GB", catalog)
    assert gpu_choice_note("a100-80gb", "A100 80GB", catalog) is None
    assert gpu_choice_note("L4", "L4", catalog) is None


# -- through the CLI ---------------------------------------------------------------------------------


def test_url_context_and_several_gpus(hub, gpumem):
    code, out, err = gpumem("hf", f"{hub.endpoint}/Qwen/Qwen2.5-7B/tree/main", "--context", "32k", "--gpu", "a100",
                            "--gpu", "L40S", "--json", "--no-cache")
    assert code == 0, err
    report = json.loads(out)
    assert report["repo_id"] == "Qwen/Qwen2.5-7B" and report["serving"]["context"] == 32_768
    assert {r["gpu"] for r in report["recommendations"]} == {"A100 80GB", "L40S"}
    assert "Note: --gpu a100 means the A100 80GB" in err


def test_gguf_variant_label_for_file(hub, gpumem):
    hub.add_repo(fmt.llama2_gguf_repo(GGUF_REPO))
    code, out, err = gpumem("hf", GGUF_REPO, "--file", "q4_k_m", "--json", "--no-cache")
    assert code == 0, err
    assert json.loads(out)["file"] == "llama-2-7b.Q4_K_M.gguf"
    code, _, err = gpumem("hf", GGUF_REPO, "--file", "Q2_K", "--no-cache")
    assert code == 2 and "llama-2-7b.Q4_K_M.gguf (Q4_K_M)" in err


def test_fit_on_a_multi_variant_gguf_names_each_variant(hub, gpumem, monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    hub.add_repo(fmt.llama2_gguf_repo(GGUF_REPO))
    code, out, _ = gpumem("fit", "--gpu", "RTX 4090", GGUF_REPO, "--no-cache")
    titles = [line for line in out.splitlines() if " on RTX 4090" in line]
    assert code == 0 and len(titles) == len(set(titles)) == 3 and "Q4_K_M" in " ".join(titles)


def test_small_parameter_counts_ask_for_the_unit(gpumem):
    code, out, err = gpumem("calc", "--params", "70")
    assert code == 2 and out == "" and "did you mean 70B?" in err
    assert gpumem("calc", "--params", "1900000")[0] == 0  # every digit: taken as given


def test_bare_gpumem_prints_the_help_without_an_error(gpumem):
    code, out, err = gpumem()
    assert code == 0 and out.startswith("Usage: gpumem") and "Error" not in out + err


def test_context_capped_note_only_when_the_user_asked(hub, gpumem):
    code, _, err = gpumem("hf", "openai-community/gpt2", "--no-cache")
    assert code == 0 and "capped" not in err
    code, _, err = gpumem("hf", "openai-community/gpt2", "--no-cache", "--context", "8k")
    assert "Note: context capped at the model's maximum of 1,024 tokens (asked 8,192)" in err


def test_fit_caps_the_context_at_the_model_maximum(hub, gpumem):
    code, out, err = gpumem("fit", "--gpu", "T4", "openai-community/gpt2", "--json", "--no-cache", "--context", "8k")
    assert code == 0 and json.loads(out)["context"] == 1024 and "capped" in err
    code, out, err = gpumem("fit", "--gpu", "T4", "openai-community/gpt2", "--no-cache")
    assert "sequences of 1,024 tokens" in out and "capped" not in err


def test_snapshot_notes_name_nothing_that_is_not_installed(gpumem, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = gpumem("compare", "meta-llama/Llama-2-70b-hf", "Qwen/Qwen2.5-7B", "--no-cache")
    assert code == 0 and "fixtures/" not in err
    assert err.count("offline: answered from the built-in snapshot") == 1  # once per run, not per repo


def test_gated_without_token_says_how_to_get_live_data(hub, gpumem):
    code, _, err = gpumem("hf", "meta-llama/Llama-2-70b-hf", "--no-cache")
    assert code == 0 and "gated and no token was given" in err and "--token or set HF_TOKEN" in err
    assert "network access" not in err


def test_local_speaks_of_files_and_a_lone_file_without_config_shows_no_sequences(gpumem, tmp_path):
    save_file({"proj.weight": np.zeros((64, 64), np.float16)}, str(tmp_path / "model.safetensors"))
    code, out, err = gpumem("local", str(tmp_path / "model.safetensors"), "--gpu", "T4")
    assert code == 0, err
    assert "Read from" in out and "Revision" not in out and "local (local)" not in out
    t4 = next(line for line in out.splitlines() if line.startswith("T4"))
    assert "n/a" in t4.split() and "sequences n/a" in " ".join(out.split())


def test_local_errors_speak_of_files_and_folders(gpumem, tmp_path):
    code, _, err = gpumem("local", str(tmp_path))
    assert code == 5 and err.startswith("Error: the folder has no files")
    (tmp_path / "notes.txt").write_text("hello")
    code, _, err = gpumem("local", str(tmp_path))
    assert code == 5 and "no weight files in this folder" in err and "repo" not in err
    code, _, err = gpumem("local", str(tmp_path / "notes.txt"))
    assert code == 5 and "notes.txt is not a safetensors, GGUF or pytorch_model.bin file" in err


# -- library words, CLI flags: errors name parameters as the library spells them; the CLI says its flags ------

def test_a_hint_names_the_parameter_and_the_cli_says_the_flag(gpumem):
    from gpumem import api
    from gpumem.errors import OfflineMiss
    from gpumem.reading.sources import HubOptions

    with pytest.raises(OfflineMiss) as info:
        api.inspect_repo("acme/not-in-the-snapshot", options=HubOptions(offline=True))
    assert info.value.hint == "run once with network access (without offline / HF_HUB_OFFLINE=1)"
    assert info.value.hint_options == ("offline",)
    code, _, err = gpumem("hf", "acme/not-in-the-snapshot", "--offline")
    assert code == 6 and "Hint: run once with network access (without --offline / HF_HUB_OFFLINE=1)" in err


def test_the_deadline_is_the_timeout_flag_and_only_whole_words_change():
    from gpumem.cli import _in_flag_words
    from gpumem.errors import HubUnavailable

    error = HubUnavailable("the deadline passed before the Hub answered", hint="retry later or raise deadline",
                           hint_options=("deadline",))
    worded = _in_flag_words(error)
    assert (worded.message, worded.hint) == ("the deadline passed before the Hub answered", "retry later or raise --timeout")
    assert error.hint == "retry later or raise deadline"  # the library's error is left as it was
    token = HubUnavailable("x", hint="request access at https://hub.example/org/token, then pass token",
                           hint_options=("token",))
    assert _in_flag_words(token).hint == "request access at https://hub.example/org/token, then pass --token"
    usage = UsageError("kv_dtype must be one of auto, fp8", option="kv_dtype")
    assert _in_flag_words(usage).message == "--kv-dtype must be one of auto, fp8"
