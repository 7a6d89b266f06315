"""The packaged GPU catalog, name matching, and the seed examples as plans."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from test_architecture import real_config

from gpumem import api
from gpumem.errors import UsageError
from gpumem.model.architecture import parse_architecture
from gpumem.planning.gpus import find_gpu, load_catalog, metal_working_set_bytes, tp_fits_heads
from gpumem.planning.memory import ServingOptions
from gpumem.planning.plans import PlanRequest, shapes

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


OFFLINE = api.HubOptions(offline=True)


@pytest.fixture(scope="module")
def llama70b():
    return api.inspect_repo("meta-llama/Llama-2-70b-hf", options=OFFLINE)


def first_plan(metadata, gpu: str, bits: float, serving: ServingOptions | None = None):
    (report,) = api.estimate(metadata, bits=bits, serving=serving, gpu=gpu)
    return report, report.recommendations[0]


@pytest.mark.parametrize("gpu,bits,count", [("A100 80GB", 16, 2), ("L4", 4, 2)])
def test_seed_examples(llama70b, gpu, bits, count):
    # The seed's examples predate vLLM 0.20, which takes the CUDA-graph estimate from the pool: 2 x L4 at 4 bit
    # then no longer holds a 4,096-token sequence (4 do).
    _, plan = first_plan(llama70b, gpu, bits, ServingOptions(engine_version="0.19"))
    assert (plan.gpu.name, plan.count, plan.tp, plan.pp, plan.fits) == (gpu, count, count, 1, True)
    assert plan.capacity.max_concurrency >= 1 and plan.headroom_bytes > 0


def test_does_not_fit_beyond_one_machine_of_gddr_cards(llama70b):
    _, plan = first_plan(llama70b, "T4", 16)  # plans span nodes of HBM parts only
    assert not plan.fits and plan.count == 8 and plan.notes[-1] == "does not fit on 8 T4"


def test_tp_sizes_that_do_not_split_heads_are_skipped():
    # Qwen2.5-7B has 28 heads and 4 KV heads: TP 8 is impossible, so 4 is the widest it can go.
    arch = parse_architecture(real_config("Qwen__Qwen2.5-7B"))
    found, _ = shapes(find_gpu("T4"), arch, PlanRequest(), ServingOptions())
    assert {tp for tp, _ in found} == {1, 2, 4}
    assert not tp_fits_heads(arch, 8) and tp_fits_heads(arch, 4)


def test_weights_only_plans_without_config(llama70b):
    no_config = replace(llama70b, weight_sets=tuple(replace(ws, config=None) for ws in llama70b.weight_sets))
    # 137.95 GB of weights: one H200 under transformers; under vLLM one H200 too, past its default 0.9
    hf_report, hf = first_plan(no_config, "H200", 16, ServingOptions(engine="transformers"))
    _, vllm = first_plan(no_config, "H200", 16)
    assert (hf.count, vllm.count) == (1, 1) and hf.fits and vllm.fits
    assert vllm.gpu_memory_utilization == 0.93 and "raised from 0.9 to 0.93" in vllm.notes[0]
    assert hf.capacity.max_concurrency == 0 and any("config.json" in n for n in hf_report.notes)


def test_catalog_is_package_data():
    text = (Path(__file__).resolve().parent.parent / "src" / "gpumem" / "data" / "gpus.toml").read_text()
    assert len(re.findall(r"^\[\[gpu\]\]", text, re.M)) == len(load_catalog())


def test_a_macs_usable_memory_is_metals_working_set_of_its_ram():
    # the logged recommendedMaxWorkingSetSize: 2/3 of RAM up to 32 GiB, 3/4 above
    mib, gib = 2**20, 2**30
    assert metal_working_set_bytes(16 * gib) / mib == pytest.approx(10922.67, abs=0.01)
    assert metal_working_set_bytes(32 * gib) / mib == pytest.approx(21845.33, abs=0.01)
    assert metal_working_set_bytes(64 * gib) / mib == 49152
    assert metal_working_set_bytes(96 * gib) / mib == 73728
    # the catalog's Macs carry their RAM only; what the plans budget against is derived from it
    text = (Path(__file__).resolve().parent.parent / "src" / "gpumem" / "data" / "gpus.toml").read_text()
    macs = [g for g in load_catalog() if g.vendor == "Apple"]
    assert [(g.name, g.usable_mib) for g in macs] == [("Apple M4 Max 128GB", 98304), ("Apple M3 Ultra 512GB", 393216)]
    assert all(g.usable_bytes == metal_working_set_bytes(int(g.marketed_gb) * gib) for g in macs)
    assert "usable_mib = 98304" not in text and "usable_mib = 393216" not in text
