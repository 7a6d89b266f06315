"""The `gpumem` command line: flags -> one api call -> one renderer. No math and no HTTP here.

Only click is imported at start-up; the API, rich and the HTTP stack load inside the commands
that need them, so `gpumem --help` and `gpumem calc` start fast.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import gc
import os
import re
import sys

import click

from .constants import CALC_BITS, debug_enabled
from .errors import GpumemError
from .planning.engines import DEFAULT_ENGINE, ENGINES
from .planning.options import OPTIMIZERS, PRECISIONS, TRAINING_METHODS, ServingOptions, TrainingOptions
from .reading.sources import HubOptions


def _field_defaults(options_class) -> dict:
    """An options dataclass's field defaults, read without constructing one (ServingOptions() validates its
    kv_dtype against every engine, which would import them all at start-up)."""
    return {field.name: field.default for field in dataclasses.fields(options_class)}


# Defaults come from the options dataclasses, so the library and the CLI cannot disagree.
_SERVING = _field_defaults(ServingOptions)
_HUB = HubOptions()

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
FORMATS = ("table", "json", "markdown", "csv")


class _State:
    """Per-invocation flags the error handler in `main` needs."""

    debug = False
    client = None  # the HubClient of this run, for the --debug request log
    notes: list[str] = []  # said after the answer (an error instead is the one line that run prints)


def _check_svg_folder(ctx, param, value):
    """Refuse an --svg path whose folder does not exist before any work is done."""
    if value and not os.path.isdir(os.path.dirname(os.path.abspath(value))):
        raise click.BadParameter(f"the folder of {value!r} does not exist", ctx=ctx, param=param)
    return value


def _finite(ctx, param, value):
    """FloatRange lets NaN through (every comparison with NaN is false)."""
    if value is not None and value != value:
        raise click.BadParameter("nan is not a number of seconds", ctx=ctx, param=param)
    return value


def _output_options(command):
    """--json / --format / --svg / --quiet, shared by every report."""
    @click.option("--json", "json_", is_flag=True, help="Print JSON (same as --format json).")
    @click.option("--format", "format_", type=click.Choice(FORMATS), default="table", show_default=True,
                  help="Output format.")
    @click.option("--svg", "svg", type=click.Path(dir_okay=False, writable=True), callback=_check_svg_folder,
                  help="Also save the table view as an SVG image (with any --format).")
    @click.option("--quiet", "-q", is_flag=True, help="No progress or warnings on stderr.")
    @click.option("--debug", is_flag=True, help="On error, show the traceback and the request log (token redacted).")
    @functools.wraps(command)
    def wrapper(*args, json_, format_, svg, quiet, debug, **kwargs):
        _State.debug = debug or _State.debug
        output = {"format": "json" if json_ else format_, "svg": svg, "quiet": quiet}
        return command(*args, output=output, **kwargs)
    return wrapper


class _Context(click.ParamType):
    """Tokens per sequence as model cards write them: 4096, 32k, 128K, 1M (k and M are 1024-based)."""

    name = "TOKENS"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        from .errors import UsageError
        from .inputs import parse_context

        try:
            return parse_context(str(value))
        except UsageError as exc:
            self.fail(exc.message, param, ctx)


class _Shares(click.ParamType):
    """llama.cpp's -ts: a share per GPU, comma-separated (3,1 or 0.6,0.4)."""

    name = "A,B,..."

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            shares = tuple(float(part) for part in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r} is not a list of shares like 3,1", param, ctx)
        if len(shares) < 2 or min(shares) < 0 or not sum(shares) > 0:
            self.fail(f"{value!r}: give a non-negative share for each of two GPUs or more, e.g. 3,1", param, ctx)
        return shares


def _context_asked() -> bool:
    """Whether the user gave --context (a default context is capped at the model's maximum without a note)."""
    ctx = click.get_current_context(silent=True)
    return ctx is None or ctx.get_parameter_source("context") is not click.core.ParameterSource.DEFAULT


def _repo_references(ctx, param, value) -> list[tuple[str, str | None]]:
    """Click callback of the repo-id arguments: (repo id, revision or None) of each id or pasted Hub URL, checked while
    the command line is read, so a malformed one is refused before the API or the HTTP stack loads."""
    return _checked_references([value] if isinstance(value, str) else value)


def _file_references(ctx, param, file) -> list[tuple[str, str | None]]:
    """Click callback of --from-file (a file, a pipe or `-`): its repo ids, one per line (# starts a comment), read
    (at most 16 MiB, as UTF-8 text) and checked like the command line's."""
    if file is None:
        return []
    from .constants import SMALL_FILE_CAP
    from .errors import UsageError

    data = file.read(SMALL_FILE_CAP + 1)
    if len(data) > SMALL_FILE_CAP:
        raise UsageError(f"--from-file: over {SMALL_FILE_CAP:,} bytes; refusing to read it as a list of repo ids")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(f"--from-file: not UTF-8 text (byte {exc.start + 1:,})",
                         hint="one repo id per line, # starts a comment") from None
    return _checked_references([line.split("#", 1)[0].strip() for line in text.splitlines()])


def _checked_references(texts) -> list[tuple[str, str | None]]:
    """(repo id, revision or None) of each non-empty text (pasted Hub URLs read as ids), each one the Hub can hold."""
    from urllib.parse import urlsplit

    from .constants import hf_endpoint
    from .inputs import parse_repo_reference
    from .reading.repo_ids import validate_repo_id, validate_revision

    host = urlsplit(hf_endpoint(None)).hostname
    references = [parse_repo_reference(text, host) for text in texts if text]
    for repo_id, revision in references:
        validate_repo_id(repo_id)
        if revision is not None:
            validate_revision(revision)
    return references


def _valid_revision(ctx, param, value: str) -> str:
    """Click callback of --revision: one no git ref can be is refused while the command line is read."""
    from .reading.repo_ids import validate_revision

    validate_revision(value)
    return value


def _known_gpus(ctx, param, value):
    """Click callback of every --gpu: an unknown name is refused while the command line is read, before the API, the
    writers or the HTTP stack load (a one-line error, exit code 2)."""
    if value:
        from .planning.gpus import find_gpu

        for name in (value,) if isinstance(value, str) else value:
            find_gpu(name)
    return value


def _gpu_names(names: tuple[str, ...], quiet: bool) -> tuple[str, ...]:
    """The --gpu names, each once; say which GPU a short name picked when it could mean several."""
    from .inputs import gpu_choice_note
    from .planning.gpus import find_gpu, load_catalog

    catalog = [g.name for g in load_catalog()]
    for name in names:
        note = gpu_choice_note(name, find_gpu(name).name, catalog)
        if note and not quiet:
            _State.notes.append(note)
    return tuple(dict.fromkeys(names))


_GPU_HELP = 'GPU type to answer for, e.g. "RTX 4090", a100-80gb, h100 (repeatable).'

# Serving flags that `fit` shares with the report commands.
_CONTEXT_OPTION = click.option("--context", type=_Context(), default=_SERVING["context"], show_default=True,
                               help="Tokens per sequence: 4096, 32k, 128K, 1M.")
# Every engine's kv_dtypes (options.all_kv_dtypes(), which would import every engine module at start-up;
# test_engines keeps the two equal).
_KV_DTYPE_OPTION = click.option(
    "--kv-dtype", type=click.Choice(["auto", "bf16", "fp16", "fp8", "f16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1",
                                     "iq4_nl", "f32"]),
    default=_SERVING["kv_dtype"], show_default=True,
    help="KV cache element type (llama.cpp/ollama: its --cache-type-k/-v values f16, q8_0, q4_0 ...).")


def _engine_options(command):
    """--engine (choices: the engine table) and --engine-version (default: the newest modelled)."""
    @click.option("--engine", type=click.Choice(list(ENGINES)), default=None,
                  help=f"Serving engine whose memory behaviour to model [default: {DEFAULT_ENGINE}; llama.cpp for "
                       f"GGUF files].")
    @click.option("--engine-version", help="Engine version to model, e.g. 0.11 (default: the newest modelled).")
    @click.option("--gpu-memory-utilization", type=click.FloatRange(0, 1, min_open=True),
                  help="vLLM: fraction of the GPU's CUDA-visible memory the engine may use (default: the version's).")
    @click.option("--max-num-batched-tokens", type=click.IntRange(1),
                  help="vLLM: tokens per scheduled step, the profile run's prefill (default: per GPU and version).")
    @click.option("--max-num-seqs", type=click.IntRange(1),
                  help="vLLM: sequences at once, the profile run's sampler pass (default: per GPU and version).")
    @click.option("--enforce-eager", is_flag=True, help="vLLM: no CUDA graphs.")
    @click.option("--mem-fraction-static", type=click.FloatRange(0, 1, min_open=True),
                  help="SGLang: fraction of the GPU for weights + KV pool (default: by GPU size and version).")
    @click.option("--ngl", type=click.IntRange(0),
                  help="llama.cpp/ollama: layers on the GPUs (-ngl), the output layer counted (default: all).")
    @click.option("--n-batch", type=click.IntRange(1), help="llama.cpp: logical batch, -b (default: 2048; ollama 512).")
    @click.option("--n-ubatch", type=click.IntRange(1),
                  help="llama.cpp: physical batch, -ub, the tokens compute buffers are sized for (default: 512).")
    @click.option("--flash-attn", type=click.Choice(["on", "off", "auto"]),
                  help="llama.cpp: -fa (default: auto, on where the GPU supports it).")
    @click.option("--tensor-split", type=_Shares(), metavar="A,B,...",
                  help="llama.cpp: -ts, each GPU's share of the layers, e.g. 3,1 (sets the GPU count).")
    @functools.wraps(command)
    def wrapper(*args, engine, engine_version, gpu_memory_utilization, max_num_batched_tokens, max_num_seqs,
                enforce_eager, mem_fraction_static, ngl, n_batch, n_ubatch, flash_attn, tensor_split, **kwargs):
        if engine_version is not None:  # checked once both flags are parsed, before any work
            from .errors import UsageError

            try:
                ENGINES[engine or DEFAULT_ENGINE].resolve_version(engine_version)
            except UsageError as exc:
                raise click.BadParameter(exc.message, param_hint="'--engine-version'") from None
        settings = {"gpu_memory_utilization": gpu_memory_utilization, "max_num_batched_tokens": max_num_batched_tokens,
                    "max_num_seqs": max_num_seqs, "enforce_eager": enforce_eager,
                    "mem_fraction_static": mem_fraction_static, "ngl": ngl, "n_batch": n_batch,
                    "n_ubatch": n_ubatch, "flash_attn": flash_attn, "tensor_split": tensor_split}
        return command(*args, engine=engine, engine_version=engine_version,
                       engine_settings={k: v for k, v in settings.items() if v is not None}, **kwargs)
    return wrapper


def _serving_options(command):
    """--bits and the serving flags shared by hf, local and compare."""
    @click.option("--bits", type=click.FloatRange(1, 64),
                  help="Load width for the formula and the what-if (default: the checkpoint's own).")
    @click.option("--gpu", "gpus", multiple=True, callback=_known_gpus, help=_GPU_HELP)
    @_CONTEXT_OPTION
    @click.option("--concurrency", type=click.IntRange(1, 1_000_000), default=_SERVING["concurrency"], show_default=True,
                  help="Sequences served at once.")
    @_KV_DTYPE_OPTION
    @_plan_options
    @_engine_options
    @functools.wraps(command)
    def wrapper(*args, bits, gpus, context, concurrency, kv_dtype, engine, engine_version, engine_settings, plan,
                **kwargs):
        split = engine_settings.get("tensor_split")
        if split and plan.tp not in (None, len(split)):
            raise click.BadParameter(f"--tensor-split names {len(split)} GPUs and --tp {plan.tp}",
                                     param_hint="'--tensor-split'")
        if split:  # llama.cpp splits the layers over as many GPUs as -ts has shares
            plan = dataclasses.replace(plan, tp=len(split))
        gpu = _gpu_names(gpus, kwargs.get("quiet", False)) or None
        serving = ServingOptions(engine=engine, engine_version=engine_version, context=context,
                                 concurrency=concurrency, kv_dtype=kv_dtype, context_asked=_context_asked(),
                                 **engine_settings)
        return command(*args, bits=bits, gpu=gpu, serving=serving, plan=plan, **kwargs)
    return wrapper


def _plan_options(command):
    """--tp / --pp / --nodes fix the plans' shape; --vendor, --all and --price pick and price them."""
    @click.option("--tp", type=int, help="Tensor-parallel size of every plan (default: chosen per GPU).")
    @click.option("--pp", type=int, help="Pipeline-parallel stages of every plan (default: chosen per GPU).")
    @click.option("--nodes", type=int, help="Nodes every plan spans, at most 8 (default: as few as fit).")
    @click.option("--vendor", "vendors", multiple=True, help="Only GPUs of this vendor: NVIDIA, AMD, Intel (repeatable).")
    @click.option("--all", "show_all", is_flag=True,
                  help="Every GPU type of the catalog, the engine's or not (default: at most 8 plans).")
    @click.option("--price", "prices", multiple=True, metavar="GPU=USD",
                  help="Your $ per GPU-hour, e.g. --price H100=2.49 (repeatable; also $GPUMEM_PRICES, docs/prices.md).")
    @functools.wraps(command)
    def wrapper(*args, tp, pp, nodes, vendors, show_all, prices, **kwargs):
        from .api import plan_request
        from .planning.plans import PlanRequest
        from .planning.prices import load_prices, parse_price_option, user_prices_file

        overrides = [parse_price_option(p) for p in prices]
        plan = plan_request(PlanRequest(tp=tp, pp=pp, nodes=nodes, vendors=tuple(vendors), show_all=show_all,
                                        prices=load_prices(overrides, user_file=user_prices_file())))
        return command(*args, plan=plan, **kwargs)
    return wrapper


def _hub_options(command):
    """--revision / --token / --offline / --no-cache / --timeout."""
    @click.option("--revision", default="main", show_default=True, callback=_valid_revision,
                  help="Branch, tag, commit sha or refs/pr/N.")
    @click.option("--token", help="Hugging Face token (default: HF_TOKEN or the saved login).")
    @click.option("--offline", is_flag=True, help="No network: answer from the cache or the built-in snapshot.")
    @click.option("--no-cache", is_flag=True, help="Neither read nor write the result cache.")
    @click.option("--timeout", type=click.FloatRange(0, 86_400, min_open=True), default=_HUB.deadline,
                  show_default=True, callback=_finite,
                  help="Give up after this many seconds.")
    @functools.wraps(command)
    def wrapper(*args, revision, token, offline, no_cache, timeout, **kwargs):
        hub = HubOptions(token=token, offline=True if offline else None, use_cache=not no_cache, deadline=timeout)
        return command(*args, revision=revision, hub=hub, **kwargs)
    return wrapper


class _PipeClosed(Exception):
    """stdout's reader went away (`gpumem ... | head`); not an OSError, so click does not exit 1 on it."""


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            raise _PipeClosed() from None


@click.group(cls=_Group, context_settings=CONTEXT_SETTINGS, invoke_without_command=True)
@click.version_option(package_name="gpumem", prog_name="gpumem")
@click.pass_context
def cli(ctx):
    """How much GPU memory does a model need, and which GPUs should you rent?

    gpumem reads a model's safetensors or GGUF headers from the Hugging Face Hub (never the
    weights), counts the parameters exactly, applies the formula M = P x 4 / (32 / Q) x 1.2 and a
    real serving breakdown (weights, KV cache, activations, overhead), and recommends GPUs.

    \b
    Examples:
      gpumem hf meta-llama/Llama-2-70b-hf --bits 4
      gpumem calc --params 70B --bits 16
      gpumem gpus
    """
    if ctx.invoked_subcommand is None:  # bare `gpumem`: the help, which is not an error
        click.echo(ctx.get_help())


@cli.command()
@click.argument("references", nargs=-1, metavar="REPO_ID...", callback=_repo_references)
@click.option("--from-file", "file_references", type=click.File("rb"), callback=_file_references,
              help="Read more repo ids from a file (one per line, # comments).")
@click.option("--file", "gguf_file", help="GGUF repos: the variant (file name) to report on.")
@click.option("--lora", "loras", multiple=True, metavar="REPO",
              help="A PEFT LoRA adapter repo to serve on the model (repeatable).")
@click.option("--base", help="The base model of an adapter repo (default: its adapter_config.json's).")
@_hub_options
@_serving_options
@_output_options
def hf(references, file_references, gguf_file, loras, base, revision, hub, bits, gpu, serving, plan, output):
    """Audit one or more Hugging Face Hub repos without downloading weights.

    An adapter repo (adapter_config.json + adapter_model.safetensors) is answered on its base model.

    \b
    Examples:
      gpumem hf meta-llama/Llama-2-70b-hf --bits 4
      gpumem hf Qwen/Qwen2.5-7B --context 32768 --concurrency 8 --gpu "RTX 4090"
      gpumem hf TheBloke/Llama-2-7B-GGUF --file llama-2-7b.Q4_K_M.gguf --json
      gpumem hf meta-llama/Llama-3.1-8B --lora org/adapter-a --lora org/adapter-b
    """
    ids, revision = _repo_ids([*references, *file_references], revision)
    _report(ids, revision, hub, output, compare=False,
            bits=bits, serving=serving, gpu=gpu, plan=plan, file=gguf_file, loras=list(dict.fromkeys(loras)),
            base=base)


@cli.command()
@click.argument("references", nargs=-1, required=True, metavar="REPO_ID...", callback=_repo_references)
@_hub_options
@_serving_options
@_output_options
def compare(references, revision, hub, bits, gpu, serving, plan, output):
    """Put models side by side: parameters, stored size, memory at 16/8/4 bit, cheapest GPU option.

    \b
    Example:
      gpumem compare Qwen/Qwen2.5-7B mistralai/Mixtral-8x7B-v0.1
    """
    ids, revision = _repo_ids(references, revision)
    _report(ids, revision, hub, output, compare=True, bits=bits, serving=serving, gpu=gpu, plan=plan, file=None)


@cli.command()
@click.argument("references", nargs=-1, required=True, metavar="REPO_ID...", callback=_repo_references)
@click.option("--gpu", "gpus", required=True, multiple=True, callback=_known_gpus,
              help='The GPU type, e.g. "RTX 4090" (repeatable).')
@click.option("--count", "counts", type=click.IntRange(1, 64), multiple=True,
              help="GPU counts to try (repeatable; default 1, 2, 4, 8).")
@click.option("--file", "gguf_file", help="GGUF repos: the variant to check.")
@_CONTEXT_OPTION
@_KV_DTYPE_OPTION
@_engine_options
@_hub_options
@_output_options
def fit(references, gpus, counts, gguf_file, context, kv_dtype, engine, engine_version, engine_settings, revision, hub,
        output):
    """What fits here: at which bit width, context and concurrency a model fits N GPUs of one type.

    \b
    Example:
      gpumem fit --gpu "RTX 4090" meta-llama/Llama-3.1-8B Qwen/Qwen2.5-7B
    """
    from . import api
    from .output import render

    names = _gpu_names(gpus, output["quiet"])
    serving = ServingOptions(engine=engine, engine_version=engine_version, context=context, kv_dtype=kv_dtype,
                             context_asked=_context_asked(), **engine_settings)
    ids, revision = _repo_ids(references, revision)
    outcomes = _run_many(api.fit_many, ids, revision, hub, output["quiet"], gpu=names, serving=serving,
                         counts=counts or None, file=gguf_file)
    _emit_outcomes(outcomes, output,
                   lambda results: render.emit_fits(ids, results, say_note=_note_in_flag_words, **output))


_TRAIN = TrainingOptions()  # its defaults and choices are the train command's


@cli.command()
@click.argument("reference", metavar="REPO_ID", callback=_repo_references)
@click.option("--method", type=click.Choice(TRAINING_METHODS), default=_TRAIN.method, show_default=True,
              help="Full fine-tuning, LoRA on the 16-bit model, or QLoRA on the model quantized to NF4.")
@click.option("--rank", type=click.IntRange(1), default=_TRAIN.rank, show_default=True, help="LoRA rank r.")
@click.option("--target-modules", default=_TRAIN.target_modules, show_default=True,
              help="LoRA targets: comma-separated module names (q_proj,v_proj), a regex, or all-linear.")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS),
              default=_TRAIN.optimizer, show_default=True, help="Optimizer (its states are what differs).")
@click.option("--precision", type=click.Choice(PRECISIONS), default=_TRAIN.precision,
              show_default=True, help="Weight and gradient precision.")
@click.option("--master-weights/--no-master-weights", default=_TRAIN.master_weights, show_default=True,
              help="Mixed precision keeps an fp32 master copy in the optimizer (off: pure bf16/fp16).")
@click.option("--batch", type=click.IntRange(1), default=_TRAIN.batch, show_default=True,
              help="Micro-batch per GPU (sequences).")
@click.option("--seq-len", type=click.IntRange(1), default=_TRAIN.seq_len, show_default=True,
              help="Tokens per sequence.")
@click.option("--gradient-checkpointing/--no-gradient-checkpointing", default=_TRAIN.gradient_checkpointing,
              show_default=True, help="Keep only each layer's input and recompute the rest in the backward pass.")
@click.option("--zero", type=click.IntRange(0, 3), default=_TRAIN.zero, show_default=True,
              help="ZeRO stage across a plan's GPUs (3 = FSDP full shard; 0 = plain data parallel).")
@click.option("--gpu", callback=_known_gpus, help='Answer for one GPU type, e.g. "RTX 4090", a100-80gb, h100.')
@click.option("--price", "prices", multiple=True, metavar="GPU=USD",
              help="Price of one GPU-hour (repeatable), over the package table and your prices file.")
@_hub_options
@_output_options
def train(reference, method, rank, target_modules, optimizer, precision, master_weights, batch, seq_len,
          gradient_checkpointing, zero, gpu, prices, revision, hub, output):
    """Fine-tuning memory: full, LoRA or QLoRA, per GPU, and the GPUs that hold it.

    \b
    Examples:
      gpumem train meta-llama/Llama-3.1-8B --method qlora
      gpumem train Qwen/Qwen2.5-7B --method full --gpu h100
      gpumem train meta-llama/Llama-2-7b-hf --method lora --rank 8 \\
          --target-modules q_proj,v_proj
    """
    from . import api
    from .errors import AdapterTraining, UsageError
    from .output import render
    from .planning.prices import parse_price_option

    overrides = [parse_price_option(text) for text in prices]
    options = TrainingOptions(method=method, rank=rank, target_modules=_target_modules(target_modules),
                              optimizer=optimizer, precision=precision, master_weights=master_weights, batch=batch, seq_len=seq_len,
                              gradient_checkpointing=gradient_checkpointing, zero=zero)
    (repo_id,), revision = _repo_ids(reference, revision)
    (metadata,) = _run_many(api.inspect_repos, [repo_id], revision, hub, output["quiet"])
    try:
        report = api.train(metadata, options, gpu=gpu, prices=overrides)
    except AdapterTraining as exc:  # said as the command line that plans it
        command = (f"gpumem train {exc.base or 'BASE'} --method lora --rank {exc.rank} "
                   f"--target-modules {exc.target_modules}")
        raise UsageError(exc.message, hint=f"`{command}`") from None
    render.emit_training(report, say_note=_note_in_flag_words, **output)


def _target_modules(text: str) -> tuple[str, ...] | str:
    """all-linear, a regex (PEFT matches it against the whole module name), or comma-separated names."""
    text = text.strip()
    if text.lower() == "all-linear" or re.search(r"[*+?\[\]()|^$\\{}]", text):
        return text
    return tuple(name.strip() for name in text.split(",") if name.strip())


@cli.command()
@click.argument("path", type=click.Path(exists=True))
@click.option("--file", "gguf_file", help="GGUF folders: the variant (file name) to report on.")
@click.option("--base", help="An adapter folder's base model on the Hub (default: its adapter_config.json's).")
@_serving_options
@_output_options
def local(path, gguf_file, base, bits, gpu, serving, plan, output):
    """Inspect a local safetensors / GGUF file or model folder (headers only).

    A PEFT adapter folder is answered on its base model, read from the Hub (or the cache or snapshot).

    \b
    Example:
      gpumem local ./my-model/ --context 8192
    """
    from . import api
    from .output import render

    metadata = api.inspect_local(path)
    if api.is_adapter(metadata):
        model = api.inspect_base(metadata, base)
        reports = api.estimate(model, bits=bits, serving=serving, gpu=gpu, plan=plan, file=gguf_file,
                               adapters=[metadata])
    else:
        reports = api.estimate(metadata, bits=bits, serving=serving, gpu=gpu, plan=plan, file=gguf_file)
    render.emit_reports([path], [reports], say_note=_note_in_flag_words, **output)


@cli.command()
@click.option("--params", "params", required=True, help="Parameter count: 70B, 7.24B, 125M, 70e9 or 68976648192.")
@click.option("--bits", type=click.FloatRange(1, 64), default=CALC_BITS, show_default=True,
              help="Bits per parameter when loaded (Q).")
@click.option("--gpu", "gpus", multiple=True, callback=_known_gpus, help=_GPU_HELP)
@_plan_options
@_output_options
def calc(params, bits, gpus, plan, output):
    """The formula M_GB = P x 4 / (32 / Q) x 1.2 for a parameter count.

    \b
    Examples:
      gpumem calc --params 70B --bits 16     # 168 GB
      gpumem calc --params 70B --bits 4      # 42 GB
    """
    from . import api
    from .output import render

    render.emit_calc(api.calc(params, bits, gpu=_gpu_names(gpus, output["quiet"]) or None, plan=plan),
                     say_note=_note_in_flag_words, **output)


@cli.command()
@_output_options
def gpus(output):
    """List the GPU catalog: marketed vs usable memory, bandwidth, TFLOPS, FP8/FP4.

    \b
    Example:
      gpumem gpus --format markdown
    """
    from .output import render
    from .planning import gpus as catalog

    render.emit_gpus(catalog.load_catalog(), **output)


@cli.command("hf-extension")
def hf_extension():
    """Make `hf gpumem ...` run gpumem (registers it with the Hugging Face CLI's extensions).

    \b
    Example:
      gpumem hf-extension && hf gpumem hf Qwen/Qwen2.5-7B
    """
    from .hf_extension import extensions_root, register
    from .output.wrapping import terminal_width, wrap

    program = register()
    said = (f"`hf gpumem ARGS` now runs {program} ARGS (manifest in {extensions_root() / 'hf-gpumem'}; "
            "`hf extensions remove gpumem` undoes it)")
    click.echo("\n".join(wrap(said, terminal_width())))


@cli.group()
def cache():
    """Inspect or clear gpumem's result cache (under HF_HOME/gpumem).

    \b
    Examples:
      gpumem cache info
      gpumem cache list
      gpumem cache clear meta-llama/Llama-3.1-8B
      gpumem cache clear
    """


@cache.command("info")
@click.option("--json", "json_", is_flag=True, help="Print JSON.")
def cache_info(json_):
    """Show where the cache is and what it holds."""
    from .output import render
    from .reading.cache import ResultCache

    render.emit_cache_info(ResultCache().info(), json_=json_, cleared=False)


@cache.command("list")
@_output_options
def cache_list(output):
    """List the cached repos: revisions, commits, size, when last written."""
    from .output import render
    from .reading.cache import ResultCache, list_repos

    cache = ResultCache()
    render.emit_cache_list(list_repos(cache), cache.info(), **output)


@cache.command("clear")
@click.argument("repo_id", required=False, metavar="[REPO_ID]")
@click.option("--json", "json_", is_flag=True, help="Print JSON.")
def cache_clear(repo_id, json_):
    """Delete every cached result, or one repo's (a repo id or its Hub URL)."""
    from .inputs import parse_repo_reference
    from .output import render
    from .reading.cache import ResultCache, clear_repo

    cache = ResultCache()
    if repo_id is None:
        render.emit_cache_info(cache.clear(), json_=json_, cleared=True)
    else:
        repo_id, _ = parse_repo_reference(repo_id)
        render.emit_cache_cleared(repo_id, clear_repo(cache, repo_id), json_=json_)


def _report(ids: list[str], revision: str, hub, output: dict, *, compare: bool, loras: tuple[str, ...] = (),
            base: str | None = None, **estimate) -> None:
    """Read, estimate and print many repos; a failed repo is reported in place, the worst exit code wins.

    Adapter repos are answered on their base (read the same way); `loras` are served on every model.
    """
    from . import api
    from .output import render

    outcomes = _run_many(api.estimate_many, ids, revision, hub, output["quiet"], loras=loras, base=base, **estimate)
    _emit_outcomes(outcomes, output, lambda results: render.emit_reports(ids, results, compare=compare,
                                                                         say_note=_note_in_flag_words, **output))


def _run_many(answer, ids: list[str], revision: str, hub, quiet: bool, **options) -> list:
    """api.estimate_many / fit_many over one client (kept for --debug's request log), with progress."""
    from . import api
    from .output.progress import ReadProgress

    _State.client = None if api.is_offline(hub) else api.open_client(hub)
    with ReadProgress(len(ids), quiet) as progress:
        if _State.client:
            _State.client.on_range_read = progress.header_read
        return answer(ids, revision=revision, options=hub, client=_State.client, on_done=progress.repo_done,
                      **options)


def _emit_outcomes(outcomes: list, output: dict, emit) -> None:
    """Print per-repo outcomes (errors in place, one JSON shape); exit with the worst error's code.

    A run of one repo that failed is that error (with --json, also its record on stdout).
    """
    from .errors import repo_error_record
    from .output import render

    errors = [None if o.error is None else _in_flag_words(o.error) for o in outcomes]
    if len(outcomes) == 1 and errors[0] is not None:
        if output["format"] == "json":
            render.emit(render.Document(), [repo_error_record(outcomes[0].repo_id, errors[0])], format="json")
        raise errors[0]
    emit([list(o.reports) if error is None else error for o, error in zip(outcomes, errors)])
    codes = [int(o.error.exit_code) for o in outcomes if o.error is not None]
    if codes:
        sys.exit(max(codes))


def _repo_ids(references: list[tuple[str, str | None]], revision: str) -> tuple[list[str], str]:
    """The run's repo ids, each once, and its revision (--revision, or the pasted URLs' /tree/REV)."""
    from .errors import UsageError
    from .inputs import one_revision

    ids = list(dict.fromkeys(repo_id for repo_id, _ in references))
    if not ids:
        raise UsageError("no repo id given", hint="e.g. `gpumem hf meta-llama/Llama-2-7b-hf`")
    return ids, one_revision(references, revision)


def _print_request_log() -> None:
    for record in getattr(_State.client, "log", []):  # URLs are redacted and cleaned when recorded
        click.echo(f"[request] {record.method} {record.url} -> {record.status} "
                   f"({record.received:,} B, {record.seconds * 1000:.0f} ms)", err=True)


# Library parameters whose flag has another name: HubOptions.deadline is --timeout (the whole run's limit),
# PlanRequest.show_all is --all. The others are the name with dashes (kv_dtype -> --kv-dtype).
_FLAG_NAMES = {"deadline": "timeout", "show_all": "all"}
# Library functions a hint names, and the command that does the same.
_COMMANDS = {"load_catalog()": "`gpumem gpus`"}


def _flag(option: str) -> str:
    """How the CLI says a library parameter (its flag) or function (its command)."""
    return _COMMANDS.get(option) or "--" + _FLAG_NAMES.get(option, option).replace("_", "-")


def _flag_words(text: str, option: str | None, hint: str | None,
                hint_options: tuple[str, ...]) -> tuple[str, str | None]:
    """A message (or note) and its hint as the CLI says them: the parameter the message starts with, and those the
    hint names, as flags (tp -> --tp, deadline -> --timeout)."""
    if option and text.startswith(option):
        text = _flag(option) + text[len(option):]
    if hint:
        for name in hint_options:
            hint = re.sub(rf"(?<![\w./-]){re.escape(name)}(?![\w./-])", _flag(name), hint)
    return text, hint


def _in_flag_words(exc: GpumemError) -> GpumemError:
    """The error as the CLI says it (`_flag_words`). The library's error is left as it is; a changed copy is
    returned."""
    message, hint = _flag_words(exc.message, getattr(exc, "option", None), exc.hint, exc.hint_options)
    if (message, hint) == (exc.message, exc.hint):
        return exc
    worded = copy.copy(exc)
    worded.message, worded.hint = message, hint
    worded.args = (message,)
    return worded


def _note_in_flag_words(note: str) -> str:
    """A report note as the CLI says it: a `Note`'s parameters as flags (`_flag_words`), a plain note as it is."""
    from .model.types import Note, note_with_hint

    if not isinstance(note, Note):
        return note
    return note_with_hint(*_flag_words(note.text, note.option, note.hint, note.hint_options))


def run() -> None:
    """The `gpumem` command in a process of its own (the console scripts, `python -m gpumem`): `main` without the
    cyclic garbage collector: its collections would mostly walk what start-up loaded, and the interpreter's last one
    at exit everything (about 5% of `gpumem calc`). The price: what a run leaves in reference cycles stays until
    exit, so a read must not leave a cycle per file or per repo (`gpumem hf` over many repos would grow by it)."""
    gc.disable()
    try:
        main()
    finally:
        gc.freeze()  # the exit's collection skips frozen objects


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and turn gpumem errors into one line on stderr and an exit code."""
    _State.debug = debug_enabled()
    _State.client = None
    _State.notes = []
    try:
        cli.main(args=argv, prog_name="gpumem", standalone_mode=False)
        sys.stdout.flush()  # a closed pipe shows here, not at exit as "Exception ignored"
        for note in _State.notes:
            _say("Note", note)
    except click.exceptions.Abort:  # click's name for a KeyboardInterrupt (Ctrl-C)
        _interrupted()
    except click.ClickException as exc:  # bad options: one line and a hint, like every other error
        _say("Error", exc.format_message())
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            _say("Hint", f"see `{exc.ctx.command_path} --help`")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _interrupted()
    except (BrokenPipeError, _PipeClosed):  # `gpumem ... | head`: the reader left; nowhere to say more
        from .errors import ExitCode

        _quiet_stdout()
        sys.exit(int(ExitCode.PIPE_CLOSED))  # 128 + SIGPIPE, as `yes | head` ends
    except Exception as exc:  # noqa: BLE001 - the one place errors become exit codes
        from .errors import Interrupted
        from .reading.sanitize import clean

        if isinstance(exc, Interrupted):
            _interrupted()
        if _State.debug:
            import traceback

            for line in "".join(traceback.format_exception(exc)).splitlines():
                click.echo(clean(line, 2000), err=True)
            _print_request_log()
        if not isinstance(exc, GpumemError):  # a bug in gpumem: still one message, with how to report it
            _say("Error", f"internal error ({type(exc).__name__}: {clean(exc, 300)}); rerun with --debug and "
                          "report it")
            sys.exit(1)
        worded = _in_flag_words(exc)
        _say("Error", clean(worded.message, 1000))
        if worded.hint:
            _say("Hint", clean(worded.hint, 1000))
        sys.exit(int(exc.exit_code))


def _say(label: str, message: str) -> None:
    """A note, hint or error on stderr, wrapped at the terminal's width (the writers are not loaded for it)."""
    from .output.wrapping import say

    say(label, message)


def _interrupted() -> None:
    """Ctrl-C: stop the requests in flight (worker threads are daemons, never waited for) and exit 130."""
    if _State.client is not None:
        _State.client.cancel()
    click.echo("Interrupted.", err=True)
    sys.exit(130)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush of a closed pipe stays silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
