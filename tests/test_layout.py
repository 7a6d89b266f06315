"""Which weight files gpumem counts, from real repo listings and the layouts people publish."""

from __future__ import annotations

import pytest
from conftest import load_fixture_json

from gpumem.errors import NoWeights
from gpumem.model.layout import plan_layout


def siblings(folder: str) -> list[str]:
    return [s["rfilename"] for s in load_fixture_json(folder, "hf_api_model_info.json")["siblings"]]


def test_llama2_counts_safetensors_and_leaves_out_bin_copies():
    layout = plan_layout(siblings("meta-llama__Llama-2-7b-hf"))
    (weights,) = layout.sets
    assert weights.format == "safetensors"
    assert weights.files == ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")
    assert weights.index == "model.safetensors.index.json"
    assert any(".bin copies" in note for note in layout.notes)


def test_llama3_ignores_the_original_folder():
    layout = plan_layout(siblings("meta-llama__Meta-Llama-3-8B"))
    assert [s.name for s in layout.sets] == [""]
    assert any("original" in note for note in layout.notes)


def test_gpt2_single_file():
    (weights,) = plan_layout(siblings("openai-community__gpt2")).sets
    assert weights.files == ("model.safetensors",) and weights.index is None


CASES = [
    (["consolidated.safetensors", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
      "model.safetensors.index.json", "params.json"],
     [("", "safetensors", ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"))], "Mistral-format"),
    (["consolidated.safetensors", "params.json"], [("", "safetensors", ("consolidated.safetensors",))], None),
    (["model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
      "unet/diffusion_pytorch_model.fp16.safetensors", "vae/diffusion_pytorch_model.safetensors",
      "text_encoder/model.safetensors"],
     [("text_encoder", "safetensors", ("text_encoder/model.safetensors",)),
      ("unet", "safetensors", ("unet/diffusion_pytorch_model.safetensors",)),
      ("vae", "safetensors", ("vae/diffusion_pytorch_model.safetensors",))], "variant files"),
    (["pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin", "pytorch_model.bin.index.json"],
     [("", "pytorch-bin", ("pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"))], None),
    (["llama-2-7b.Q4_K_M.gguf", "llama-2-7b.Q8_0.gguf", "big-Q8_0-00002-of-00002.gguf", "big-Q8_0-00001-of-00002.gguf"],
     [("big-Q8_0.gguf", "gguf", ("big-Q8_0-00001-of-00002.gguf", "big-Q8_0-00002-of-00002.gguf")),
      ("llama-2-7b.Q4_K_M.gguf", "gguf", ("llama-2-7b.Q4_K_M.gguf",)),
      ("llama-2-7b.Q8_0.gguf", "gguf", ("llama-2-7b.Q8_0.gguf",))], None),
]


def test_training_bin_files_are_not_called_weight_copies():
    # Regression: any *.bin (training_args.bin, optimizer.bin) gave "left out the .bin copies".
    layout = plan_layout(["model.safetensors", "training_args.bin", "optimizer.bin", "config.json"])
    assert layout.sets[0].files == ("model.safetensors",)
    assert not any(".bin" in note for note in layout.notes)


def test_index_of_the_kept_hf_shards_not_the_consolidated_one():
    # Regression: with both indexes listed, consolidated.safetensors.index.json sorted first and was chosen.
    shards = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    layout = plan_layout(shards + ["consolidated-00001-of-00002.safetensors", "consolidated-00002-of-00002.safetensors",
                                   "consolidated.safetensors.index.json", "model.safetensors.index.json"])
    (weights,) = layout.sets
    assert weights.files == tuple(shards) and weights.index == "model.safetensors.index.json"


def test_mistral_format_only_keeps_its_own_index():
    files = ["consolidated-00001-of-00002.safetensors", "consolidated-00002-of-00002.safetensors"]
    (weights,) = plan_layout(files + ["consolidated.safetensors.index.json"]).sets
    assert weights.files == tuple(files) and weights.index == "consolidated.safetensors.index.json"


def test_gguf_split_parts_group_as_gguf_header_groups_them():
    # One grouping rule (gguf_header.group_gguf_files): parts in part order, upper-case -OF- names too.
    paths = ["q/Big-Q4_K_M-00002-OF-00003.gguf", "q/Big-Q4_K_M-00001-OF-00003.gguf", "q/Big-Q4_K_M-00003-OF-00003.gguf",
             "small.gguf"]
    layout = plan_layout(paths)
    assert [(s.name, s.folder, s.files) for s in layout.sets] == [
        ("q/Big-Q4_K_M.gguf", "q", ("q/Big-Q4_K_M-00001-OF-00003.gguf", "q/Big-Q4_K_M-00002-OF-00003.gguf",
                                    "q/Big-Q4_K_M-00003-OF-00003.gguf")),
        ("small.gguf", "", ("small.gguf",))]


@pytest.mark.parametrize(("paths", "expected", "note"), CASES)
def test_layouts(paths, expected, note):
    layout = plan_layout(paths)
    assert [(s.name, s.format, s.files) for s in layout.sets] == expected
    if note:
        assert any(note in n for n in layout.notes)


@pytest.mark.parametrize(("paths", "message"), [
    (["README.md", "config.json", "model.onnx", "tf_model.h5"], ".h5, .onnx files instead"),
    (["README.md"], "no weight files"),
    ([], "no files"),
])
def test_no_weights_says_what_the_repo_has(paths, message):
    with pytest.raises(NoWeights, match=message):
        plan_layout(paths)
