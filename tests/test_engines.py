"""The engine table: registry, versions, each engine's constants and methods, and the CLI's use of it."""

from __future__ import annotations

import pytest
from test_architecture import real_config

from gpumem.errors import UsageError
from gpumem.model.architecture import parse_architecture
from gpumem.planning.engines import ENGINES, GpuTarget, get_engine
from gpumem.planning.memory import ServingOptions

MIB = 2**20
LLAMA3 = parse_architecture(real_config("meta-llama__Llama-3.1-8B"))  # the shape of Llama-3-8B


def test_registry_holds_one_entry_per_engine_under_its_name():
    assert list(ENGINES) == ["vllm", "sglang", "transformers", "llama.cpp", "ollama"]
    assert all(get_engine(name).name == name for name in ENGINES)
    with pytest.raises(UsageError, match="unknown engine 'tgi'; known engines: vllm, sglang, transformers, llama.cpp, ollama"):
        get_engine("tgi")


@pytest.mark.parametrize("engine,asked,modelled", [
    ("vllm", None, "0.21"), ("vllm", "0.6", "0.6"), ("vllm", "0.6.4", "0.6"), ("vllm", "v0.11.2", "0.11"),
    ("vllm", "0.10.1.1", "0.10"), ("vllm", "0.19.1", "0.19"), ("vllm", "0.20.2", "0.20"), ("vllm", "0.1", UsageError),
    ("transformers", None, "5.17"), ("transformers", "5.17.0", "5.17"),
    ("vllm", "0.5", UsageError), ("vllm", "0.60", UsageError), ("transformers", "0.6", UsageError),
])  # fmt: skip
def test_versions_default_to_the_newest_and_match_by_prefix(engine, asked, modelled):
    if modelled is UsageError:
        with pytest.raises(UsageError, match="is not modelled; modelled versions: "):
            ServingOptions(engine=engine, engine_version=asked)
        return
    assert get_engine(engine).resolve_version(asked) == modelled


def test_engines_say_where_they_run_and_what_they_load():
    for engine in ENGINES.values():
        assert engine.vendors <= {"NVIDIA", "AMD", "Intel", "Apple"} and "NVIDIA" in engine.vendors
        assert engine.formats and engine.formats <= {"safetensors", "pytorch-bin", "gguf"}


@pytest.mark.parametrize("engine,tp,expected", [
    ("vllm", 1, 552_402_944 + int(0.25 * 2**30) + 512 * MIB), ("vllm", 2, 552_402_944 + int(2.1 * 2**30) + 512 * MIB),
    ("transformers", 1, 552_402_944 + 33 * MIB), ("transformers", 4, 552_402_944 + 33 * MIB + 512 * MIB),
])  # fmt: skip
def test_overhead_per_gpu(engine, tp, expected):
    options = ServingOptions(engine=engine, tp=tp)
    assert options.engine_model.overhead(options) == expected


def test_vllm_budget_and_settings_default_to_the_version_and_yield_to_the_user():
    vllm = get_engine("vllm")
    assert vllm.budget(100 * MIB, ServingOptions()) == int(100 * MIB * 0.9)
    assert vllm.budget(100 * MIB, ServingOptions(gpu_memory_utilization=0.5)) == 50 * MIB
    assert get_engine("transformers").budget(100 * MIB, ServingOptions(engine="transformers")) == 100 * MIB
    assert vllm.setting(ServingOptions(), "max_num_batched_tokens") == 8192
    assert vllm.setting(ServingOptions(max_num_batched_tokens=2048), "max_num_batched_tokens") == 2048


def test_vllm_activation_peak_reproduces_the_logged_profile_runs():
    # llm-d-planner's 0.19 H100 runs of Llama-3.1-8B log a 1.89 GiB peak at TP 1, 2 and 4 (the sampler's logits
    # are gathered whole on every rank); 0.11's sort-based sampler logs far more (Qwen3-32B: 5.64 GiB).
    h100 = GpuTarget("H100 SXM", int(79.19 * 2**30))
    for tp in (1, 2, 4):
        peak, per_sequence = get_engine("vllm").activation_peak(LLAMA3, ServingOptions(tp=tp, gpu=h100, engine_version="0.19"), 8192)
        assert peak / 2**30 == pytest.approx(1.89, rel=0.01) and per_sequence == 0  # concurrency adds nothing
    old, _ = get_engine("vllm").activation_peak(LLAMA3, ServingOptions(engine_version="0.11", gpu=h100), 8192)
    assert old / 2**30 == pytest.approx(4.84, rel=0.03)  # Llama-3.3-70B FP8 (same vocab) logs 4.84 GiB in 0.11


@pytest.mark.parametrize("gpu,total_gib,tokens,seqs", [
    ("H100 SXM", 79.19, 8192, 1024), ("H200", 139.8, 8192, 1024), ("A100 80GB", 79.15, 2048, 256),
    ("L40S", 44.42, 2048, 256), (None, None, 8192, 1024),
])  # fmt: skip
def test_vllm_scheduler_defaults_follow_the_gpu_class(gpu, total_gib, tokens, seqs):
    # engine/arg_utils.py: >= 70 GiB and not an A100 -> 8192 / 1024, else 2048 / 256 (vllm serve)
    target = GpuTarget(gpu, int(total_gib * 2**30)) if gpu else None
    options = ServingOptions(gpu=target)
    vllm = get_engine("vllm")
    assert (vllm.setting(options, "max_num_batched_tokens"), vllm.setting(options, "max_num_seqs")) == (tokens, seqs)


def test_vllm_holds_context_and_graphs_outside_its_budget():
    vllm = get_engine("vllm")
    eager = ServingOptions(enforce_eager=True, engine_version="0.19")
    assert vllm.overhead_outside_budget(ServingOptions(engine_version="0.19")) == 552_402_944 + 512 * MIB
    assert vllm.overhead_outside_budget(eager) == 552_402_944
    assert vllm.overhead(eager) == 552_402_944 + int(0.25 * 2**30)
    assert vllm.overhead_outside_budget(ServingOptions()) == 552_402_944  # 0.20+: the graphs are inside


def test_transformers_activations_grow_with_each_sequence():
    options = ServingOptions(engine="transformers", concurrency=3)
    peak, per_sequence = get_engine("transformers").activation_peak(LLAMA3, options, 4096)
    assert peak == 3 * per_sequence and per_sequence > 4096 * 4 * LLAMA3.hidden_size


@pytest.mark.parametrize("engine,context,held", [("vllm", 100_000, 16 * 640 + 16), ("vllm", 5000, 5000),
                                                 ("transformers", 100_000, 2047), ("transformers", 1000, 1000)])
def test_sliding_window_tokens_held(engine, context, held):
    options = ServingOptions(engine=engine)
    assert options.engine_model.sliding_window_tokens(2048, context, options) == held


def test_cli_engine_choices_come_from_the_table_and_a_bad_version_is_a_usage_error(gpumem):
    code, out, _ = gpumem("hf", "--help")
    assert code == 0 and "[vllm|sglang|transformers|llama.cpp|ollama]" in out and "--engine-version" in out
    code, out, err = gpumem("fit", "--gpu", "H200", "Qwen/Qwen2.5-7B", "--offline", "--engine", "transformers",
                            "--engine-version", "0.6")
    assert code == 2 and out == ""
    assert err.splitlines()[0] == ("Error: Invalid value for '--engine-version': transformers version '0.6' "
                                   "is not modelled; modelled versions: 5.17")


@pytest.mark.parametrize("kwargs,library,cli_args,cli", [
    ({"context": 0}, "context must be at least 1, got 0", ("--context", "0"), "--context must be at least 1, got 0"),
    ({"tp": 0}, "tp must be at least 1, got 0", ("--tp", "0"), "--tp must be at least 1, got 0"),
])  # fmt: skip
def test_option_errors_use_library_words_and_the_cli_says_its_flags(gpumem, kwargs, library, cli_args, cli):
    with pytest.raises(UsageError) as caught:
        ServingOptions(**kwargs)
    assert caught.value.message == library
    code, _, err = gpumem("hf", "openai-community/gpt2", "--offline", *cli_args)
    assert code == 2 and err.splitlines()[0] == f"Error: {cli}"


def test_no_code_outside_the_engine_table_branches_on_an_engine_name_or_class():
    import re
    from pathlib import Path

    import gpumem

    root = Path(gpumem.__file__).parent
    names = "|".join(re.escape(name) for name in ENGINES)
    branch = re.compile(rf"""engine\w*\s*(==|!=)\s*["']({names})["']|engine\w* (not )?in [(\[{{]"""
                        r"|isinstance\(\w*engine|from \S*engines\.\w+ import")  # nor on an engine's class or module
    # nor spells an engine's launch: its binaries, Ray (vLLM's multi-node), SGLang's multi-node flags
    launch = re.compile(r"\bRay\b|ray start|sglang\.launch_server|llama-server|--nnodes|--node-rank|--dist-init-addr")
    found = [f"{path.relative_to(root)}:{n}" for path in root.rglob("*.py") if "engines" not in path.parts
             for n, line in enumerate(path.read_text().splitlines(), 1) if branch.search(line) or launch.search(line)]
    assert found == []


def test_lora_adapters_cost_what_each_engine_holds():
    from gpumem.model.adapters import LoraServing, Module

    modules = (Module("model.layers.0.self_attn.q_proj", 4096, 4096), Module("model.layers.0.self_attn.v_proj", 1024, 4096))
    lora = LoraServing(modules, ranks=(16,), adapter_parameters=16 * (4096 + 4096) + 16 * (4096 + 1024))
    vllm, transformers = get_engine("vllm"), get_engine("transformers")
    assert transformers.lora_weights(lora, 2) == -(-4 * lora.adapter_parameters // 2)  # PEFT: fp32, split by TP
    assert transformers.lora_slots(lora, 1) is None and transformers.lora_note() is None
    slots = vllm.lora_slots(lora, 1)
    assert slots is not None and vllm.lora_weights(lora, 1) == slots.slot_bytes_per_gpu > 0
    assert "--max-loras" in (vllm.lora_note() or "")


def test_vllm_0_20_takes_cuda_graphs_from_the_pool_and_0_21_samples_with_flashinfer():
    # 0.20.0's envs.py defaults VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS to "1": the graph estimate leaves the pool
    # (gpu_worker.py); 0.21.0 turns FlashInfer's top-k/top-p sampler on by default (2 fp32 logits copies, not 3.86).
    vllm = get_engine("vllm")
    gpu = GpuTarget("H100 SXM", int(79.18 * 2**30))

    def inside_budget(version: str) -> int:
        options = ServingOptions(engine_version=version, gpu=gpu)
        return vllm.overhead(options) - vllm.overhead_outside_budget(options)

    assert inside_budget("0.20") - inside_budget("0.19") == 512 * MIB
    assert inside_budget("0.21") == inside_budget("0.20")
    eager = ServingOptions(engine_version="0.20", gpu=gpu, enforce_eager=True)
    assert vllm.overhead(eager) - vllm.overhead_outside_budget(eager) == inside_budget("0.19")
    arch = parse_architecture(real_config("meta-llama__Llama-3.1-8B"))
    copies = {v: round(vllm.sampler_bytes(arch, ServingOptions(engine_version=v, gpu=gpu)) / (1024 * arch.vocab_size * 4), 2)
              for v in ("0.19", "0.20", "0.21")}
    assert copies == {"0.19": 3.86, "0.20": 3.86, "0.21": 2.0}


def test_cli_kv_dtype_choices_are_the_engines_kv_dtypes():
    from gpumem.cli import hf
    from gpumem.planning.options import all_kv_dtypes

    (option,) = [p for p in hf.params if p.name == "kv_dtype"]
    assert sorted(option.type.choices) == sorted(all_kv_dtypes())


def test_sglang_reserves_its_default_fraction_for_tp_times_pp():
    # server_args.py, 0.4.8-0.5.2: reserved = 9.5 + tp_size x pp_size / 2 GiB under 90 GiB; 0.5.3+: + tp_size x
    # pp_size / 8 GiB (../shared/reference/sglang-memory.md). On an H100's 81559 MiB, TP 8:
    sglang = get_engine("sglang")

    def fraction(version: str, pp: int) -> float:
        return sglang.mem_fraction_static(ServingOptions(engine="sglang", engine_version=version, tp=8, pp=pp))

    assert (fraction("0.5.2", 1), fraction("0.5.2", 2)) == (0.831, 0.78)  # 13824 / 17920 MiB reserved
    assert (fraction("0.5", 1), fraction("0.5", 2)) == (0.818, 0.805)  # 14848 / 15872 MiB
    assert fraction("0.4", 2) == fraction("0.4", 1) == 0.81  # 0.4.0-0.4.5: by TP size alone
