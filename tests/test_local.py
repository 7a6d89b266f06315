"""`gpumem local PATH`: files and folders on disk, headers only (huge sparse files prove tensors are never read)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES, load_fixture_json
from safetensors.numpy import save_file

from gpumem_dev.fakehub import formats as fmt

LLAMA2_7B = 6_738_415_616


def bytes_read() -> int:
    """Bytes this process has read through read() calls so far (Linux /proc/self/io)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def local_json(gpumem, path, *args):
    before, start = bytes_read(), time.monotonic()
    code, out, err = gpumem("local", str(path), "--json", *args)
    assert code == 0, err
    return json.loads(out), bytes_read() - before, time.monotonic() - start


def test_a_real_safetensors_file_written_by_the_safetensors_package(gpumem, tmp_path):
    tensors = {"embed.weight": np.zeros((64, 16), np.float16), "norm.weight": np.ones(16, np.float32),
               "proj.weight": np.zeros((32, 16), np.int8)}
    save_file(tensors, str(tmp_path / "model.safetensors"))
    report, _, _ = local_json(gpumem, tmp_path / "model.safetensors")
    assert report["source"] == "local" and report["format"] == "safetensors"
    assert report["parameters"] == sum(a.size for a in tensors.values())
    assert report["stored_elements"] == {"F16": 64 * 16, "F32": 16, "I8": 32 * 16}
    assert report["weight_bytes"] == sum(a.nbytes for a in tensors.values())


def test_a_13_gb_sparse_file_is_read_header_only(gpumem, tmp_path):
    config = load_fixture_json("meta-llama__Llama-2-7b-hf", "config.json")
    layout = fmt.llama_layout(config, "F16", inv_freq=True)
    fmt.write_sparse({"model.safetensors": fmt.virtual_safetensors(layout)}, tmp_path)
    size = (tmp_path / "model.safetensors").stat().st_size
    assert size > 13 * 10**9 and (tmp_path / "model.safetensors").stat().st_blocks * 512 < 10**7  # a hole
    report, read, seconds = local_json(gpumem, tmp_path / "model.safetensors")
    assert report["parameters"] == LLAMA2_7B and report["weight_bytes"] == size - len(
        fmt.virtual_safetensors(layout).prefix)
    assert read < 20 * 10**6 and seconds < 10  # the header (about 30 KB), never the 13 GB of data


def test_a_sharded_folder_with_index_and_config(gpumem, tmp_path):
    config = load_fixture_json("meta-llama__Llama-2-7b-hf", "config.json")
    layout = fmt.llama_layout(config, "F16", inv_freq=True)
    runs = fmt.split_in_order(layout, 2)
    files = fmt.sharded_files({f"model-{i:05d}-of-00002.safetensors": run for i, run in enumerate(runs, 1)})
    files["config.json"] = fmt.json_file(config)
    fmt.write_sparse(files, tmp_path)
    report, read, _ = local_json(gpumem, tmp_path)
    assert report["parameters"] == LLAMA2_7B and report["buffer_elements"] == 32 * 64
    assert report["files"] == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    assert report["serving"]["kv_bytes_per_token"] == 2 * 32 * 32 * 128 * 2  # from config.json
    assert read < 20 * 10**6


def test_gguf_files_real_and_sparse(gpumem, tmp_path):
    tiny, _, _ = local_json(gpumem, FIXTURES / "gguf" / "tiny-mix.gguf")
    shapes = [shape for _, shape, _ in fmt.make_gguf.TINY_TENSORS]
    assert tiny["format"] == "gguf" and tiny["parameters"] == sum(math.prod(s) for s in shapes)
    assert tiny["file"] == "tiny-mix.gguf"
    files = fmt.llama2_gguf_files()
    fmt.write_sparse({"llama-2-7b.Q8_0.gguf": files["llama-2-7b.Q8_0.gguf"]}, tmp_path)
    q8, read, _ = local_json(gpumem, tmp_path / "llama-2-7b.Q8_0.gguf")
    assert q8["parameters"] == LLAMA2_7B and q8["quantization"]["bits"] == 8
    assert read < 20 * 10**6  # the 840 KB header, not the 7 GB file


def test_split_gguf_folder_and_file_choice(gpumem, tmp_path):
    files = {name: f for name, f in fmt.llama2_gguf_files().items()}
    fmt.write_sparse(files, tmp_path)
    code, out, err = gpumem("local", str(tmp_path), "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["file"] for r in rows] == ["llama-2-7b.F16.gguf", "llama-2-7b.Q4_K_M.gguf", "llama-2-7b.Q8_0.gguf"]
    assert all(r["parameters"] == LLAMA2_7B for r in rows)
    one, _, _ = local_json(gpumem, tmp_path, "--file", "llama-2-7b.F16.gguf")
    assert one["files"] == ["llama-2-7b.F16-00001-of-00002.gguf", "llama-2-7b.F16-00002-of-00002.gguf"]


def test_a_diffusers_style_folder(gpumem, tmp_path):
    files, parts = fmt.multi_component_files()
    fmt.write_sparse(files, tmp_path)
    report, read, _ = local_json(gpumem, tmp_path)
    components = {c["name"]: c["parameters"] for c in report["components"]}
    assert components == {"transformer": LLAMA2_7B,
                          "text_encoder": sum(math.prod(s) for _, _, s in parts["text_encoder"])}
    assert report["parameters"] == sum(components.values())
    assert read < 20 * 10**6


@pytest.mark.parametrize("content", [b"", b"\x00" * 7, b"not a safetensors file at all"])
def test_a_broken_local_file_is_a_one_line_format_error(gpumem, tmp_path, content):
    (tmp_path / "model.safetensors").write_bytes(content)
    code, out, err = gpumem("local", str(tmp_path / "model.safetensors"))
    assert code == 5 and out == "" and err.startswith("Error: ") and "model.safetensors" in err
    assert "Traceback" not in err


def test_a_dangling_link_beside_the_weights_is_ignored(gpumem, tmp_path):
    # Regression: every walked file was stat-ed, so extra.txt -> nowhere was an internal error.
    save_file({"proj.weight": np.zeros((4, 4), np.float16)}, str(tmp_path / "model.safetensors"))
    (tmp_path / "extra.txt").symlink_to(tmp_path / "nowhere")
    report, _, _ = local_json(gpumem, tmp_path)
    assert report["parameters"] == 16


def test_a_dangling_weight_link_is_a_one_line_error_naming_it(gpumem, tmp_path):
    (tmp_path / "model.safetensors").symlink_to(tmp_path / "nowhere.safetensors")
    (tmp_path / "config.json").write_text("{}")
    code, out, err = gpumem("local", str(tmp_path))
    assert code == 1 and out == "" and "Traceback" not in err
    assert err.startswith("Error: model.safetensors: cannot read (No such file or directory)")
