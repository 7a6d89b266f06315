"""SGLang: a static fraction of the GPU (`--mem-fraction-static`) holds the weights and the KV pool; CUDA graphs,
activations and NCCL live in the rest. Rules read from SGLang's released sources (paths and versions in
../shared/reference/sglang-memory.md, copied as notes here) and checked on the startup logs people posted
(fixtures/measurements/sglang-public-logs.jsonl, tests/test_sglang_logs.py).

- KV pool: `rest = free_after_weights - free_before_weights x (1 - f)` GiB (model_runner.py
  `profile_max_num_token`, 0.4.6 L689-710; 0.5.10 model_runner_kv_cache_mixin.py), where free_before is what
  `torch.cuda.mem_get_info` reports after torch.distributed init: the CUDA-visible total less the context. So the
  pool is `f x free_before - weights`; "#tokens" = pool // (layers x kv_heads/TP x head_dim x 2 x bytes).
- Default f, by version (server_args.py): 0.4.0-0.4.5 by TP size (0.88 / 0.87 / 0.85 / 0.81 / 0.79 at TP 1 / 2 /
  4 / 8 / 16); 0.4.8-0.5.2 a reserve by GPU band of nvidia-smi MiB (`(2.8 + tp x pp/10)` GiB under 35 GiB,
  `9.5 + tp x pp/2` under 90, `12 + tp x pp/2` under 160, 32 above); 0.5.3+ `512 + 1.5 x max(chunked_prefill_size,
  2048) + 2 x cuda_graph_max_bs + tp x pp/8 x 1024` MiB, at least 10 GiB on cards over 60 GiB, with the band's
  chunked size and graph batch. `gpu_mem` is nvidia-smi's total in MiB (the catalog's `usable_mib`).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...model.activations import activation_bytes_per_token
from . import MIB, Engine, EngineConstants, GpuTarget

if TYPE_CHECKING:
    from ...model.architecture import Architecture
    from ..memory import ServingOptions

GIB = 2**30
# Free memory SGLang measures before loading weights, below the CUDA-visible total: the CUDA context and
# torch.distributed init (logs: H100 78.81 of 79.19 GiB at TP 1).
PRE_LOAD_BYTES = int(0.38 * GIB)
# (upper bound in MiB, chunked_prefill_size, cuda_graph_max_bs at tp < 4, at tp >= 4), 0.5.3-0.5.15 server_args.py
_BANDS_053 = ((20 * 1024, 2048, 8, 8), (35 * 1024, 2048, 16, 80), (60 * 1024, 4096, 32, 160),
              (90 * 1024, 8192, 256, 512), (160 * 1024, 8192, 256, 512), (10**9, 16384, 512, 512))


@dataclass(frozen=True, slots=True)
class SglangConstants(EngineConstants):
    """One SGLang version's rule for the default `mem_fraction_static`."""

    fraction_rule: str = "reserve-0.5.3"  # "tp-table-0.4" | "band-0.4.8" | "reserve-0.5.3"
    cuda_graph_bytes: int = 512 * MIB  # in the (1 - f) part (logs: 0.11-0.93 GiB)


@dataclass(frozen=True)
class Sglang(Engine[SglangConstants]):
    """SGLang's memory behaviour: weights + KV pool = f x free memory; everything else in the rest."""

    activations_outside_budget = True
    budget_label = "static memory budget"  # --mem-fraction-static of the memory free before weights load
    # Multi-node (docs.sglang.io, multi-node deployment): every node runs the server with --nnodes, its own
    # --node-rank and node 0's address as --dist-init-addr (the docs' example port: 20000); no Ray.
    across_nodes = "these plans run SGLang's tensor parallel inside a node and its pipeline parallel (--pp-size) across nodes"
    start_across_nodes = "run the command on every node, each with its --node-rank"
    node_commands_title = "the server on every node, each with its --node-rank (NODE0_IP: node 0's address)"

    def _gpu_mem_mib(self, options: ServingOptions) -> int:
        gpu = options.gpu
        if gpu is None:
            return 81559  # an H100 80GB, as nvidia-smi reports it
        return (gpu.driver_total_bytes or gpu.total_bytes) // MIB

    def mem_fraction_static(self, options: ServingOptions) -> float:
        """The user's --mem-fraction-static, else the version's default for this GPU and TP size."""
        if options.mem_fraction_static is not None:
            return options.mem_fraction_static
        rule = self.constants(options).fraction_rule
        tp = options.tp
        if rule == "tp-table-0.4":
            return 0.79 if tp >= 16 else 0.81 if tp >= 8 else 0.85 if tp >= 4 else 0.87 if tp >= 2 else 0.88
        gpu_mem = self._gpu_mem_mib(options)
        parallel = tp * options.pp  # 0.4.8+ reserve on tp_size x pp_size
        if rule == "band-0.4.8":
            if gpu_mem < 35 * 1024:
                reserved = (2.8 + parallel / 10) * 1024
            elif gpu_mem < 90 * 1024:
                reserved = (9.5 + parallel / 2) * 1024
            elif gpu_mem < 160 * 1024:
                reserved = (12 + parallel / 2) * 1024
            else:
                reserved = 32 * 1024
            return round((gpu_mem - reserved) / gpu_mem, 3)
        _, chunked, small_bs, large_bs = next(b for b in _BANDS_053 if gpu_mem < b[0])
        reserved = 512 + max(chunked, 2048) * 1.5 + (large_bs if tp >= 4 else small_bs) * 2 + parallel / 8 * 1024
        if gpu_mem > 60 * 1024:
            reserved = max(reserved, 10 * 1024)
        return round((gpu_mem - reserved) / gpu_mem, 3)

    def gpu_class(self, gpu: GpuTarget) -> Hashable:
        """None: only the budget reads the GPU (the default --mem-fraction-static), not the breakdown."""
        return None

    def budget(self, usable_bytes: int, options: ServingOptions) -> int:
        """f x the free memory before weights load (CUDA-visible total less the context)."""
        return int((usable_bytes - PRE_LOAD_BYTES) * self.mem_fraction_static(options))

    def overhead(self, options: ServingOptions) -> int:
        """CUDA context and graphs (+ NCCL at TP > 1), all outside the static fraction."""
        return Engine.overhead(self, options) + self.constants(options).cuda_graph_bytes

    def overhead_outside_budget(self, options: ServingOptions) -> int:
        """All of it: the static fraction holds only weights and the KV pool."""
        return self.overhead(options)

    def activation_peak(self, arch: Architecture, options: ServingOptions, context: int) -> tuple[int, int]:
        """One chunked-prefill step (8192 tokens on H100-class cards), outside the static fraction."""
        return 8192 * activation_bytes_per_token(arch, options.tp), 0

    def max_sequences(self, options: ServingOptions) -> int:
        """SGLang caps running requests at 4096 (tp_worker.py)."""
        return 4096

    def without_pipeline_parallel(self, options: ServingOptions) -> str | None:
        """A version before --pp-size (0.4.6.post2): no TP x PP shape, no plan across nodes. Decided on the version
        asked: the modelled 0.4's memory rules also serve 0.4.6.post2-0.4.7, which have --pp-size."""
        asked = options.engine_version or self.constants(options).version
        if _release(asked) >= _FIRST_WITH_PIPELINE_STAGES:
            return None
        return f"SGLang {asked} has no pipeline parallel (--pp-size came in 0.4.6.post2)"

    def command(self, repo_id: str, options: ServingOptions, gpus: int) -> str:
        """The SGLang launch line."""
        parts = [f"python -m sglang.launch_server --model-path {repo_id}"]
        if options.tp > 1:
            parts.append(f"--tp {options.tp}")
        if options.pp > 1:
            parts.append(f"--pp-size {options.pp}")
        parts.append(f"--context-length {options.context}")
        if options.mem_fraction_static is not None:
            parts.append(f"--mem-fraction-static {options.mem_fraction_static}")
        if options.kv_dtype == "fp8":
            parts.append("--kv-cache-dtype fp8_e5m2")
        return " ".join(parts)

    def launch_across_nodes(self, command: str, options: ServingOptions, nodes: int) -> tuple[str, tuple[str, ...]]:
        """The launch line on every node with --nnodes, its --node-rank and node 0's --dist-init-addr; the plan's
        command is node 0's."""
        lines = tuple(f"{command} --nnodes {nodes} --node-rank {rank} --dist-init-addr NODE0_IP:20000"
                      for rank in range(nodes))
        return lines[0], lines

# --pp-size (--pipeline-parallel-size): first in 0.4.6.post2's server_args.py, absent from 0.4.0-0.4.6.post1's (the
# PyPI wheels). --nnodes / --node-rank / --dist-init-addr are older (0.4.0), but without stages they span nodes only as
# one TP group, which plans do not.
_FIRST_WITH_PIPELINE_STAGES = (0, 4, 6, 2)


def _release(version: str) -> tuple[int, ...]:
    """A release's numbers, a .postN as one more ("0.4.6.post2" -> (0, 4, 6, 2)); "0.4" -> (0, 4), before every 0.4.x.
    Versions reach here only once resolve_version has matched them to a modelled one."""
    numbers, _, post = version.strip().removeprefix("v").partition(".post")
    return (*(int(part) for part in numbers.split(".") if part.isdigit()), *((int(post),) if post.isdigit() else ()))


_RESERVE = SglangConstants(version="0.5")
_BAND = SglangConstants(version="0.4.8", fraction_rule="band-0.4.8")
SGLANG = Sglang(
    name="sglang", label="SGLang",
    versions={
        "0.5": _RESERVE,
        "0.5.2": SglangConstants(version="0.5.2", fraction_rule="band-0.4.8"),
        "0.5.1": SglangConstants(version="0.5.1", fraction_rule="band-0.4.8"),
        "0.5.0": SglangConstants(version="0.5.0", fraction_rule="band-0.4.8"),
        "0.4.10": SglangConstants(version="0.4.10", fraction_rule="band-0.4.8"),
        "0.4.9": SglangConstants(version="0.4.9", fraction_rule="band-0.4.8"),
        "0.4.8": _BAND,
        "0.4": SglangConstants(version="0.4", fraction_rule="tp-table-0.4"),
    },
    vendors=frozenset({"NVIDIA", "AMD"}),
    formats=frozenset({"safetensors", "pytorch-bin"}),
    paged_kv=True,
)
