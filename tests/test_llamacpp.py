"""llama.cpp and Ollama: KV cache, model and compute buffers against llama.cpp's own load logs, the -ngl table,
the commands, and the engines in the CLI."""

from __future__ import annotations

import json

import pytest

from gpumem.errors import UsageError
from gpumem.model.architecture import parse_architecture
from gpumem.model.gguf_header import gguf_config, parse_gguf
from gpumem.planning.engines import get_engine
from gpumem.planning.engines import llamacpp as lc
from gpumem.planning.memory import ServingOptions
from gpumem_dev.fakehub import formats as fmt
from gpumem_dev.fakehub import llamacpp_logs as logs

MIB = 2**20
GIB = 2**30
CASES = list(logs.cases())

def llama2_q4_k_m() -> tuple[lc.GGUFModel, list]:
    header = parse_gguf((logs.ROOT / "fixtures/gguf/llama-2-7b.Q4_K_M.header.gguf").read_bytes(), "q4km.gguf")
    config = gguf_config(header.metadata) | {"vocab_size": 32000}  # fetch takes it from token_embd's rows
    return lc.GGUFModel.from_architecture(parse_architecture(config), header.tensors), list(header.tensors)


def test_there_are_fitting_and_held_out_logs():
    held_out = [c for c in CASES if c.set == "held-out"]
    assert len([c for c in CASES if c.set == "fitting"]) == 12 and len(held_out) == 8
    assert len([c for c in CASES if c.set == "measured b11434"]) == 6
    assert len([c for c in CASES if c.set == "held-out b11434"]) == 23
    assert {c.id for c in held_out}.isdisjoint({c.id for c in CASES if c.set == "fitting"})


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_kv_cache_is_exact_against_every_log(case):
    rows = [(name, predicted, logged) for name, predicted, logged in logs.errors(case) if name.startswith("kv")]
    assert all(predicted == pytest.approx(logged, abs=0.0051) for _, predicted, logged in rows), rows  # as printed: %.2f


@pytest.mark.parametrize("case", [c for c in CASES if c.set.startswith("held-out")], ids=lambda c: c.id)
def test_held_out_buffers_are_within_5_percent_of_the_logs(case):
    for name, predicted, logged in logs.errors(case):
        error = (predicted - logged) / logged
        assert abs(error) <= 0.05, f"{case.id} {name}: {predicted:.2f} MiB vs {logged} MiB logged"


def test_model_buffers_of_real_layouts_match_to_the_hundredth_of_a_mib():
    for case in (c for c in CASES if c.header):
        for name, predicted, logged in logs.errors(case):
            if name.startswith("model"):
                assert predicted == pytest.approx(logged, abs=0.015), (case.id, name)


def test_fitting_compute_buffers_stay_where_the_fit_left_them():
    # Current-style single-GPU builds are fitted to within 1%; the documented larger misses are older builds
    # (Jan-Mar 2024 MoE and pipeline-parallel graphs) and the 2-GPU pipeline with flash attention.
    worst = {}
    for case in (c for c in CASES if c.set == "fitting"):
        for name, predicted, logged in logs.errors(case):
            if name.startswith("compute"):
                worst[(case.id, name)] = (predicted - logged) / logged
    good = [e for (cid, _), e in worst.items() if not cid.startswith(("llamacpp-pr4957", "llamacpp-11200"))]
    assert max(abs(e) for e in good) < 0.10
    assert sorted(abs(e) for e in good)[len(good) // 2] < 0.01  # the median fitted buffer is within 1%


def test_laguna_q4_0_rows_are_ggml_blocks():
    laguna = next(c for c in CASES if c.id.startswith("ggrun-laguna"))
    model, _ = logs.model_and_settings(laguna)
    row = model.kv_row_bytes(0, "q4_0", "q4_0")
    assert row == laguna.expected["kv_row_bytes_per_layer_cell"] == 2 * 1024 // 32 * 18
    assert row * 1048576 * 12 / MIB == laguna.expected["kv_base_MiB"] and row * 1024 * 36 / MIB == 40.5


@pytest.mark.parametrize("cache,per_token", [("f16", 32 * 2 * 4096 * 2), ("q8_0", 32 * 2 * 4096 // 32 * 34),
                                             ("q4_0", 32 * 2 * 4096 // 32 * 18), ("q5_1", 32 * 2 * 4096 // 32 * 24)])
def test_kv_bytes_per_token_on_a_real_gguf_header(cache, per_token):
    model, tensors = llama2_q4_k_m()
    memory = lc.plan(model, lc.LlamaCppSettings(n_ctx=4096, type_k=cache, type_v=cache))
    assert memory.kv_bytes_per_token == per_token and memory.kv_bytes == per_token * 4096


def test_kv_cells_pad_to_256_and_split_over_slots():
    model, _ = llama2_q4_k_m()
    one = lc.kv_cells(model, lc.LlamaCppSettings(n_ctx=1000))
    three = lc.kv_cells(model, lc.LlamaCppSettings(n_ctx=1024, n_seq=3))
    four = lc.kv_cells(model, lc.LlamaCppSettings(n_ctx=1024, n_seq=4))
    assert one == (1024, 0, 1) and three == (512, 0, 3) and four == (256, 0, 4)  # 1536 cells, then 1024


def test_sliding_window_layers_follow_llama_cpp_patterns():
    assert lc.swa_layers("gemma3", 12, 1024, None) == (True,) * 5 + (False,) + (True,) * 5 + (False,)
    assert lc.swa_layers("gpt-oss", 4, 128, None) == (True, False, True, False)
    assert lc.swa_layers("gemma2", 2, None, None) == (True, False)  # the 4096 default window
    assert lc.swa_layers("phi3", 4, 2047, None) == (False,) * 4  # llama.cpp ignores Phi-3's window
    assert lc.swa_layers("gemma3", 3, 512, [False, True, True]) == (False, True, True)


def test_token_embd_stays_on_the_host_and_the_output_layer_goes_last():
    model, tensors = llama2_q4_k_m()
    embd = next(t.nbytes for t in tensors if t.name == "token_embd.weight")
    full = lc.plan(model, lc.LlamaCppSettings(n_ctx=4096))
    assert full.host.model == embd and full.gpus[0].output and full.gpus[0].layers == 32
    one = lc.plan(model, lc.LlamaCppSettings(n_ctx=4096, ngl=1))
    assert one.gpus[0].output and one.gpus[0].layers == 0  # -ngl 1: the output layer alone
    old = lc.plan(model, lc.LlamaCppSettings(n_ctx=4096, ngl=1, ngl_counts_output=False))
    assert not old.gpus[0].output and old.gpus[0].layers == 1  # 2024 builds: one repeating layer


def test_tied_embeddings_get_a_second_copy_on_the_gpu():
    model, tensors = llama2_q4_k_m()
    untied = [t for t in tensors if t.name != "output.weight"]
    tied = lc.GGUFModel.from_architecture(parse_architecture(gguf_config(
        parse_gguf((logs.ROOT / "fixtures/gguf/llama-2-7b.Q4_K_M.header.gguf").read_bytes(), "x").metadata)
        | {"vocab_size": 32000}), untied)
    embd = next(t.nbytes for t in tensors if t.name == "token_embd.weight")
    out = next(t.nbytes for t in tensors if t.name == "output.weight")
    a = lc.plan(model, lc.LlamaCppSettings(n_ctx=512))
    b = lc.plan(tied, lc.LlamaCppSettings(n_ctx=512))
    assert tied.tied and b.host.model == a.host.model == embd
    assert b.gpus[0].model - a.gpus[0].model == pytest.approx(embd - out, abs=4096)


def test_offload_table_is_complete_and_monotonic():
    model, _ = llama2_q4_k_m()
    rows = lc.offload_table(model, lc.LlamaCppSettings(n_ctx=8192), 300 * MIB)
    assert [r["ngl"] for r in rows] == list(range(34))
    vram = [r["vram_bytes"] for r in rows]
    ram = [r["ram_bytes"] for r in rows]
    assert vram[0] == 0 and all(a < b for a, b in zip(vram, vram[1:]))
    assert all(a > b for a, b in zip(ram, ram[1:]))
    fast = lc.with_speed(rows, 1008, n_layer=32)  # RTX 4090: 1,008 GB/s
    speeds = [r["decode_tokens_per_s"] for r in fast]
    assert all(a < b for a, b in zip(speeds, speeds[1:]))
    # all on the GPU: (weights + 8k tokens of KV) at 88% of 1008 GB/s and 132 us a layer (throughput.LLAMA_CPP);
    # all on the CPU: the same bytes over 60 GB/s
    step = rows[-1]["gpu_read_bytes"] / (0.88 * 1008e9) + 32 * 132e-6
    assert speeds[-1] == pytest.approx(1 / step, rel=0.01)
    assert speeds[0] == pytest.approx(60e9 / rows[0]["ram_read_bytes"], rel=0.01)
    six = lc.largest_ngl(rows, 6 * GIB)
    assert lc.largest_ngl(rows, 24 * GIB) == 33 and vram[six] <= 6 * GIB < vram[six + 1] and six == 24
    assert lc.largest_ngl(rows, 0) == 0


def test_llama_server_command_names_the_file_ngl_and_total_context():
    engine = get_engine("llama.cpp")
    options = ServingOptions(engine="llama.cpp", context=8192, concurrency=4, kv_dtype="q8_0")
    command = engine.command("TheBloke/Llama-2-7B-GGUF", options, 1, file="llama-2-7b.Q4_K_M.gguf", ngl=20)
    assert command == ("llama-server -hf TheBloke/Llama-2-7B-GGUF --hf-file llama-2-7b.Q4_K_M.gguf -ngl 20 "
                       "-c 32768 -np 4 -ctk q8_0 -ctv q8_0 -fa on")
    plain = engine.command("r/x", ServingOptions(engine="llama.cpp"), 1, file="x.gguf")
    assert plain == "llama-server -hf r/x --hf-file x.gguf -ngl 999 -c 4096 -np 1"


def test_ollama_is_llama_server_with_ollama_defaults():
    ollama = get_engine("ollama")
    options = ServingOptions(engine="ollama", context=8192, kv_dtype="q8_0")
    assert ollama.setting(options, "n_ubatch") == 512 and ollama.setting(options, "n_batch") == 512
    command = ollama.command("bartowski/X-GGUF", options, 1, file="X-Q4_K_M.gguf", ngl=30)
    assert "PARAMETER num_ctx 8192" in command and "PARAMETER num_gpu 30" in command
    assert "OLLAMA_KV_CACHE_TYPE=q8_0" in command and "hf.co/bartowski/X-GGUF:Q4_K_M" in command


def test_cache_types_are_llama_cpp_s_and_vllm_refuses_them():
    with pytest.raises(UsageError, match="kv_dtype must be one of auto, bf16, fp16, fp8 for vLLM"):
        ServingOptions(engine="vllm", kv_dtype="q4_0")
    assert ServingOptions(kv_dtype="q4_0").for_format("gguf").engine == "llama.cpp"
    assert ServingOptions().for_format("safetensors").engine == "vllm"
    with pytest.raises(UsageError, match="rows of a multiple of 32"):
        lc.row_bytes("q8_0", 80)


def test_gguf_repos_default_to_llama_cpp(hub, gpumem):
    repo = hub.add_repo(fmt.llama2_gguf_repo())
    code, out, err = gpumem("hf", repo.repo_id, "--file", "llama-2-7b.Q4_K_M.gguf", "--json", "--context", "8192",
                            "--kv-dtype", "q8_0")
    assert code == 0, err
    serving = json.loads(out)["serving"]
    assert serving["engine"] == "llama.cpp" and serving["kv_dtype"] == "q8_0"
    assert serving["kv_bytes_per_token"] == 32 * 2 * 4096 // 32 * 34
    assert serving["per_gpu"]["kv_cache_bytes"] == serving["kv_bytes_per_token"] * 8192
    assert serving["host_bytes"] > 32000 * 4096 * 144 // 256  # token_embd (Q4_K) at least
    assert [row["ngl"] for row in serving["offload"]] == list(range(34))
    code, out, _ = gpumem("hf", repo.repo_id, "--file", "llama-2-7b.Q4_K_M.gguf", "--json", "--engine", "vllm")
    assert code == 0 and json.loads(out)["serving"]["engine"] == "vllm"


def test_llama_cpp_refuses_a_checkpoint_that_is_not_gguf(hub, gpumem):
    code, out, err = gpumem("hf", "openai-community/gpt2", "--engine", "llama.cpp", "--offline")
    assert code == 2 and "llama.cpp loads GGUF files" in err


def test_gpu_gets_decode_speeds_and_the_largest_ngl(hub, gpumem):
    repo = hub.add_repo(fmt.llama2_gguf_repo())
    code, out, err = gpumem("hf", repo.repo_id, "--file", "llama-2-7b.Q4_K_M.gguf", "--json", "--gpu", "RTX 3060",
                            "--context", "32768", "--tp", "1")
    assert code == 0, err
    serving = json.loads(out)["serving"]
    detail = serving["llama_cpp"]
    rows = serving["offload"]
    assert 0 < detail["largest_ngl"] < 33 and detail["gpu"].startswith("RTX 3060")
    assert all(r["decode_tokens_per_s"] for r in rows)
    assert any(f"-ngl {detail['largest_ngl']} of 33 layers fit" in n for n in serving["notes"])


def test_a_multimodal_projector_is_counted_and_loaded_on_the_gpu(hub, gpumem):
    # A format fixture (not a real projector): a vision tower tensor and the projection, F16 and F32 copies.
    f16 = fmt.make_gguf.T.F16
    rows = [("v.blk.0.attn_q.weight", (1024, 1024), f16), ("mm.0.weight", (4096, 1024), f16)]
    rows32 = [(n, s, fmt.make_gguf.T.F32) for n, s, _ in rows]
    files = {**fmt.llama2_gguf_files(),
             "mmproj-model-f16.gguf": fmt.gguf_file(fmt.gguf_header(rows, 1, metadata=False), rows),
             "mmproj-model-f32.gguf": fmt.gguf_file(fmt.gguf_header(rows32, 0, metadata=False), rows32)}
    repo = hub.add_repo(fmt.FakeRepo("x/Llava-GGUF", files, sha=fmt.fake_sha("x/Llava-GGUF")))
    code, out, err = gpumem("hf", repo.repo_id, "--json", "--file", "llama-2-7b.Q4_K_M.gguf")
    assert code == 0, err
    report = json.loads(out)
    assert report["files"] == ["llama-2-7b.Q4_K_M.gguf", "mmproj-model-f16.gguf"]
    projector = 2 * (1024 * 1024 + 4096 * 1024)
    assert report["weight_bytes"] == 4080263168 + projector
    plain, _ = llama2_q4_k_m()
    assert report["serving"]["per_gpu"]["weights_bytes"] == lc.plan(plain, lc.LlamaCppSettings(n_ctx=4096)).gpus[0].model + projector
    assert any("mmproj-model-f16.gguf" in note for note in report["notes"])
    code, out, _ = gpumem("hf", repo.repo_id, "--json")
    assert code == 0 and all(r["files"][-1] == "mmproj-model-f16.gguf" for r in json.loads(out))


def test_the_report_gives_the_command_for_the_file_at_the_ngl_that_fits(hub, gpumem):
    repo = hub.add_repo(fmt.llama2_gguf_repo())
    code, out, err = gpumem("hf", repo.repo_id, "--file", "llama-2-7b.Q4_K_M.gguf", "--json", "--gpu", "RTX 3060",
                            "--context", "32768", "--tp", "1")
    report = json.loads(out)
    detail = report["serving"]["llama_cpp"]
    assert detail["command"] == (f"llama-server -hf {repo.repo_id} --hf-file llama-2-7b.Q4_K_M.gguf "
                                 f"-ngl {detail['largest_ngl']} -c 32768 -np 1")
    plan = report["recommendations"][0]
    assert plan["command"] == detail["command"] and not plan["fits"]  # one RTX 3060 holds part of the layers
    assert f"-ngl {detail['largest_ngl']} of 33 layers fit; the rest run from system memory" in plan["notes"]
    code, out, _ = gpumem("hf", repo.repo_id, "--file", "llama-2-7b.Q4_K_M.gguf", "--engine", "ollama", "--json")
    assert code == 0 and json.loads(out)["serving"]["ollama"]["command"] == (
        f"OLLAMA_NUM_PARALLEL=1 ollama serve; Modelfile: FROM hf.co/{repo.repo_id}:Q4_K_M / PARAMETER num_ctx 4096 "
        "/ PARAMETER num_gpu 33")
    code, out, err = gpumem("hf", repo.repo_id, "--file", "llama-2-7b.Q4_K_M.gguf", "--engine", "ollama", "--gpu", "T4")
    assert code == 0 and "Start it (1 × T4)\n  OLLAMA_NUM_PARALLEL=1 ollama serve;" in out
    assert "PARAMETER num_gpu 33" in out


def test_moe_experts_go_to_system_memory_when_that_decodes_faster():
    # Mixtral-8x7B's shapes (fixtures/hub config.json) with Q4_K-sized weights: 4.5 bits per weight.
    from test_architecture import real_config

    from gpumem.model.types import TensorInfo
    arch = parse_architecture(real_config("mistralai__Mixtral-8x7B-v0.1"))
    q4 = lambda n: n * 144 // 256  # noqa: E731 - Q4_K bytes of n weights
    tensors = [TensorInfo("token_embd.weight", "Q4_K", (32000, 4096), q4(32000 * 4096)),
               TensorInfo("output.weight", "Q4_K", (32000, 4096), q4(32000 * 4096))]
    for i in range(32):
        tensors += [TensorInfo(f"blk.{i}.attn_q.weight", "Q4_K", (4096, 4096), q4(4096 * 4096 * 3)),
                    TensorInfo(f"blk.{i}.ffn_up_exps.weight", "Q4_K", (8, 14336, 4096), q4(8 * 14336 * 4096 * 3))]
    model = lc.GGUFModel.from_architecture(arch, tensors)
    settings = lc.LlamaCppSettings(n_ctx=4096)
    rows = lc.with_speed(lc.offload_table(model, settings, 0), 936)  # RTX 3090
    moe = lc.with_speed(lc.moe_table(model, settings, 0), 936)
    budget = 24 * GIB
    ngl = lc.largest_ngl(rows, budget)
    best = next(r for r in moe if r["vram_bytes"] <= budget)
    assert ngl < 33 and 0 < best["n_cpu_moe"] < 32
    assert best["decode_tokens_per_s"] > rows[ngl]["decode_tokens_per_s"]  # attention stays on the GPU
    assert [r["n_cpu_moe"] for r in moe] == list(range(33))
    assert all(a["vram_bytes"] > b["vram_bytes"] for a, b in zip(moe, moe[1:]))
    # The plan's start line (launch_on, as plans and the report use it): every layer, --n-cpu-moe N.
    from types import SimpleNamespace
    estimate = SimpleNamespace(offload=tuple(lc.offload_table(model, settings, 0)), engine_detail={
        "n_layer": 32, "n_cpu_moe_table": lc.moe_table(model, settings, 0)})
    launch = lc.launch_on(estimate, budget, 936)
    assert (launch.largest_ngl, launch.n_cpu_moe, launch.ngl) == (ngl, best["n_cpu_moe"], 33)
    command = lc.LLAMACPP.command("r/Mixtral-GGUF", ServingOptions(engine="llama.cpp"), 1, file="m.gguf",
                                  ngl=launch.ngl, n_cpu_moe=launch.n_cpu_moe)
    assert command.endswith(f"-ngl 33 -c 4096 -np 1 --n-cpu-moe {best['n_cpu_moe']}")


def test_llama_cpp_b11434_s_own_estimates_on_the_cpu():
    # The traced Llama-2-7B runs: KV exact, compute within the MiB llama-fit-params rounds to.
    for case in (c for c in CASES if c.set == "measured b11434"):
        for name, predicted, logged in logs.errors(case):
            if name == "kv_total":
                assert predicted == logged, case.id
            else:
                assert abs(predicted - logged) <= 1, (case.id, predicted, logged)


def test_build_graph_rules_change_the_compute_buffers_as_the_source_says():
    model, _ = llama2_q4_k_m()
    old = lc.plan(model, lc.LlamaCppSettings(n_ctx=4096, outputs=1))
    new = lc.plan(model, lc.LlamaCppSettings(n_ctx=4096, outputs=1, graph=lc.B11434.graph))
    tokens, hidden = 512, 4096 * 512 * 4
    # GPU: flash attention's mask is f16 (no f32 copy to cast); the FFN holds gate, up and the GLU output.
    assert old.gpus[0].compute == 2 * 11008 * tokens * 4 + 2 * hidden
    assert new.gpus[0].compute == 3 * 11008 * tokens * 4 + 2 * hidden
    # Host: the f16 mask and both input embeddings (token rows and the batch's copy).
    assert old.host.compute == 4096 * tokens * 4 + hidden
    assert new.host.compute == 4096 * tokens * 2 + 2 * hidden
    no_fa = lc.plan(model, lc.LlamaCppSettings(n_ctx=4096, outputs=1, flash_attn=False, graph=lc.B11434.graph))
    assert no_fa.host.compute - old.host.compute > 4096 * tokens * 8  # V written through per-element indices


def test_fit_and_bits_what_ifs_work_with_llama_cpp_cache_types(hub, gpumem):
    repo = hub.add_repo(fmt.llama2_gguf_repo())
    code, out, err = gpumem("fit", "--gpu", "RTX 3060", repo.repo_id, "--file", "llama-2-7b.Q4_K_M.gguf",
                            "--kv-dtype", "q8_0", "--json")
    assert code == 0, err
    code, out, err = gpumem("hf", repo.repo_id, "--file", "llama-2-7b.Q4_K_M.gguf", "--bits", "8", "--json")
    assert code == 0, err
    serving = json.loads(out)["serving"]
    model, _ = llama2_q4_k_m()
    q4 = lc.plan(model, lc.LlamaCppSettings(n_ctx=4096)).gpus[0].model
    assert serving["engine"] == "llama.cpp" and serving["per_gpu"]["weights_bytes"] > 1.6 * q4


def test_several_gpus_split_the_layers(hub, gpumem):
    repo = hub.add_repo(fmt.llama2_gguf_repo())
    code, out, err = gpumem("hf", repo.repo_id, "--file", "llama-2-7b.Q4_K_M.gguf", "--json", "--tp", "2")
    assert code == 0, err
    serving = json.loads(out)["serving"]
    model, _ = llama2_q4_k_m()
    two = lc.plan(model, lc.LlamaCppSettings(n_ctx=4096, n_gpus=2))
    assert serving["tp"] == 2 and serving["per_gpu"]["weights_bytes"] == two.max_gpu.model
    assert [g.layers for g in two.gpus] == [17, 15] and two.gpus[1].output  # 33 layers cut at 1/2: 17 | 15 + output
    assert any("2 GPUs split the layers (-sm layer): 17, 15 + output layers" in n for n in serving["notes"])


def test_every_plan_names_the_gguf_file_its_ngl_and_context(hub, gpumem):
    repo = hub.add_repo(fmt.llama2_gguf_repo())
    code, out, err = gpumem("hf", repo.repo_id, "--file", "llama-2-7b.Q4_K_M.gguf", "--json", "--context", "8192",
                            "--concurrency", "2", "--kv-dtype", "q8_0")
    assert code == 0, err
    report = json.loads(out)
    plans = report["recommendations"]
    assert len(plans) > 3 and all(p["fits"] for p in plans)
    for plan in plans:  # every layer fits each recommended GPU: -ngl 33 (32 repeating + the output layer)
        assert plan["command"] == (f"llama-server -hf {repo.repo_id} --hf-file llama-2-7b.Q4_K_M.gguf -ngl 33 "
                                   f"-c 16384 -np 2 -ctk q8_0 -ctv q8_0 -fa on")
    assert report["serving"]["llama_cpp"]["command"] == plans[0]["command"]
    code, out, err = gpumem("hf", repo.repo_id, "--file", "llama-2-7b.Q4_K_M.gguf", "--engine", "ollama", "--json")
    assert code == 0, err
    assert all(p["command"] == f"OLLAMA_NUM_PARALLEL=1 ollama serve; Modelfile: FROM hf.co/{repo.repo_id}:Q4_K_M / "
               "PARAMETER num_ctx 4096 / PARAMETER num_gpu 33" for p in json.loads(out)["recommendations"])


def test_the_table_starts_the_first_plan_with_its_file_and_its_breakdown_is_that_plan(hub, gpumem):
    # 16k tokens do not fit one RTX 3060 12GB with every layer: the first plan is two of them, splitting layers.
    repo = hub.add_repo(fmt.llama2_gguf_repo())
    args = ("hf", repo.repo_id, "--file", "llama-2-7b.Q4_K_M.gguf", "--gpu", "RTX 3060", "--context", "16384")
    code, out, err = gpumem(*args, "--json")
    assert code == 0, err
    report = json.loads(out)
    plan = report["recommendations"][0]
    assert (plan["count"], plan["tp"], plan["pp"]) == (2, 2, 1) and plan["fits"]
    assert report["serving"]["per_gpu"] == plan["per_gpu"] and report["serving"]["tp"] == 2
    assert report["serving"]["llama_cpp"]["largest_ngl"] == 33  # the -ngl table is the two GPUs'
    command = f"llama-server -hf {repo.repo_id} --hf-file llama-2-7b.Q4_K_M.gguf -ngl 33 -c 16384 -np 1 -sm layer"
    assert plan["command"] == command
    code, out, err = gpumem(*args)
    assert code == 0, err
    assert "Per GPU (the first plan, 2 × RTX 3060 12GB)" in out
    start = out[out.index("Start it (2 × RTX 3060 12GB)"):].splitlines()[1:3]  # 80 columns: continued with \\
    assert " ".join(line.strip(" \\") for line in start) == command


def test_the_report_places_its_first_plan_with_that_plan_s_launch(hub, monkeypatch):
    # The first plan decides its -ngl (launch_on) for its start line; the report's breakdown on the named GPU reuses
    # that Launch instead of deciding it again. With the user's --ngl the plan decides nothing and the report once.
    from gpumem import api
    from gpumem.planning.plans import PlanRequest

    repo = hub.add_repo(fmt.llama2_gguf_repo())
    metadata = api.inspect_repo(repo.repo_id, options=api.HubOptions(endpoint=hub.endpoint, use_cache=False))
    decided = []
    real = lc.launch_on
    monkeypatch.setattr(lc, "launch_on", lambda *args: decided.append(real(*args)) or decided[-1])
    for ngl, plans_decide in ((None, 1), (10, 0)):
        decided.clear()
        serving = ServingOptions(engine="llama.cpp", context=32768, ngl=ngl)
        report = api.estimate(metadata, gpu="RTX 3060", file="llama-2-7b.Q4_K_M.gguf", serving=serving,
                              plan=PlanRequest(tp=1))[0]
        first = report.recommendations[0]
        assert len(decided) == 1 and (first.placement is decided[0]) == bool(plans_decide)
        assert report.serving.offload == decided[0].offload  # the -ngl table with this GPU's decode speeds
        largest = report.serving.engine_detail["largest_ngl"]
        assert 0 < largest < 33 and (f"-ngl {largest} " in first.command) == (ngl is None)


def test_a_plan_s_placement_is_typed_as_an_engine_s_decision():
    # Plan.placement and PlanStart.placement hold a Placement (llama.cpp's Launch is one), not any object.
    from typing import get_type_hints

    from gpumem.planning.engines import Placement, PlanStart
    from gpumem.planning.plans import Plan

    assert get_type_hints(Plan)["placement"] == get_type_hints(PlanStart)["placement"] == Placement | None
    assert isinstance(lc.Launch(largest_ngl=33, n_layer=32), Placement)


def test_a_hybrid_model_keeps_a_recurrent_state_per_slot():
    # Jamba's GGUF keys (llama.cpp's converter): a KV head count per layer, 0 on the Mamba layers.
    kv_heads = [8 if i % 8 == 4 else 0 for i in range(32)]
    metadata = {"general.architecture": "jamba", "jamba.block_count": 32, "jamba.embedding_length": 4096,
                "jamba.context_length": 262144, "jamba.feed_forward_length": 14336, "jamba.attention.head_count": 32,
                "jamba.attention.head_count_kv": kv_heads, "jamba.ssm.conv_kernel": 4, "jamba.ssm.inner_size": 8192,
                "jamba.ssm.state_size": 16, "jamba.ssm.time_step_rank": 256, "jamba.expert_count": 16,
                "jamba.expert_used_count": 2, "tokenizer.ggml.tokens": ["t"] * 65536}
    model = lc.GGUFModel.from_architecture(parse_architecture(gguf_config(metadata)))
    memory = lc.plan(model, lc.LlamaCppSettings(n_ctx=4096, n_seq=4))
    # llama_memory_recurrent: one f32 row of n_embd_r + n_embd_s per slot and Mamba layer:
    # (d_conv - 1) x d_inner + d_state x d_inner = 3 x 8192 + 16 x 8192.
    state = 28 * 4 * (3 + 16) * 8192 * 4
    kv = 4 * 4096 * 2 * 8 * 128 * 2  # the four attention layers' cache
    assert memory.kv_bytes == state + kv
    assert "28 recurrent layers keep a state per slot: 66.50 MiB for 4" in memory.notes[0]


def test_llama_cpp_s_own_flags_reach_the_breakdown_and_the_command(hub, gpumem):
    repo = hub.add_repo(fmt.llama2_gguf_repo())
    base = ("hf", repo.repo_id, "--file", "llama-2-7b.Q4_K_M.gguf", "--json")
    code, out, err = gpumem(*base, "--ngl", "20", "--n-batch", "1024", "--n-ubatch", "1024", "--flash-attn", "off")
    assert code == 0, err
    report = json.loads(out)
    model, _ = llama2_q4_k_m()
    settings = lc.LLAMACPP.settings(model, ServingOptions(engine="llama.cpp", ngl=20, n_batch=1024, n_ubatch=1024,
                                                          flash_attn="off"), n_gpus=1)
    memory = lc.plan(model, settings)
    assert (settings.ngl, settings.n_ubatch, settings.flash_attn) == (20, 1024, False)
    assert report["serving"]["per_gpu"]["activation_bytes"] == memory.gpus[0].compute
    assert report["serving"]["host_bytes"] == memory.host.total
    assert report["recommendations"][0]["command"] == (f"llama-server -hf {repo.repo_id} --hf-file "
                                                       "llama-2-7b.Q4_K_M.gguf -ngl 20 -c 4096 -np 1 -fa off -b 1024 -ub 1024")
    # -ts: each GPU's share of the layers; its length is the GPU count.
    code, out, err = gpumem(*base, "--tensor-split", "3,1", "--gpu", "RTX 3060")
    assert code == 0, err
    report = json.loads(out)
    plan = report["recommendations"][0]
    assert plan["count"] == 2 and plan["command"].endswith("-sm layer -ts 3,1")
    assert any("split the layers (-sm layer): 25, 7 + output layers" in n for n in report["serving"]["notes"])
    code, _, err = gpumem(*base, "--tensor-split", "3,1", "--tp", "4")
    assert code == 2 and "--tensor-split names 2 GPUs and --tp 4" in err
    code, _, err = gpumem(*base, "--tensor-split", "3")
    assert code == 2 and "a non-negative share for each of two GPUs or more" in err


def test_a_local_gguf_file_starts_from_its_path(tmp_path, gpumem):
    # The Llama-2-7B Q4_K_M header, then a hole as long as its tensor data: a real-size local GGUF file.
    header = (logs.ROOT / "fixtures/gguf/llama-2-7b.Q4_K_M.header.gguf").read_bytes()
    tensors = parse_gguf(header, "h.gguf").tensors
    folder = tmp_path / "my models"
    folder.mkdir()
    path = folder / "llama-2-7b.Q4_K_M.gguf"
    path.write_bytes(header)
    with open(path, "r+b") as f:
        f.truncate(-(-len(header) // 32) * 32 + sum(-(-t.nbytes // 32) * 32 for t in tensors))
    code, out, err = gpumem("local", str(path), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["recommendations"][0]["command"] == f"llama-server -m '{path}' -ngl 33 -c 4096 -np 1"
    code, out, err = gpumem("local", str(folder), "--engine", "ollama", "--json")
    assert code == 0, err
    assert f"Modelfile: FROM '{path}' / PARAMETER num_ctx 4096" in json.loads(out)["recommendations"][0]["command"]


def test_ollama_runs_a_2026_llama_server_graph():
    model, _ = llama2_q4_k_m()
    settings = lc.OLLAMA.settings(model, ServingOptions(engine="ollama"), n_gpus=1)
    assert settings.graph == lc.B8198.graph and settings.graph.glu_ffn and not settings.graph.mask_f16


def test_the_ngl_table_and_the_plan_agree_on_decode_speed(hub, gpumem):
    repo = hub.add_repo(fmt.llama2_gguf_repo())
    code, out, err = gpumem("hf", repo.repo_id, "--file", "llama-2-7b.Q4_K_M.gguf", "--gpu", "RTX 4090", "--json")
    assert code == 0, err
    report = json.loads(out)
    plan, full = report["recommendations"][0], report["serving"]["offload"][-1]
    assert plan["count"] == 1 and full["ngl"] == 33
    assert full["decode_tokens_per_s"] == pytest.approx(plan["decode_tokens_per_s"], rel=0.05)
