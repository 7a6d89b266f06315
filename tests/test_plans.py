"""Deployment plans: shape (TP x PP x nodes), the breakdown being the first plan's, commands, speed, price, ranking."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from gpumem import api
from gpumem.errors import UsageError
from gpumem.model.architecture import parse_architecture
from gpumem.output.units import size
from gpumem.planning.engines import get_engine
from gpumem.planning.engines.sglang import PRE_LOAD_BYTES
from gpumem.planning.gpus import find_gpu, load_catalog
from gpumem.planning.memory import ServingOptions
from gpumem.planning.plans import PlanRequest, shapes
from gpumem.planning.prices import load_prices
from gpumem_dev.fakehub import GOOD_TOKEN, synthetic_sharded_repo

OFFLINE = api.HubOptions(offline=True)


@pytest.fixture(scope="module")
def llama70b():
    return api.inspect_repo("meta-llama/Llama-2-70b-hf", options=OFFLINE)


def plans_of(metadata, **kw):
    report = api.estimate(metadata, **kw)[0]
    return report, report.to_dict()


def test_llama2_70b_on_a100_is_two_gpus_at_tp2_with_its_vllm_line(llama70b):
    _, d = plans_of(llama70b, gpu="A100")
    first = d["recommendations"][0]
    assert (first["gpu"], first["count"], first["nodes"], first["tp"], first["pp"], first["fits"]) == \
        ("A100 80GB", 2, 1, 2, 1, True)
    assert first["command"] == ("vllm serve meta-llama/Llama-2-70b-hf --tensor-parallel-size 2 --max-model-len 4096 "
                                "--gpu-memory-utilization 0.9")
    # the breakdown printed is the first plan's: TP 2, its per-GPU bytes
    assert d["serving"]["tp"] == 2 and d["serving"]["per_gpu"] == first["per_gpu"]
    assert first["per_gpu"]["weights_bytes"] == 68_977_967_104  # half of every split tensor, norms whole
    assert 26_000 < first["kv_cache_tokens"] < 36_000  # vLLM logs 26-36k tokens for this set-up
    assert set(first) >= {"gpu", "count", "nodes", "tp", "pp", "per_gpu", "kv_pool_bytes", "kv_cache_tokens",
                          "max_concurrency", "headroom_gb", "fits", "command", "decode_tokens_per_s", "ttft_s",
                          "usd_per_hour", "usd_per_million_tokens", "notes"}
    assert d["schema_version"] == 2


@pytest.fixture(scope="module")
def llama405b(fake_hub):
    fake_hub.add_repo(synthetic_sharded_repo("meta-llama/Llama-3.1-405B", n_shards=8))
    return api.inspect_repo("meta-llama/Llama-3.1-405B",
                            options=api.HubOptions(endpoint=fake_hub.endpoint, token=GOOD_TOKEN, use_cache=False))


def test_llama31_405b_bf16_on_h100_spans_two_nodes_with_pipeline_parallel(llama405b):
    _, d = plans_of(llama405b, gpu="h100")
    first = d["recommendations"][0]
    assert (first["count"], first["nodes"], first["tp"], first["pp"], first["fits"]) == (16, 2, 8, 2, True)
    assert "--tensor-parallel-size 8 --pipeline-parallel-size 2" in first["command"]
    assert first["node_commands"] == ["ray start --head --port=6379", "ray start --address=NODE0_IP:6379"]
    assert any("2 nodes x 8 H100 SXM: TP 8 inside each node over NVLink 900 GB/s, PP 2 across nodes" in n
               for n in first["notes"])
    # one stage: 63 of 126 layers and the head or the embedding, not all 811 GB / 8
    assert 48e9 < first["per_gpu"]["weights_bytes"] < 52e9
    assert d["serving"]["pp"] == 2


def test_shapes_across_nodes_share_one_breakdown_per_tp_and_gpu(llama405b, monkeypatch):
    # 405B in BF16 tries 8 GPUs at TP 8, then 16, 24, ... at TP 8 x PP n: every shape of one GPU type at one TP
    # starts from the same TP-only breakdown, sized once.
    sized = []
    real = api.estimate_serving

    def counted(summary, arch, options, *args, **kwargs):
        sized.append((options.tp, options.gpu.name))
        return real(summary, arch, options, *args, **kwargs)

    monkeypatch.setattr(api, "estimate_serving", counted)
    _, d = plans_of(llama405b, gpu=["H100", "A100 40GB"])
    assert {(p["gpu"], p["nodes"], p["tp"], p["pp"]) for p in d["recommendations"]} == \
        {("H100 SXM", 2, 8, 2), ("A100 40GB", 3, 8, 3)}
    assert sorted(sized) == sorted({*sized}) and {tp for tp, _ in sized} == {1, 2, 4, 8}


def test_sglang_across_nodes_runs_its_own_launch_on_every_node_without_ray(llama405b):
    # docs.sglang.io, multi-node deployment: every node runs launch_server with --nnodes, its --node-rank and node
    # 0's --dist-init-addr; pipeline stages are --pp-size.
    _, d = plans_of(llama405b, gpu="h100", serving=ServingOptions(engine="sglang"))
    first = d["recommendations"][0]
    assert (first["count"], first["nodes"], first["tp"], first["pp"]) == (16, 2, 8, 2)
    launch = ("python -m sglang.launch_server --model-path meta-llama/Llama-3.1-405B --tp 8 --pp-size 2 "
              "--context-length 4096 --nnodes 2 --node-rank {} --dist-init-addr NODE0_IP:20000")
    assert first["node_commands"] == [launch.format(0), launch.format(1)]
    assert first["command"] == launch.format(0)  # node 0's
    notes = " ".join(first["notes"])
    assert "Ray" not in notes and "run the command on every node, each with its --node-rank" in notes
    # the report lists each node's line once, under the engine's own title
    from gpumem.output.views import commands

    block = commands(first)
    assert block.title.endswith("the server on every node, each with its --node-rank (NODE0_IP: node 0's address)")
    assert block.lines == (launch.format(0), launch.format(1))


def test_vllm_across_nodes_keeps_its_ray_cluster_then_the_server_on_node_0(llama405b):
    from gpumem.output.views import commands

    _, d = plans_of(llama405b, gpu="h100", plan=PlanRequest(nodes=3))
    block = commands(d["recommendations"][0])
    assert block.title == ("Start it (3 nodes × 8 H100 SXM): Ray on node 0, then on each other node (NODE0_IP: node "
                           "0's address), then the server on node 0")
    assert block.lines[:2] == ("ray start --head --port=6379", "ray start --address=NODE0_IP:6379")
    assert len(block.lines) == 3 and block.lines[2].startswith("vllm serve meta-llama/Llama-3.1-405B ")


def test_sglang_without_pipeline_parallel_is_offered_no_pp_shape_and_no_node_but_its_own(llama405b):
    # --pp-size is first in SGLang 0.4.6.post2's server_args.py (absent from 0.4.0-0.4.6.post1's wheels), so the
    # modelled 0.4 (0.4.0-0.4.5) gets tensor-parallel shapes inside one node only: 405B in BF16 fits no 8 H100.
    old = ServingOptions(engine="sglang", engine_version="0.4")
    _, d = plans_of(llama405b, gpu="h100", serving=old)
    first = d["recommendations"][0]
    assert (first["count"], first["nodes"], first["tp"], first["pp"], first["fits"]) == (8, 1, 8, 1, False)
    assert first["command"].startswith("python -m sglang.launch_server --model-path meta-llama/Llama-3.1-405B --tp 8 ")
    assert first["node_commands"] == [] and first["notes"][-1] == "does not fit on 8 H100 SXM"
    refusal = "SGLang 0.4 has no pipeline parallel (--pp-size came in 0.4.6.post2)"
    for plan, said in ((PlanRequest(nodes=2), f"{refusal}: no plan spans nodes"),
                       (PlanRequest(pp=2), f"{refusal}: it cannot run PP 2"),
                       (PlanRequest(tp=16), f"TP 16 spans more than one node of 8 H100 SXM: {refusal}")):
        with pytest.raises(UsageError) as caught:
            plans_of(llama405b, gpu="h100", serving=old, plan=plan)
        assert (caught.value.message, caught.value.hint) == (said, "engine_version 0.5 runs pipeline stages")
    # a model whose heads split 4 ways at most: vLLM and SGLang 0.5 take 8 GPUs as TP 4 x PP 2, SGLang 0.4 does not
    config = api.inspect_repo("Qwen/Qwen2.5-7B", options=OFFLINE).weight_sets[0].config
    qwen, h100 = parse_architecture(config), find_gpu("H100")
    assert (4, 2) in shapes(h100, qwen, PlanRequest(), ServingOptions(engine="sglang"))[0]
    assert shapes(h100, qwen, PlanRequest(), old)[0] == [(1, 1), (2, 1), (4, 1)]


@pytest.mark.parametrize("version", ["0.4.6.post2", "0.4.7", "v0.4.7.post1"])
def test_sglang_versions_with_pp_size_that_the_modelled_04_serves_get_pipeline_stages(llama405b, version):
    # Their memory rules are the modelled 0.4's (the tp-table fraction), but --pp-size is there from 0.4.6.post2.
    _, d = plans_of(llama405b, gpu="h100", serving=ServingOptions(engine="sglang", engine_version=version))
    first = d["recommendations"][0]
    assert (first["nodes"], first["tp"], first["pp"], first["fits"]) == (2, 8, 2, True)
    assert "--tp 8 --pp-size 2 " in first["command"]


def test_sglang_before_pp_size_is_refused_in_the_version_asked(llama405b):
    with pytest.raises(UsageError) as caught:
        plans_of(llama405b, gpu="h100", serving=ServingOptions(engine="sglang", engine_version="0.4.6.post1"),
                 plan=PlanRequest(pp=2))
    assert caught.value.message == ("SGLang 0.4.6.post1 has no pipeline parallel (--pp-size came in 0.4.6.post2): "
                                    "it cannot run PP 2")


def test_sglang_0_4_refusals_name_the_flag(hub, gpumem):
    code, _, err = gpumem("hf", "Qwen/Qwen2.5-7B", "--engine", "sglang", "--engine-version", "0.4", "--nodes", "2",
                          "--gpu", "h100", "--no-cache")
    assert code == 2
    assert "no pipeline parallel (--pp-size came in 0.4.6.post2): no plan spans nodes" in err
    assert "--engine-version 0.5 runs pipeline stages" in err


def test_sglang_plans_and_fit_size_its_fraction_on_nvidia_smis_total():
    # SGLang's default --mem-fraction-static reads nvidia-smi's memory.total (server_args.py ->
    # get_nvgpu_memory_capacity), its pool the memory CUDA reports free. An A10 shows 23028 MiB there and 22518 MiB
    # to CUDA: hf's plan and fit's row must both size on the first (0.5.3+: (23028 - 3744) / 23028 = 0.837).
    a10 = find_gpu("A10")
    assert (a10.usable_mib, a10.cuda_total_mib) == (23028, 22518)
    serving = ServingOptions(engine="sglang")
    assert get_engine("sglang").mem_fraction_static(replace(serving, gpu=a10.target)) == 0.837
    budget = int((22518 * 2**20 - PRE_LOAD_BYTES) * 0.837)
    metadata = api.inspect_repo("Qwen/Qwen2.5-7B", options=OFFLINE)
    _, d = plans_of(metadata, gpu="A10", serving=serving)
    plan = d["recommendations"][0]
    row = next(r for r in api.fit(metadata, "A10", serving=serving)[0].to_dict()["options"]
               if r["bits"] is None and r["count"] == 1)
    assert (plan["count"], plan["tp"], plan["budget_bytes"], plan["kv_cache_tokens"]) == \
        (1, 1, budget, row["kv_cache_tokens"]) and row["budget_bytes"] == budget


def test_engines_on_one_machine_offer_no_plan_across_nodes(llama405b):
    # transformers is one process (device_map over one machine's GPUs): 405B in BF16 fits no 8 H100, and no plan
    # spans nodes with a command that would not start.
    _, d = plans_of(llama405b, gpu="h100", serving=ServingOptions(engine="transformers"))
    assert [(p["nodes"], p["fits"], p["node_commands"]) for p in d["recommendations"]] == [(1, False, [])]
    with pytest.raises(UsageError) as caught:
        plans_of(llama405b, gpu="h100", serving=ServingOptions(engine="transformers"), plan=PlanRequest(nodes=2))
    assert caught.value.message == "transformers runs on one machine: no plan spans nodes"
    # llama.cpp / Ollama split the layers over one machine's GPUs
    h100 = find_gpu("H100")
    for engine in ("llama.cpp", "ollama"):
        found, _ = shapes(h100, None, PlanRequest(), ServingOptions(engine=engine))
        assert max(tp * pp for tp, pp in found) == 8
        _, why = shapes(h100, None, PlanRequest(nodes=2), ServingOptions(engine=engine))
        assert why is not None and why.text == f"{get_engine(engine).label} splits the layers over the GPUs of one machine"


def test_a_tp_wider_than_a_node_is_refused_in_the_engines_words(llama405b):
    for engine, words in (("vllm", "vLLM runs tensor parallel inside a node and pipeline parallel across nodes"),
                          ("sglang", "SGLang's tensor parallel inside a node and its pipeline parallel (--pp-size)"),
                          ("transformers", "transformers runs on one machine")):
        with pytest.raises(UsageError) as caught:
            plans_of(llama405b, gpu="h100", serving=ServingOptions(engine=engine), plan=PlanRequest(tp=16))
        assert caught.value.message.startswith("TP 16 spans more than one node of 8 H100 SXM: ")
        assert words in caught.value.message


def test_fixing_nodes_or_pp_is_honoured(llama405b):
    _, d = plans_of(llama405b, gpu="h100", plan=PlanRequest(nodes=3))
    assert [(p["nodes"], p["tp"], p["pp"]) for p in d["recommendations"]] == [(3, 8, 3)]
    _, d = plans_of(llama405b, gpu="h200", plan=PlanRequest(pp=2))
    assert d["recommendations"][0]["pp"] == 2


def test_deepseek_first_plan_is_one_node():
    metadata = api.inspect_repo("deepseek-ai/DeepSeek-R1", options=OFFLINE)
    _, d = plans_of(metadata)
    plans = d["recommendations"]
    assert plans[0]["nodes"] == 1 and plans[0]["fits"]
    assert any("--enable-expert-parallel" in n for n in plans[0]["notes"])


def test_default_list_is_short_ranked_by_price_and_only_what_the_engine_runs_on(llama70b):
    _, d = plans_of(llama70b)
    plans = d["recommendations"]
    vendors = {g.name: g.vendor for g in load_catalog()}
    assert 1 <= len(plans) <= 8 and all(p["fits"] for p in plans)
    assert {vendors[p["gpu"]] for p in plans} <= get_engine("vllm").vendors  # no Apple
    prices = [p["usd_per_hour"] for p in plans]
    assert None not in prices and prices == sorted(prices)
    assert d["ranking"].startswith("plans that fit, cheapest $/hour first")


def test_all_shows_the_whole_catalog_and_vendor_filters(llama70b):
    _, d = plans_of(llama70b, plan=PlanRequest(show_all=True))
    assert len(d["recommendations"]) == len(load_catalog())
    apple = [p for p in d["recommendations"] if p["gpu"].startswith("Apple")]
    assert apple and all(not p["fits"] and "vLLM does not run on Apple GPUs" in p["notes"] for p in apple)
    _, d = plans_of(llama70b, plan=PlanRequest(vendors=("amd",)))
    assert {p["gpu"] for p in d["recommendations"]} <= {"MI250X", "MI300X", "MI325X", "MI355X"}


def test_unpriced_gpus_rank_after_priced_ones_by_fewest_gpus(llama70b):
    _, d = plans_of(llama70b, gpu=["H20", "A100", "H800"])
    # priced first; H800 and H20 have no price: both need 2 GPUs, and 2 x 80 GB leaves less idle than 2 x 96 GB
    assert [(p["gpu"], p["count"]) for p in d["recommendations"]] == [("A100 80GB", 2), ("H800", 2), ("H20", 2)]
    assert d["recommendations"][1]["usd_per_hour"] is None


def test_price_changes_the_plan_cost(llama70b):
    _, cheap = plans_of(llama70b, gpu="A100", plan=PlanRequest(prices=load_prices([("A100 80GB", 1.0)])))
    _, listed = plans_of(llama70b, gpu="A100")
    assert listed["recommendations"][0]["usd_per_hour"] == 2.6  # 2 x $1.30, the table's May 2026 figure
    assert cheap["recommendations"][0]["usd_per_hour"] == 2.0
    assert cheap["recommendations"][0]["price_basis"] == "price"  # the parameter; the CLI says --price
    tokens_per_hour = cheap["recommendations"][0]["aggregate_tokens_per_s"] * 3600
    assert cheap["recommendations"][0]["usd_per_million_tokens"] == pytest.approx(2.0 / tokens_per_hour * 1e6, rel=1e-3)


def test_llama31_8b_on_one_h100_decodes_within_the_bandwidth_bound():
    metadata = api.inspect_repo("meta-llama/Llama-3.1-8B", options=OFFLINE)
    _, d = plans_of(metadata, gpu="h100")
    first = d["recommendations"][0]
    limit = 3.35e12 / d["weight_bytes"]  # 16,060,522,496 bytes of BF16 weights
    assert first["count"] == 1 and d["weight_bytes"] == 16_060_522_496
    assert 0.45 * limit < first["decode_tokens_per_s"] < limit
    assert 0 < first["ttft_s"] < 1


def test_a_plan_that_cannot_honour_tp_says_why(llama70b):
    with pytest.raises(UsageError, match="does not divide the model's 64 attention heads"):
        api.estimate(llama70b, plan=PlanRequest(tp=3))
    with pytest.raises(UsageError, match="TP 16 spans more than one node of 8 H100 SXM"):
        api.estimate(llama70b, gpu="h100", plan=PlanRequest(tp=16))
    with pytest.raises(UsageError, match="vLLM does not run on Apple GPUs"):
        api.estimate(llama70b, gpu="m4-max")


@pytest.mark.parametrize("args", [("--tp", "3"), ("--tp", "16", "--gpu", "h100"), ("--gpu", "m4-max"),
                                  ("--price", "h100=free"), ("--vendor", "nobody")])
def test_cli_refusals_exit_2(gpumem, args):
    code, out, err = gpumem("hf", "meta-llama/Llama-2-70b-hf", "--offline", *args)
    assert code == 2 and out == "" and err.startswith("Error: ")


def test_asked_context_that_cannot_fit_gets_vllms_verdict_and_the_largest_that_would():
    metadata = api.inspect_repo("meta-llama/Llama-3.1-8B", options=OFFLINE)
    _, d = plans_of(metadata, gpu="A10", serving=ServingOptions(context=65536), plan=PlanRequest(tp=1, pp=1))
    plan = d["recommendations"][0]
    assert not plan["fits"] and plan["largest_context"] and plan["largest_context"] < 65536
    verdict = next(n for n in plan["notes"] if n.startswith("The model's max seq len (65536) is larger than the "
                                                           "maximum number of tokens that can be stored in KV cache ("))
    assert f"the largest context that fits is {plan['largest_context']:,} tokens" in verdict
    _, d = plans_of(metadata, gpu="A10", serving=ServingOptions(engine="sglang", context=65536),
                    plan=PlanRequest(tp=1, pp=1))
    notes = d["recommendations"][0]["notes"]
    assert not any("max seq len" in n for n in notes)  # vLLM's words are vLLM's
    assert any(n.startswith("one sequence of 65,536 tokens needs more KV cache than the pool holds") for n in notes)


def test_utilization_is_raised_to_hold_the_asked_load(llama70b):
    _, d = plans_of(llama70b, gpu="A100", serving=ServingOptions(context=4096, concurrency=12))
    first = d["recommendations"][0]
    assert first["count"] == 2 and first["fits"] and 0.9 < first["gpu_memory_utilization"] <= 0.95
    assert f"--gpu-memory-utilization {first['gpu_memory_utilization']:g}" in first["command"]
    assert any("raised from 0.9" in n for n in first["notes"])


def test_every_view_describes_the_first_plan(gpumem):
    _, out, _ = gpumem("hf", "meta-llama/Llama-2-70b-hf", "--offline", "--gpu", "A100", "--json")
    d = json.loads(out)
    first = d["recommendations"][0]
    _, table, _ = gpumem("hf", "meta-llama/Llama-2-70b-hf", "--offline", "--gpu", "A100")
    assert "Per GPU (the first plan, 2 × A100 80GB)" in table and "TP 2" in table
    assert "One of 2 × A100 80GB: memory budget" in table
    assert "vllm serve meta-llama/Llama-2-70b-hf --tensor-parallel-size 2" in table
    _, csv_out, _ = gpumem("hf", "meta-llama/Llama-2-70b-hf", "--offline", "--gpu", "A100", "--format", "csv")
    assert str(first["per_gpu"]["total_bytes"]) in csv_out and "2x1" in csv_out


@pytest.mark.parametrize("engine", ["vllm", "sglang", "transformers"])
def test_the_bar_leaves_free_what_the_plan_table_calls_headroom(gpumem, monkeypatch, engine):
    """The bar draws what lies inside the engine's budget; what the engine holds beside it (vLLM: CUDA context
    and graphs, SGLang: overhead and activations) is stated in the legend, so free == the plan's headroom."""
    monkeypatch.setenv("COLUMNS", "80")
    argv = ("hf", "meta-llama/Llama-2-70b-hf", "--bits", "4", "--offline", "--engine", engine)
    first = json.loads(gpumem(*argv, "--json")[1])["recommendations"][0]
    outside = first["outside_budget_bytes"]
    headroom = first["budget_bytes"] - (first["per_gpu_total_bytes"] - outside)
    assert first["headroom_gb"] == round(headroom / 1e9, 2) and headroom > 0
    _, out, _ = gpumem(*argv)
    row = next(line.split() for line in out.splitlines() if line.startswith(first["gpu"]))
    assert f"{first['headroom_gb']:.2f}" in row
    assert f"· free {size(headroom)}" in out
    if engine == "vllm":
        assert outside > 0 and (f"overhead {size(first['per_gpu']['overhead_bytes'] - outside)} "
                                f"(+{size(outside)} outside the budget)") in out
        assert "memory budget" in out and f"(--gpu-memory-utilization {first['gpu_memory_utilization']:g})" in out
    elif engine == "transformers":  # no budget but the GPU's usable memory: nothing beside it
        assert outside == 0 and "outside the budget" not in out and "usable memory" in out


def test_compare_smallest_fit_is_the_first_plan(gpumem):
    _, out, _ = gpumem("compare", "meta-llama/Llama-2-70b-hf", "meta-llama/Llama-3.1-8B", "--offline", "--json")
    reports = json.loads(out)
    _, table, _ = gpumem("compare", "meta-llama/Llama-2-70b-hf", "meta-llama/Llama-3.1-8B", "--offline",
                            "--format", "csv")
    for report in reports:
        first = report["recommendations"][0]
        assert f"{first['count']} x {first['gpu']}" in table


def test_only_an_engine_that_places_whole_experts_says_so_on_a_moe_plan(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    mixtral = api.inspect_repo("mistralai/Mixtral-8x7B-v0.1", options=api.HubOptions(use_cache=False))

    def notes(engine: str) -> list[str]:
        (report,) = api.estimate(mixtral, serving=ServingOptions(engine=engine), gpu="L4")
        assert report.recommendations[0].count > 1
        return [n for n in report.recommendations[0].notes if "expert" in n]
    assert notes("vllm") == ["MoE: vLLM can place whole experts per GPU with --enable-expert-parallel (same memory)"]
    assert notes("sglang") == [] and notes("transformers") == []
