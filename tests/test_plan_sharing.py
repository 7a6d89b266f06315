"""What the planner works out once per report and shares: each layout's breakdown once per TP size and engine class
of GPU (`Engine.gpu_class`), the shapes once per kind of node, a shape's command, speed and notes only for the shape
a GPU type keeps. Each must give exactly what sizing every GPU type and shape on its own gives."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gpumem import api
from gpumem.model.architecture import parse_architecture
from gpumem.model.params import summarize_weights
from gpumem.model.safetensors_header import DTYPE_BITS
from gpumem.model.types import TensorInfo
from gpumem.planning.engines import ENGINES, get_engine
from gpumem.planning.gpus import load_catalog
from gpumem.planning.memory import ServingOptions, estimate_serving
from gpumem.planning.plans import PlanRequest, shapes
from gpumem_dev.fakehub import formats as fmt

OFFLINE = api.HubOptions(offline=True)


def _gpt_oss_20b():
    """openai/gpt-oss-20b as stored (MXFP4 experts, sliding-window layers): vLLM pads its experts by GPU generation."""
    config = fmt.gpt_oss_config()
    tensors = []
    for name, dtype, shape in fmt.gpt_oss_layout(config):
        elements = 1
        for dim in shape:
            elements *= dim
        tensors.append(TensorInfo(name, dtype, tuple(shape), elements * DTYPE_BITS[dtype] // 8))
    return summarize_weights(tensors, config), parse_architecture(config)


def _snapshot(repo_id: str):
    metadata = api.inspect_repo(repo_id, options=OFFLINE)
    summary, arch, _ = api._prepare(metadata.weight_sets)
    return summary, arch


@pytest.fixture(scope="module")
def models():
    return {"gpt-oss-20b": _gpt_oss_20b(), "Mixtral-8x7B": _snapshot("mistralai/Mixtral-8x7B-v0.1"),
            "Llama-2-70B": _snapshot("meta-llama/Llama-2-70b-hf")}


@pytest.mark.parametrize("engine", ["vllm", "sglang", "transformers"])
def test_gpu_types_of_one_engine_class_have_the_same_breakdown(models, engine):
    # The planner sizes a layout once per (TP, gpu_class) and hands it to every GPU type of that class: any GPU
    # fact the breakdown reads must be in the class, for every version, model and TP size.
    model = get_engine(engine)
    catalog = [gpu.target for gpu in load_catalog()]
    classes = {}
    for version in model.versions:
        for summary, arch in models.values():
            for tp in (1, 8):
                for target in catalog:
                    options = ServingOptions(engine=engine, engine_version=version, tp=tp, gpu=target)
                    own = estimate_serving(summary, arch, options)
                    shared = classes.setdefault((version, id(summary), tp, model.gpu_class(target)), own)
                    assert own == shared, (version, tp, target)
    if engine == "vllm":  # large and small GPUs, three MXFP4 kernel generations
        assert len({key[3] for key in classes}) >= 4


def test_every_engine_has_a_hashable_gpu_class():
    for name in ENGINES:
        for gpu in load_catalog():
            hash(get_engine(name).gpu_class(gpu.target))


@pytest.mark.parametrize("serving", [ServingOptions(), ServingOptions(engine="sglang"),
                                     ServingOptions(context=32768, concurrency=64)],  # PP across nodes on HBM parts
                         ids=["vllm", "sglang", "long-and-many"])
def test_the_plan_a_gpu_type_keeps_is_the_plan_of_its_shape_alone(serving):
    # By default each GPU type tries its shapes fewest GPUs first and keeps the first that fits; nothing from the
    # shapes tried before it (their sizing, options or breakdowns) may show in the plan it keeps, and none of
    # them, planned alone, fits (the planner skips sizing a shape whose weights alone exceed the GPU).
    metadata = api.inspect_repo("meta-llama/Llama-2-70b-hf", options=OFFLINE)
    arch = api._prepare(metadata.weight_sets)[1]
    (report,) = api.estimate(metadata, serving=serving, plan=PlanRequest(show_all=True))
    tried_several = 0
    for plan in report.recommendations:
        if not plan.fits:
            continue
        alone = {}
        for tp, pp in shapes(plan.gpu, arch, PlanRequest(), serving.for_format("safetensors"))[0]:
            fixed = PlanRequest(gpus=(plan.gpu.name,), tp=tp, pp=pp, nodes=-(-tp * pp // plan.gpu.gpus_per_node))
            (alone[tp, pp],) = api.estimate(metadata, serving=serving, plan=fixed)[0].recommendations
            if (tp, pp) == (plan.tp, plan.pp):
                break
        assert alone.pop((plan.tp, plan.pp)).to_dict() == plan.to_dict(), plan.gpu.name
        assert not any(smaller.fits for smaller in alone.values()), plan.gpu.name
        tried_several += bool(alone)
    assert tried_several >= 5
    if serving.concurrency == 64:
        assert any(plan.nodes > 1 and plan.pp > 1 and plan.fits for plan in report.recommendations)


def test_layout_options_are_the_options_with_those_fields_changed():
    options = ServingOptions(engine="vllm", context=8192, concurrency=4, kv_dtype="fp8", max_num_seqs=64)
    target = load_catalog()[0].target
    layout = dict(tp=4, pp=2, context=4096, gpu=target, gpu_memory_utilization=0.93)
    assert options.laid_out(**layout) == replace(options, **layout)
    assert options.laid_out(tp=2) == replace(options, tp=2)


def test_a_resolved_version_is_remembered_and_an_unknown_one_refused_every_time():
    vllm = get_engine("vllm")
    assert vllm.resolve_version("0.11.2") == vllm.resolve_version("v0.11.2") == "0.11"
    assert vllm.resolve_version(None) == vllm.newest
    for _ in range(2):
        with pytest.raises(Exception, match="not modelled"):
            vllm.resolve_version("0.1")
