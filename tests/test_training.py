"""Fine-tuning memory: exact trainable counts, bytes per parameter, NF4 storage, ZeRO sharding, plans."""

from __future__ import annotations

import json

import pytest
from conftest import FIXTURES, load_fixture_json, manifest_tensors

from gpumem import api
from gpumem.errors import UsageError
from gpumem.model.adapters import base_modules
from gpumem.model.architecture import parse_architecture
from gpumem.model.params import count_weights
from gpumem.output.units import GB
from gpumem.planning.training import (
    TrainingBase,
    TrainingOptions,
    estimate_training,
    nf4_bytes,
)


def training_base(folder: str) -> TrainingBase:
    tensors = manifest_tensors(folder)
    config = load_fixture_json(folder, "config.json")
    arch = parse_architecture(config)
    return TrainingBase(count_weights(tensors, config).parameters, base_modules(tensors, arch.model_type), arch)


LLAMA2_7B = "meta-llama__Llama-2-7b-hf"
LLAMA2_70B = "meta-llama__Llama-2-70b-chat-hf"


def published(row_id: str) -> dict:
    path = FIXTURES / "measurements" / "finetune-public-memory.jsonl"
    return next(row for row in map(json.loads, path.read_text().splitlines()) if row["id"] == row_id)


def test_lora_count_matches_the_published_trainable_count():
    """LitGPT's resource table: Llama-2-7B, LoRA r 8 on query and value, 4,194,304 trainable parameters."""
    row = published("litgpt-lora-llama2-7b-bf16true-mb1")
    options = TrainingOptions(method="lora", rank=8, target_modules=("q_proj", "v_proj"))
    assert estimate_training(training_base(LLAMA2_7B), options).trainable_parameters == row["lora"]["trainable_params"]


def test_full_adamw_is_sixteen_bytes_per_parameter():
    base = training_base(LLAMA2_7B)
    for precision, master in (("bf16", True), ("fp16", True), ("fp32", False)):
        estimate = estimate_training(base, TrainingOptions(method="full", precision=precision, master_weights=master))
        assert estimate.trainable_parameters == base.parameters == 6_738_415_616
        assert estimate.model_state_bytes == 16 * base.parameters
    pure = estimate_training(base, TrainingOptions(method="full", master_weights=False))
    assert pure.model_state_bytes == 8 * base.parameters  # bf16 weights, gradients and both AdamW states


@pytest.mark.parametrize(("optimizer", "state_bytes"), [
    ("adamw", 8), ("adamw-8bit", 2 + 8 / 256), ("paged-adamw-8bit", 2 + 8 / 256), ("sgd", 0)])
def test_optimizer_state_bytes(optimizer, state_bytes):
    base = training_base(LLAMA2_7B)
    estimate = estimate_training(base, TrainingOptions(method="full", optimizer=optimizer))
    master = 4 * base.parameters
    assert estimate.optimizer_bytes - master == pytest.approx(state_bytes * base.parameters, rel=1e-6)


def test_adafactor_keeps_a_row_and_a_column_per_matrix():
    base = training_base(LLAMA2_7B)
    estimate = estimate_training(base, TrainingOptions(method="lora", rank=8, target_modules=("q_proj",),
                                                       optimizer="adafactor", master_weights=False))
    # 32 q_proj LoRA pairs: A (8, 4096) and B (4096, 8) -> (8 + 4096) + (4096 + 8) values each, in bf16
    assert estimate.optimizer_bytes == 2 * 32 * 2 * (8 + 4096)


def test_nf4_storage_is_exact():
    # 4096 x 4096: 8,388,608 packed bytes, 262,144 absmax of 1 byte, 1,024 nested fp32 absmax,
    # the 256-entry nested code, the offset and the 16-entry NF4 code (all fp32)
    assert nf4_bytes(4096 * 4096) == 8_388_608 + 262_144 + 1_024 * 4 + 256 * 4 + 4 + 16 * 4
    assert nf4_bytes(4096 * 4096, double_quant=False) == 8_388_608 + 262_144 * 4 + 16 * 4
    assert nf4_bytes(65) == 33 + 2 + 4 + 1028 + 64  # odd sizes round up


def test_qlora_keeps_embeddings_and_head_in_16_bit():
    base = training_base(LLAMA2_7B)
    estimate = estimate_training(base, TrainingOptions(method="qlora"))
    linears = [m for m in base.modules if m.kind == "linear" and m.name != "lm_head"]
    assert len(linears) == 7 * 32
    rest = base.parameters - sum(m.parameters for m in linears)  # embeddings, head, norms
    assert estimate.frozen_weight_bytes == sum(nf4_bytes(m.parameters) for m in linears) + 2 * rest


def test_zero_stages_shard_what_they_should():
    estimate = estimate_training(training_base(LLAMA2_7B), TrainingOptions(method="full", zero=3))
    one, eight = estimate.per_gpu(1), estimate.per_gpu(8)
    for part in ("trainable_bytes", "gradients_bytes", "optimizer_bytes"):
        assert getattr(eight, part) == -(-getattr(one, part) // 8)
    assert eight.activation_bytes == one.activation_bytes  # every GPU runs its own micro-batch
    for stage, sharded in ((1, {"optimizer_bytes"}), (2, {"optimizer_bytes", "gradients_bytes"})):
        staged = estimate_training(training_base(LLAMA2_7B), TrainingOptions(method="full", zero=stage)).per_gpu(8)
        for part in ("trainable_bytes", "gradients_bytes", "optimizer_bytes"):
            expected = -(-getattr(one, part) // 8) if part in sharded else getattr(one, part)
            assert getattr(staged, part) == expected


def test_checkpointing_keeps_activations_small_and_linear_in_tokens():
    base = training_base(LLAMA2_7B)
    on = estimate_training(base, TrainingOptions(seq_len=4096)).activation_bytes
    off = estimate_training(base, TrainingOptions(seq_len=4096, gradient_checkpointing=False)).activation_bytes
    double = estimate_training(base, TrainingOptions(seq_len=4096, batch=2)).activation_bytes
    logits = 4096 * 32000 * 4
    assert logits < on < off / 5
    assert double == 2 * on


def test_qlora_of_a_70b_at_the_defaults_plans_one_80_gb_gpu():
    metadata = api.inspect_repo("meta-llama/Llama-2-70b-hf", options=api.HubOptions(offline=True))
    report = api.train(metadata, TrainingOptions(method="qlora"), gpu="H100 SXM")
    (plan,) = report.plans
    assert (plan.gpu, plan.count, plan.fits) == ("H100 SXM", 1, True)
    assert report.to_dict()["training"]["per_gpu"]["total_bytes"] < 80 * GB


def test_full_fine_tuning_plans_hold_sixteen_bytes_per_parameter():
    metadata = api.inspect_repo("meta-llama/Llama-2-70b-hf", options=api.HubOptions(offline=True))
    report = api.train(metadata, TrainingOptions(method="full"))
    first = report.plans[0]
    assert first.fits
    assert first.count * first.per_gpu.total_bytes >= 16 * report.parameters
    assert first.count * first.budget_bytes >= 16 * report.parameters
    d = report.to_dict()
    assert d["training"]["total_bytes"] >= 16 * d["parameters"]
    assert d["training"]["gpus"] == first.count == d["recommendations"][0]["count"]
    assert set(d["training"]["per_gpu"]) == {"weights_bytes", "trainable_bytes", "gradients_bytes", "optimizer_bytes",
                                             "activation_bytes", "overhead_bytes", "total_bytes"}


def test_zero_0_does_not_pretend_more_gpus_help():
    metadata = api.inspect_repo("meta-llama/Llama-2-70b-hf", options=api.HubOptions(offline=True))
    report = api.train(metadata, TrainingOptions(method="full", zero=0), gpu="H100 SXM")
    (plan,) = report.plans
    assert (plan.count, plan.fits) == (1, False)


def test_bad_options_and_unusable_checkpoints():
    with pytest.raises(UsageError, match="optimizer must be one of"):
        TrainingOptions(optimizer="lion")
    with pytest.raises(UsageError, match="no module of the model matches"):
        estimate_training(training_base(LLAMA2_7B), TrainingOptions(target_modules=("c_attn",)))
    gptq = api.inspect_repo("TheBloke/Llama-2-13B-chat-GPTQ", options=api.HubOptions(offline=True))
    with pytest.raises(UsageError, match=r"stored quantized \(gptq\)"):
        api.train(gptq, TrainingOptions(method="full"))


def test_lora_on_a_pre_quantized_checkpoint_keeps_its_stored_weights():
    """GPTQ 4-bit Llama-2-13B: packed qweight hides the shapes; the architecture gives them back."""
    gptq = api.inspect_repo("TheBloke/Llama-2-13B-chat-GPTQ", options=api.HubOptions(offline=True))
    report = api.train(gptq, TrainingOptions(method="lora", rank=8, target_modules=("q_proj", "v_proj")))
    assert report.estimate.trainable_parameters == 40 * 8 * (2 * 5120 + 2 * 5120)  # 40 layers, q and v 5120 x 5120
    stored = api.estimate(gptq)[0].count.weight_bytes
    assert report.estimate.frozen_weight_bytes == stored
    assert "frozen weights as stored (gptq), exactly" in report.notes


def test_activation_factor_is_the_fit_and_docs_show_the_current_comparison():
    from gpumem.planning.training import ACTIVATION_FACTOR
    from gpumem_dev import training_check as check

    usable, _ = check.rows()
    fit_rows = [r for r in usable if r.fit]
    held = [r for r in usable if not r.fit]
    assert len(fit_rows) == 4 and len(held) >= 30
    assert round(check.fit_factor(fit_rows), 2) == ACTIVATION_FACTOR
    assert max(abs(e) for e in check.errors(fit_rows, ACTIVATION_FACTOR)) < 0.10
    allocated = sorted(abs(e) for e in check.errors([r for r in held if r.counter == "allocated"], ACTIVATION_FACTOR))
    assert allocated[len(allocated) // 2] < 0.15  # held-out median on like-for-like counters
    doc = (FIXTURES.parent / "docs" / "training.md").read_text()
    assert check.report() in doc, "docs/training.md is stale: paste `python scripts/training_check.py` between its markers"


def test_nf4_bytes_match_a_bitsandbytes_checkpoint_layout():
    """A serialized Params4bit (fakehub.layouts.bnb4: weight, absmax, quant_map, nested_absmax, nested_quant_map and
    the quant_state JSON blob) holds what nf4_bytes counts, but the blob (on disk only) instead of the fp32 offset."""
    from gpumem_dev.fakehub.layouts import bnb4

    for out, inp in ((4096, 4096), (1024, 4096), (14336, 4096)):
        stored = bnb4("model.layers.0.mlp.down_proj", out, inp)
        blob = next(t for t in stored if t.name.endswith("bitsandbytes__nf4")).nbytes
        assert nf4_bytes(out * inp) == sum(t.nbytes for t in stored) - blob + 4


def test_plans_carry_their_cost_per_hour():
    metadata = api.inspect_repo("meta-llama/Llama-2-70b-hf", options=api.HubOptions(offline=True))
    report = api.train(metadata, TrainingOptions(method="full"), gpu="H100 SXM", prices=[("H100 SXM", 2.5)])
    (plan,) = report.to_dict()["recommendations"]
    assert (plan["count"], plan["usd_per_hour"], plan["price"]) == (16, 40.0, "price")  # the CLI says --price
