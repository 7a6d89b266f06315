"""The model summary: one pass over the tensors, classes that keep exact per-GPU bytes, and the cache keeping it."""

from __future__ import annotations

import json

import pytest

from gpumem.model.architecture import parse_architecture
from gpumem.model.params import NameParts, count_weights, summarize_table, summarize_weights
from gpumem.model.types import ModelSummary, TensorTable
from gpumem.planning.memory import active_parameters, weights_per_gpu, what_if_bytes
from gpumem.reading.snapshot import load_snapshot
from gpumem_dev.fakehub import adapter_repo, repo_from_fixture


@pytest.fixture(scope="module")
def deepseek():
    (weights,) = load_snapshot("deepseek-ai/DeepSeek-R1").weight_sets
    return weights, summarize_weights(weights.tensors, weights.config)


def test_92k_tensors_fall_into_few_classes_that_name_every_tensor(deepseek):
    weights, summary = deepseek
    assert len(weights.tensors) == 91_991 and len(summary.classes) < 100
    assert sum(c.count for c in summary.classes) == len(weights.tensors)
    assert sorted(t.name for t in summary.tensors()) == sorted(t.name for t in weights.tensors)
    assert summary.count == count_weights(weights.tensors, weights.config)
    roles = {c.role for c in summary.classes}
    assert {"routed_expert", "shared_expert", "dense", "embedding", "head"} <= roles
    down = {c.module for c in summary.classes if c.role == "routed_expert"}
    assert "mlp.experts.down_proj" in down


def test_names_read_header_by_header_count_as_the_whole_table(deepseek):
    # The Hub reader makes each header's NameParts as it arrives; joined, they must say what the whole table says.
    weights, summary = deepseek
    table = TensorTable.of(weights.tensors)
    names = NameParts.concat(NameParts.of(table.names[i:i + 5000]) for i in range(0, len(table), 5000))
    assert names == NameParts.of(table.names)
    assert summarize_table(table, weights.config, names=names) == summary


@pytest.mark.parametrize("rows", [4999, 7])
def test_names_read_in_pieces_that_cut_modules_and_mix_plain_names_count_as_the_whole_table(rows):
    # A module whose tensors run on from one header into the next is one run; gpt-oss's MXFP4 `<proj>_blocks`
    # names are not cut at their last dot, so some pieces are plain and some are not.
    from gpumem_dev.fakehub import formats as fmt
    from gpumem_dev.fakehub.layouts import tensor

    deepseek = load_snapshot("deepseek-ai/DeepSeek-R1").weight_sets[0]
    gpt_oss = fmt.gpt_oss_config()
    for tensors, config in ((deepseek.tensors, deepseek.config), ([tensor(*t) for t in fmt.gpt_oss_layout(gpt_oss)],
                                                                  gpt_oss)):
        table = TensorTable.of(tensors)
        names = NameParts.concat(NameParts.of(table.names[i:i + rows]) for i in range(0, len(table), rows))
        assert names == NameParts.of(table.names)
        assert summarize_table(table, config, names=names) == summarize_weights(tensors, config)


def test_the_summary_round_trips_through_json(deepseek):
    _, summary = deepseek
    assert ModelSummary.from_dict(json.loads(json.dumps(summary.to_dict()))) == summary


@pytest.mark.parametrize(("template", "sites"), [("m.#.w", ("3",)), ("m.#.#.w", ("3.0", "3.1", "12.255")),
                                                 ("x.#", ("",)), ("x.#", ("", "")), ("m.w", ())])
def test_a_class_round_trips_its_sites_as_one_string(template, sites):
    # A name's own `#` (not an index) leaves an empty site: one empty site is not no sites.
    from gpumem.model.types import TensorClass

    row = TensorClass("split", "dense", "m", "w", "BF16", (2, 3), 12, 6, max(1, len(sites)), template, sites)
    encoded = json.loads(json.dumps(row.to_row()))
    assert isinstance(encoded[-1], str) and TensorClass.from_row(encoded) == row


@pytest.mark.parametrize("tp", [1, 2, 4, 8, 16])
@pytest.mark.parametrize("bits", [None, 4, 4.5])
def test_per_gpu_bytes_equal_the_per_tensor_sum(deepseek, tp, bits):
    # Per tensor: replicated whole, the rest rounded up per tensor; what the classes multiply out must match.
    weights, summary = deepseek
    by_name = {t.name: t for t in weights.tensors}
    expected = 0
    for c in summary.classes:
        for name in c.names():
            size = by_name[name].nbytes if bits is None else what_if_bytes(c, bits)
            expected += size if c.split == "replicated" else -(-size // tp)
    assert weights_per_gpu(summary, tp, bits) == expected


def test_active_parameters_of_deepseek(deepseek):
    weights, summary = deepseek
    # DeepSeek-V3/R1: 671B + 14B MTP stored, ~37B activated per token (+ the MTP layer's share here).
    assert 37e9 < active_parameters(summary, parse_architecture(weights.config)) < 41e9


def test_a_cached_answer_is_the_fresh_one(hub, gpumem):
    # The cache keeps summaries (no tensors) for the base and the tensors of a (small) adapter.
    hub.add_repo(repo_from_fixture("openai-community__gpt2", repo_id="gpt2"))
    hub.add_repo(adapter_repo("abrhaleyarefaine1997__gpt2-tigrinya-lora"))
    for repo in ("mistralai/Mixtral-8x7B-v0.1", "abrhaleyarefaine1997/gpt2-tigrinya-lora"):
        answers = []
        for _ in range(2):
            code, out, err = gpumem("hf", repo, "--json")
            assert code == 0, err
            answers.append(json.loads(out))
        fresh, cached = answers
        assert (fresh["source"], cached["source"]) == ("hub", "cache")
        assert {**cached, "source": "hub"} == fresh


def test_scanning_groups_of_modules_alike_gives_the_module_by_module_answer(deepseek):
    # summarize scans one module per group of modules alike (DeepSeek-R1: 46k modules, a few dozen groups);
    # scan_quantization scans every module on its own.
    from gpumem.model.quantization import scan_quantization

    weights, summary = deepseek
    scan = scan_quantization(weights.tensors, weights.config)
    assert summary.count.quantization == scan.quantization
    assert summary.count.quantization.method == "fp8-block"
    side = sum(c.nbytes * c.count for c in summary.classes if c.role == "side")
    assert side == scan.quantization.side_data_bytes and len(scan.side) == sum(
        c.count for c in summary.classes if c.role == "side")


def test_the_hub_reader_keeps_the_summary_of_a_lone_model_and_no_tensors(hub):
    # What the cache keeps (a summary, no object per tensor) is what a fresh read returns.
    from gpumem import api

    metadata = api.inspect_repo("mistralai/Mixtral-8x7B-v0.1", options=api.HubOptions(endpoint=hub.endpoint,
                                                                                        use_cache=False))
    (weights,) = metadata.weight_sets
    assert weights.tensors == () and weights.summary is not None
    assert weights.summary.count.parameters == 46_702_792_704


def test_a_joined_table_reads_as_the_tables_it_joins():
    tensors = load_snapshot("openai-community/gpt2").weight_sets[0].tensors
    pieces = [TensorTable.of(tensors[i:i + 25]) for i in range(0, len(tensors), 25)] + [TensorTable()]
    joined, whole = TensorTable.concat(pieces), TensorTable.of(tensors)
    assert joined == whole and len(joined) == len(whole) and joined.tensors() == whole.tensors()
    for column, expected in zip(
            (joined.names, joined.dtypes, joined.shapes, joined.nbytes, joined.files),
            (whole.names, whole.dtypes, whole.shapes, whole.nbytes, whole.files), strict=True):
        assert [column[i] for i in range(-len(expected), len(expected))] == list(expected) * 2
        assert column[3:30:4] == expected[3:30:4] and hash(column) == hash(expected)
        with pytest.raises(IndexError):
            column[len(expected)]


def test_tensors_stored_by_dtype_count_as_in_model_order():
    # safetensors' writer stores a file's tensors by dtype, then name: a module's FP8 weight and its F32 scale lie
    # apart, within a header and across headers, and a module's runs are joined in counting.
    deepseek = load_snapshot("deepseek-ai/DeepSeek-R1").weight_sets[0]
    tensors = sorted(deepseek.tensors, key=lambda t: (t.dtype != "BF16", t.dtype, t.name))
    table = TensorTable.of(tensors)
    names = NameParts.concat(NameParts.of(table.names[i:i + 564]) for i in range(0, len(table), 564))
    summary = summarize_table(table, deepseek.config, names=names)
    assert summary == summarize_weights(tensors, deepseek.config)
    assert summary.count == summarize_weights(deepseek.tensors, deepseek.config).count
    assert sorted(t.name for t in summary.tensors()) == sorted(t.name for t in tensors)
