"""The packaged GPU catalog, name matching, and the recommender's seed examples."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_architecture import real_config
from test_memory import weight_count

from gpumem.errors import UsageError
from gpumem.model.architecture import parse_architecture
from gpumem.planning.gpus import find_gpu, load_catalog, recommend
from gpumem.planning.memory import ServingOptions

GPUS_MD = Path(__file__).resolve().parent.parent / "fixtures" / "reference" / "gpus.md"  # copy of shared/reference
CATALOG_NAMES = {"T4", "L4", "A10", "RTX 3090", "RTX 4090", "RTX 5090", "L40S", "RTX A6000", "RTX 6000 Ada",
                 "A100 40GB", "A100 80GB", "H100 PCIe", "H100 SXM", "H100 NVL", "H200", "GH200", "B200", "B300",
                 "MI250X", "MI300X", "MI325X", "MI355X", "Gaudi 2", "Gaudi 3", "Apple M4 Max 128GB",
                 "Apple M3 Ultra 512GB",
                 # added for plans (their rows and sources: the second table of fixtures/reference/gpus.md)
                 "V100 16GB", "V100 32GB", "A40", "L40", "RTX PRO 6000 Blackwell", "H20", "H800", "A800 80GB",
                 "RTX 4080", "RTX 3060 12GB"}


def test_catalog_has_every_gpu_of_the_reference():
    assert {g.name for g in load_catalog()} == CATALOG_NAMES


def test_reported_totals_match_the_reference():
    text = GPUS_MD.read_text()
    for gpu in load_catalog():
        if gpu.derived:
            continue
        row = next(line for line in text.splitlines() if line.startswith(f"| {gpu.name.split(' 128GB')[0]} "))
        assert f"{gpu.usable_mib} MiB" in row, gpu.name


def test_derived_entries_say_so():
    for gpu in load_catalog():
        if gpu.derived:
            assert "derived" in gpu.note or "assumed" in gpu.note
            assert gpu.usable_mib < gpu.marketed_gb * 1024


@pytest.mark.parametrize("name,expected", [
    ("A100 80GB", "A100 80GB"), ("a100-80gb", "A100 80GB"), ("A100_80GB", "A100 80GB"),
    ("h100", "H100 SXM"), ("H100", "H100 SXM"), ("4090", "RTX 4090"), ("rtx4090", "RTX 4090"),
    ("RTX 4090", "RTX 4090"), ("l4", "L4"), ("a10g", "A10"), ("MI300X", "MI300X"), ("gaudi3", "Gaudi 3"),
    # nvidia-smi / torch.cuda.get_device_name / rocm-smi spellings
    ("NVIDIA H100 80GB HBM3", "H100 SXM"), ("NVIDIA A100-SXM4-80GB", "A100 80GB"), ("NVIDIA A100 80GB PCIe", "A100 80GB"),
    ("NVIDIA A100-PCIE-40GB", "A100 40GB"), ("Tesla T4", "T4"), ("NVIDIA GeForce RTX 4090", "RTX 4090"),
    ("NVIDIA RTX 6000 Ada Generation", "RTX 6000 Ada"), ("NVIDIA A10G", "A10"), ("AMD Instinct MI300X", "MI300X"),
    ("Tesla V100-SXM2-32GB", "V100 32GB"), ("Tesla V100-PCIE-16GB", "V100 16GB"), ("NVIDIA A40", "A40"),
    ("NVIDIA L40", "L40"), ("NVIDIA RTX PRO 6000 Blackwell Server Edition", "RTX PRO 6000 Blackwell"),
    ("NVIDIA H20", "H20"), ("NVIDIA H800", "H800"), ("NVIDIA A800-SXM4-80GB", "A800 80GB"),
    ("NVIDIA GeForce RTX 4080", "RTX 4080"), ("NVIDIA GeForce RTX 3060", "RTX 3060 12GB"), ("NVIDIA GH200 480GB", "GH200"),
])
def test_find_gpu_matches_names_and_aliases(name, expected):
    assert find_gpu(name).name == expected


def test_unknown_gpu_lists_close_matches():
    with pytest.raises(UsageError, match=r"unknown GPU 'H10'.*did you mean: .*H100"):
        find_gpu("H10")


def llama2_70b():
    tensors, count = weight_count("meta-llama__Llama-2-70b-chat-hf")
    return tensors, count, parse_architecture(real_config("meta-llama__Llama-2-70b-chat-hf"))


@pytest.mark.parametrize("gpu,bits,count", [("A100 80GB", 16, 2), ("L4", 4, 2)])
def test_seed_examples(gpu, bits, count):
    tensors, weights, arch = llama2_70b()
    (rec,) = recommend(weights, arch, ServingOptions(), bits, only=find_gpu(gpu))
    assert (rec.count, rec.tp, rec.fits) == (count, count, True)
    assert rec.max_concurrency >= 1 and rec.headroom_gb > 0
    assert {"gpu", "count", "tp", "headroom_gb", "max_concurrency", "fits"} <= set(rec.to_dict())


def test_does_not_fit_beyond_eight():
    tensors, weights, arch = llama2_70b()
    (rec,) = recommend(weights, arch, ServingOptions(), 16, only=find_gpu("T4"))
    assert not rec.fits and rec.count == 8 and "does not fit" in rec.notes[-1]


def test_sorted_fitting_first_then_fewest_then_least_memory():
    tensors, weights, arch = llama2_70b()
    recs = recommend(weights, arch, ServingOptions(), 16)
    catalog = {g.name: g for g in load_catalog()}
    keys = [(not r.fits, r.count, r.count * catalog[r.gpu].usable_mib) for r in recs]
    assert keys == sorted(keys) and recs[0].fits and not recs[-1].fits


def test_tp_sizes_that_do_not_split_heads_are_skipped():
    # Qwen2.5-7B has 28 heads and 4 KV heads: TP 8 is impossible, so 4 is the widest it can go.
    tensors, weights = weight_count("Qwen__Qwen2.5-7B")
    arch = parse_architecture(real_config("Qwen__Qwen2.5-7B"))
    (rec,) = recommend(weights, arch, ServingOptions(), 16, only=find_gpu("T4"))
    assert rec.tp in (1, 2, 4)


def test_weights_only_recommendation_without_config():
    tensors, weights, _ = llama2_70b()
    h200 = find_gpu("H200")  # 137.95 GB of weights: one H200 under transformers, two under vLLM's 0.9
    (hf,) = recommend(weights, None, ServingOptions(engine="transformers"), 16, only=h200)
    (vllm,) = recommend(weights, None, ServingOptions(), 16, only=h200)
    assert (hf.count, vllm.count) == (1, 2) and hf.fits and vllm.fits
    assert hf.max_concurrency == 0 and any("config.json" in n for n in hf.notes)


def test_catalog_is_package_data():
    text = (Path(__file__).resolve().parent.parent / "src" / "gpumem" / "data" / "gpus.toml").read_text()
    assert len(re.findall(r"^\[\[gpu\]\]", text, re.M)) == len(load_catalog())
