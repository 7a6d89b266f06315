"""Adapter repos end to end: served on their base from the fake Hub and from a local folder, several adapters
on one base, the adapter's exact counts, the base's KV cache, vLLM's slots in the weights."""

from __future__ import annotations

import json

from gpumem_dev.fakehub import adapter_files, adapter_repo, repo_from_fixture

TIGRINYA = "abrhaleyarefaine1997__gpt2-tigrinya-lora"  # base "gpt2": r 8 on c_attn + c_proj, 811,008 params
REHMAN = "Rehman54454__gpt2-qlora"  # base "openai-community/gpt2": r 8 on attn.c_attn + attn.c_proj
GPT2_PARAMETERS = 124_439_808


def json_of(gpumem, *args):
    code, out, err = gpumem(*args, "--json", *(("--no-cache",) if args[0] == "hf" else ()))
    assert code == 0, err
    return json.loads(out)


def test_adapter_repo_is_served_on_its_base(hub, gpumem):
    hub.add_repo(repo_from_fixture("openai-community__gpt2", repo_id="gpt2"))  # the Hub's old name for it
    hub.add_repo(adapter_repo(TIGRINYA))
    base = json_of(gpumem, "hf", "gpt2")
    report = json_of(gpumem, "hf", "abrhaleyarefaine1997/gpt2-tigrinya-lora")
    adapter = report["adapter"]
    assert adapter["repo_id"] == "abrhaleyarefaine1997/gpt2-tigrinya-lora"
    assert adapter["base_model"] == report["base_model"]["repo_id"] == "gpt2"
    assert (adapter["rank"], adapter["alpha"], adapter["target_modules"]) == (8, 32, ["c_attn", "c_proj"])
    assert (adapter["parameters"], adapter["weight_bytes"]) == (811_008, 3_244_032)
    assert report["parameters"] == GPT2_PARAMETERS + 811_008
    assert report["weight_bytes"] == base["weight_bytes"] + 3_244_032
    served, plain = report["serving"], base["serving"]
    assert served["per_gpu"]["kv_cache_bytes"] == plain["per_gpu"]["kv_cache_bytes"] > 0  # the base's KV cache
    slots = report["lora_serving"]
    # vLLM: one slot of rank 8 on every linear of the 12 layers (c_attn, attn.c_proj, c_fc, mlp.c_proj), bf16/fp16
    assert (slots["max_loras"], slots["max_lora_rank"], slots["wrapped_modules"]) == (1, 8, 48)
    assert slots["slot_bytes_per_gpu"] == 2 * 8 * 12 * ((768 + 2304) + (768 + 768) + (768 + 3072) + (3072 + 768))
    assert served["per_gpu"]["weights_bytes"] == plain["per_gpu"]["weights_bytes"] + slots["slot_bytes_per_gpu"]


def test_several_adapters_on_one_base(hub, gpumem):
    hub.add_repo(adapter_repo(TIGRINYA))
    hub.add_repo(adapter_repo(REHMAN))
    report = json_of(gpumem, "hf", "openai-community/gpt2", "--lora", "abrhaleyarefaine1997/gpt2-tigrinya-lora",
                     "--lora", "Rehman54454/gpt2-qlora")
    assert [a["parameters"] for a in report["adapters"]] == [811_008, 442_368]
    assert "adapter" not in report
    assert report["parameters"] == GPT2_PARAMETERS + 811_008 + 442_368
    assert (report["lora_serving"]["max_loras"], report["lora_serving"]["max_lora_rank"]) == (2, 8)


def test_transformers_loads_the_adapter_itself(hub, gpumem):
    hub.add_repo(adapter_repo(REHMAN))
    plain = json_of(gpumem, "hf", "openai-community/gpt2", "--engine", "transformers")
    report = json_of(gpumem, "hf", "Rehman54454/gpt2-qlora", "--engine", "transformers")
    assert report["lora_serving"] is None
    assert report["serving"]["per_gpu"]["weights_bytes"] == plain["serving"]["per_gpu"]["weights_bytes"] + 4 * 442_368


def test_local_adapter_folder_reads_its_base_from_the_hub(hub, gpumem, tmp_path):
    for name, file in adapter_files(REHMAN).items():
        (tmp_path / name).write_bytes(file.read())
    report = json_of(gpumem, "local", str(tmp_path))
    assert report["adapter"]["base_model"] == "openai-community/gpt2"
    assert report["adapter"]["parameters"] == 442_368
    assert report["parameters"] == GPT2_PARAMETERS + 442_368


def test_lora_that_is_not_an_adapter_is_refused(hub, gpumem):
    code, _, err = gpumem("hf", "openai-community/gpt2", "--lora", "openai-community/gpt2", "--no-cache")
    assert code == 5
    assert err.splitlines()[0] == ("Error: openai-community/gpt2 is not a PEFT adapter (no adapter_config.json "
                                   "beside adapter_model.safetensors)")


def test_train_on_an_adapter_points_at_its_base(hub, gpumem):
    hub.add_repo(adapter_repo(REHMAN))
    code, _, err = gpumem("train", "Rehman54454/gpt2-qlora", "--no-cache")
    assert code == 2
    assert err.splitlines() == ["Error: Rehman54454/gpt2-qlora is a LoRA adapter: plan the training on its base model",
                                ("Hint: `gpumem train openai-community/gpt2 --method lora --rank 8 "
                                 "--target-modules attn.c_attn,attn.c_proj`")]
    code, out, err = gpumem("train", "openai-community/gpt2", "--method", "lora", "--rank", "8", "--target-modules",
                            "attn.c_attn,attn.c_proj", "--json", "--no-cache")
    assert code == 0, err
    assert json.loads(out)["training"]["trainable_parameters"] == 442_368  # the adapter's own header count


def test_vllm_command_serves_the_adapters():
    from conftest import manifest_tensors

    from gpumem.model.adapters import LoraServing, base_modules
    from gpumem.planning.engines import get_engine
    from gpumem.planning.memory import ServingOptions

    lora = LoraServing(base_modules(manifest_tensors("openai-community__gpt2"), "gpt2"), (8, 8), 811_008 + 442_368,
                       repos=("abrhaleyarefaine1997/gpt2-tigrinya-lora", "Rehman54454/gpt2-qlora"))
    command = get_engine("vllm").command("gpt2", ServingOptions(context=1024, lora=lora), 1)
    assert command.endswith("--enable-lora --lora-modules gpt2-tigrinya-lora=abrhaleyarefaine1997/gpt2-tigrinya-lora "
                            "gpt2-qlora=Rehman54454/gpt2-qlora --max-loras 2 --max-lora-rank 8")
