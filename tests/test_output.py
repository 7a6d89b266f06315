"""Output as a new user sees it: every command and format at 80 columns, piped and on a pseudo-terminal;
CSV exact, Markdown aligned, SVGs as wide as their content with bars drawn as coloured rects."""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import pty
import re
import struct
import subprocess
import sys
import tempfile
import termios
from xml.etree import ElementTree

import pytest
from conftest import FIXTURES
from hypothesis import given, settings
from hypothesis import strategies as st

from gpumem.output.tables import BAR_WIDTH, Bar, BarSegment, Cell, Column, Document, Table, layout, plain_lines
from gpumem.output.wrapping import message_lines, words, wrap
from gpumem_dev.fakehub import adapter_repo, repo_from_fixture
from gpumem_dev.fakehub import formats as fmt

TOKEN = "hf_fakehub_granted_0123456789abcdef"
GGUF_REPO = "TheBloke/Llama-2-7B-GGUF"
ADAPTER = "abrhaleyarefaine1997/gpt2-tigrinya-lora"
# Every command as a new user runs it, with the notes, hints and errors each one says on stderr.
RUNS = {
    "hf": ("hf", "openai-community/gpt2", "--no-cache"),
    "hf-gated": ("hf", "meta-llama/Llama-2-7b-hf", "--token", TOKEN, "--gpu", "RTX 4090", "--no-cache"),
    "hf-gated-no-token": ("hf", "meta-llama/Llama-2-7b-hf", "--no-cache"),  # the snapshot, and a note saying so
    "hf-gguf": ("hf", GGUF_REPO, "--no-cache"),
    "hf-adapter": ("hf", ADAPTER, "--no-cache"),  # a long --lora-modules value, a long note
    "hf-what-if": ("hf", "Qwen/Qwen2.5-7B", "--bits", "4", "--gpu", "a100", "--context", "32k", "--no-cache"),
    "hf-many": ("hf", "openai-community/gpt2", "mistralai/Mixtral-8x7B-v0.1", "nobody/no-such-model", "--no-cache"),
    "compare": ("compare", "Qwen/Qwen2.5-7B", "mistralai/Mixtral-8x7B-v0.1", "microsoft/Phi-3-mini-4k-instruct",
                "--no-cache"),
    "fit": ("fit", "--gpu", "T4", "microsoft/Phi-3-mini-4k-instruct", "--no-cache"),
    "fit-gguf": ("fit", "--gpu", "RTX 4090", GGUF_REPO, "--no-cache"),
    "calc": ("calc", "--params", "70B", "--gpu", "L4"),
    "gpus": ("gpus",),
    "local": ("local", str(FIXTURES / "gguf" / "tiny-mix.gguf")),
    "train": ("train", "meta-llama/Llama-3.1-8B", "--method", "qlora", "--no-cache"),
    "cache-list": ("cache", "list"),
}
FAILING = {"hf-many": 3}  # a repo that does not exist: its error in place, the others answered
IDS = ("openai-community/gpt2", "meta-llama/Llama-2-7b-hf", "mistralai/Mixtral-8x7B-v0.1", "Qwen/Qwen2.5-7B",
       "microsoft/Phi-3-mini-4k-instruct", "llama-2-7b.Q4_K_M.gguf", "Apple M3 Ultra 512GB", ADAPTER,
       "meta-llama/Llama-3.1-8B", "nobody/no-such-model", "gpt2-tigrinya-lora=" + ADAPTER)


@pytest.fixture
def gguf_hub(hub):
    hub.add_repo(fmt.llama2_gguf_repo(GGUF_REPO))
    hub.add_repo(adapter_repo(ADAPTER.replace("/", "__")))
    hub.add_repo(repo_from_fixture("openai-community__gpt2", repo_id="gpt2"))  # the adapter's base, by its old name
    return hub


def check_widths(out: str, err: str, fmt_: str, width: int) -> None:
    """What docs/commands.md ("Widths") promises: the table view and every note, hint and error fit `width`;
    Markdown's headings and table rows are one line each by its grammar; CSV and JSON are records for programs.
    No line of any format ends with a space, nothing is cut with '…'."""
    lines, notes = out.splitlines(), err.splitlines()
    assert not [line for line in lines + notes if line != line.rstrip()]  # no trailing spaces
    assert "…" not in out + err and "\x1b[" not in out + err
    assert not [line for line in notes if len(line) > width], err
    if fmt_ == "table":
        assert not [line for line in lines if len(line) > width], out
    elif fmt_ == "markdown":
        assert not [line for line in lines if len(line) > width and not line.startswith(("|", "#"))], out


@pytest.mark.parametrize("fmt_", ["table", "markdown", "csv", "json"])
@pytest.mark.parametrize("run", sorted(RUNS))
def test_every_command_and_format_reads_at_80_columns(gguf_hub, gpumem_raw, monkeypatch, run, fmt_):
    monkeypatch.setenv("COLUMNS", "80")
    if run == "cache-list":  # something cached, in a folder as short as ~/.cache/huggingface/gpumem (a path is whole)
        monkeypatch.setenv("HF_HOME", tempfile.mkdtemp(prefix="hf", dir="/tmp"))
        assert gpumem_raw("hf", "openai-community/gpt2")[0] == 0
    code, out, err = gpumem_raw(*RUNS[run], "--format", fmt_)
    assert code == FAILING.get(run, 0), err
    assert out.strip()
    check_widths(out, err, fmt_, 80)
    assert not re.search(r"\b(True|False|None)\b", out)
    said = " ".join(RUNS[run]) + (" llama-2-7b.Q4_K_M.gguf" if run.endswith("gguf") else "")
    said += f" gpt2-tigrinya-lora={ADAPTER}" if run == "hf-adapter" and fmt_ != "csv" else ""
    for identifier in [i for i in IDS if i in said]:
        assert identifier in out + err, f"{identifier} broken or missing"


@pytest.mark.parametrize("command", ["", "hf", "compare", "fit", "calc", "gpus", "local", "train", "cache",
                                     "cache list", "cache info", "cache clear", "hf-extension"])
def test_every_help_reads_at_80_columns(gpumem_raw, monkeypatch, command):
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = gpumem_raw(*command.split(), "--help")
    assert code == 0 and out.startswith("Usage: gpumem")
    check_widths(out, err, "table", 80)


@pytest.mark.parametrize("argv", [("hf", "nobody/no-such-model", "--no-cache"), ("hf", "openai-community/gpt2", "--gpu",
                                   "Z9000"), ("hf", "openai-community/gpt2", "--context", "lots"), ("calc", "--params",
                                   "70"), ("train", ADAPTER, "--no-cache")])
def test_errors_and_hints_wrap_under_their_label(gguf_hub, gpumem_raw, monkeypatch, argv):
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = gpumem_raw(*argv)
    assert code != 0 and out == ""
    check_widths(out, err, "table", 80)
    lines = err.splitlines()
    assert lines[0].startswith("Error: ")
    for line in lines[1:]:  # a continuation sits under its label's text, or is a command's ` \` continuation
        assert line.startswith(("Hint: ", " " * len("Error: "), " " * len("Hint: "))), err


def test_a_long_command_in_a_hint_wraps_with_continuations(hub, gpumem_raw, monkeypatch):
    hub.add_repo(adapter_repo("Rehman54454__gpt2-qlora"))  # base openai-community/gpt2, modules attn.c_attn, ...
    monkeypatch.setenv("COLUMNS", "80")
    code, _, err = gpumem_raw("train", "Rehman54454/gpt2-qlora", "--no-cache")
    lines = err.splitlines()
    assert code == 2 and max(len(line) for line in lines) <= 80
    hint = next(k for k, line in enumerate(lines) if line.startswith("Hint: "))
    assert lines[hint].endswith(" \\") and lines[hint + 1].startswith(" " * len("Hint: ") + "    --")
    joined = " ".join(line.strip().removesuffix("\\").strip() for line in lines[hint:])
    assert joined == ("Hint: `gpumem train openai-community/gpt2 --method lora --rank 8 --target-modules "
                      "attn.c_attn,attn.c_proj`")


def test_the_what_if_says_which_checkpoint_the_command_serves(hub, gpumem):
    code, out, err = gpumem("hf", "Qwen/Qwen2.5-7B", "--bits", "4", "--no-cache", "--gpu", "L40S")
    assert code == 0 and "vllm serve Qwen/Qwen2.5-7B" in out
    assert ("Note: --bits 4 is a what-if: the start command serves Qwen/Qwen2.5-7B as stored (16-bit); for the 4-bit "
            "plans serve a 4-bit checkpoint (GPTQ, AWQ) of the model in its place, or let vLLM quantize it on load "
            "(add `--quantization bitsandbytes`)") in err
    code, _, err = gpumem("hf", "Qwen/Qwen2.5-7B", "--bits", "16", "--no-cache", "--gpu", "L40S")
    assert code == 0 and "what-if" not in err  # the checkpoint's own width is no what-if


def test_the_sequences_column_has_one_decimals_rule(hub, gpumem, monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    code, out, _ = gpumem("fit", "--gpu", "T4", "microsoft/Phi-3-mini-4k-instruct", "--no-cache")
    assert code == 0
    column = [line.split()[-3] for line in out.splitlines() if line.split()[-2:-1] == ["≥"]]
    assert column and all(re.fullmatch(r"[\d,]+\.\d\d", value) for value in column), column  # vLLM: 2 decimals


def test_wide_terminals_show_every_column_narrow_ones_say_what_they_left_out(hub, gpumem, monkeypatch):
    ids = ("Qwen/Qwen2.5-7B", "mistralai/Mixtral-8x7B-v0.1", "microsoft/Phi-3-mini-4k-instruct", "--no-cache")
    monkeypatch.setenv("COLUMNS", "120")
    _, wide, _ = gpumem("compare", *ids)
    assert "bits per" in wide and "8 bit" in wide and "left out" not in wide
    monkeypatch.setenv("COLUMNS", "80")
    _, narrow, _ = gpumem("compare", *ids)
    assert "left out at 80 columns: bits per weight" in " ".join(narrow.split())
    assert max(len(line) for line in narrow.splitlines()) <= 80


def test_csv_numbers_are_plain_and_exact(hub, gpumem):
    code, out, _ = gpumem("compare", "meta-llama/Llama-2-70b-hf", "Qwen/Qwen2.5-7B", "--format", "csv", "--no-cache")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    llama = rows[0]
    assert llama["parameters"] == "68976648192"
    assert llama["formula_16_bit_gb"] == "165.5439556608"  # 68,976,648,192 x 2 B x 1.2, without float noise
    assert not re.search(r"\d\.\d{11,}", out)  # no float noise
    code, out, _ = gpumem("fit", "--gpu", "T4", "microsoft/Phi-3-mini-4k-instruct", "--format", "csv", "--no-cache")
    fits = list(csv.DictReader(io.StringIO(out)))
    assert {r["fits"] for r in fits} <= {"true", "false"} and fits[0]["bits"] == "stored"


def test_csv_of_one_report_is_sections_of_the_terminal_tables(hub, gpumem):
    code, out, _ = gpumem("hf", "Qwen/Qwen2.5-7B", "--format", "csv", "--no-cache", "--gpu", "L40S")
    assert code == 0
    sections = out.split("\n\n")
    titles = [s.splitlines()[0] for s in sections]
    assert titles[0] == "# Qwen/Qwen2.5-7B" and titles[2] == "# GPU options (best first)"
    per_gpu = next(csv.DictReader(io.StringIO(sections[1].split("\n", 1)[1])))
    report = json.loads(gpumem("hf", "Qwen/Qwen2.5-7B", "--json", "--no-cache", "--gpu", "L40S")[1])
    assert int(per_gpu["total_bytes"]) == report["serving"]["per_gpu"]["total_bytes"]


def test_markdown_carries_the_terminal_tables_with_numbers_right_aligned(hub, gpumem):
    code, out, _ = gpumem("calc", "--params", "70B", "--gpu", "L4", "--format", "markdown")
    assert code == 0
    assert "### GPU options" in out and "| L4 |" in out and "- **Formula**" in out
    code, out, _ = gpumem("compare", "openai-community/gpt2", "Qwen/Qwen2.5-7B", "--format", "markdown",
                          "--no-cache")
    assert code == 0
    assert out.count("### ") == 1 and "| --- | ---: | ---: |" in out  # the comparison, not whole reports


# -- layout ------------------------------------------------------------------------------------------


def _table(name: str) -> Table:
    columns = (Column("model", "model", align="left", identifier=True), Column("need per GPU (GB)", "need"),
               Column("bits per weight", "bits", drop=2), Column("8 bit (GB)", "eight", drop=1))
    return Table("Models", columns, ((Cell(name), Cell("1,234.56"), Cell("16.00"), Cell("617.28")),), "caption")


def test_identifiers_are_never_broken_numeric_columns_go_first():
    name = "mistralai/Mixtral-8x22B-Instruct-v0.1-with-a-long-suffix"
    for width in (120, 80, 60, 40):
        text = plain_lines(layout(Document((_table(name),)), width))
        assert name in text and "…" not in text
        assert "1,234.56" in text  # numbers are never cut
    middle = " ".join(plain_lines(layout(Document((_table(name),)), 78)).split())
    assert "617.28" in middle and "left out at 78 columns: bits per weight (a wider" in middle
    narrow = " ".join(plain_lines(layout(Document((_table(name),)), 60)).split())
    assert "left out at 60 columns: bits per weight, 8 bit (GB)" in narrow


def test_wrapping_keeps_numbers_with_their_units():
    assert wrap("16 bit 168.0 GB · 8 bit 84.0 GB · 4 bit 42.0 GB", 20) == [
        "16 bit 168.0 GB ·", "8 bit 84.0 GB ·", "4 bit 42.0 GB"]


# Words as messages and cells hold them: units that stay with their number, flags, ids, URLs, `commands` (some longer
# than any line), "quoted names", line breaks.
_WORDS = st.sampled_from(["a", "word", "7.62", "B", "GB", "bit", "·", "--tp", "meta-llama/Llama-3.1-405B-Instruct",
                          "https://huggingface.co/meta-llama/Llama-3.1-8B/resolve/main/config.json", '"a quoted name"',
                          "`gpumem gpus`", "`gpumem fit --gpu H200 --context 131072 --concurrency 64 "
                          "deepseek-ai/DeepSeek-V3 --format json`", "x" * 30, "\n"])
_TEXT = st.lists(_WORDS, max_size=25).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(_TEXT, st.integers(1, 120))
def test_wrapping_is_greedy_keeps_every_word_and_fits_but_for_a_longer_word(value, width):
    lines = wrap(value, width)
    assert " ".join(lines).split() == value.split()
    for line, after in zip(lines, lines[1:]):
        assert len(line) + 1 + len(words(after)[0]) > width  # the next line's first word did not fit
    assert all(len(line) <= width or len(words(line)) == 1 for line in lines)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["Error", "Hint", "Note"]), _TEXT, st.integers(20, 120))
def test_a_message_wraps_under_its_label_with_long_commands_continued(label, message, width):
    lines = message_lines(label, message, width)
    head = f"{label}: "
    assert lines[0].startswith(head) and all(line.startswith(" " * len(head)) for line in lines[1:])
    assert len(lines) >= message.count("\n") + 1  # its line breaks kept
    texts = [line[len(head):].removesuffix(" \\") for line in lines]  # a `command` goes on with ` \` lines
    for line, text in zip(lines, texts):  # only a word longer than a line runs past the width
        assert len(line) <= max(width, len(head) + 20) or len(words(text)) == 1
    assert " ".join(texts).split() == message.split()


def test_bar_is_always_its_full_width_and_legend_items_never_split():
    parts = [("weights", 15_230_000_000, "█", "cyan"), ("KV cache", 234_881_024, "▓", "magenta"),
             ("activations", 1_630_000_000, "▒", "yellow"), ("overhead", 1_300_000_000, "░", "red")]
    budget = 21_730_000_000
    used = sum(p[1] for p in parts)
    segments = [BarSegment(label, value, f"{value / 1e9:.2f} GB", glyph, colour) for label, value, glyph, colour in parts]
    segments.append(BarSegment("free", budget - used, "x GB", "·", "green"))
    for width in (80, 62, 45):
        lines = plain_lines(layout(Document((Bar("One A10", tuple(segments), budget),)), width)).splitlines()
        assert len(lines[1]) == min(BAR_WIDTH, width)
        legend = " ".join(lines[2:])
        for segment in segments:
            assert f"{segment.glyph} {segment.label} {segment.size}" in legend


# -- SVG ---------------------------------------------------------------------------------------------


def _svg_width(path) -> float:
    return float(ElementTree.parse(path).getroot().get("viewBox").split()[2])


def test_svg_with_any_format_at_the_content_width(hub, gpumem, monkeypatch, tmp_path):
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = gpumem("calc", "--params", "7B", "--json", "--svg", str(tmp_path / "wide.svg"))
    assert code == 0 and json.loads(out)["parameters"] == 7_000_000_000
    monkeypatch.setenv("COLUMNS", "100")
    gpumem("calc", "--params", "7B", "--format", "markdown", "--svg", str(tmp_path / "narrow.svg"))
    assert _svg_width(tmp_path / "wide.svg") == _svg_width(tmp_path / "narrow.svg")  # the content's width
    assert "70,000,000,000" not in (tmp_path / "wide.svg").read_text()
    assert "7,000,000,000" in (tmp_path / "wide.svg").read_text().replace("&#160;", " ")
    assert not list(tmp_path.glob("*.part"))
    umask = os.umask(0o022)
    os.umask(umask)
    assert (tmp_path / "wide.svg").stat().st_mode & 0o777 == 0o666 & ~umask  # as any file the user writes


def _rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


def test_svg_bar_segments_are_rects_in_their_colours(hub, gpumem, tmp_path):
    try:
        import cairosvg
        from PIL import Image
    except (ImportError, OSError):  # cairosvg needs the cairo C library
        pytest.skip("cairosvg (and libcairo) not available")
    target = tmp_path / "report.svg"
    code, _, _ = gpumem("hf", "meta-llama/Llama-2-7b-hf", "--token", TOKEN, "--gpu", "RTX 4090", "--context", "2048",
                        "--concurrency", "4", "--engine", "transformers", "--no-cache", "--svg", str(target))
    assert code == 0  # transformers: every part inside its budget, each wide enough to draw (vLLM's overhead is
    svg = target.read_text()  # mostly beside its budget, and what is left of it takes under one cell)
    fills = re.findall(r'<rect fill="(#[0-9a-f]{6})" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)"', svg)
    row_y = max(y for _, _, y, _ in fills)  # the bar is the last row with backgrounds
    bar = [(colour, float(x), float(w)) for colour, x, y, w in fills if y == row_y]
    assert len(bar) == 5  # weights, KV cache, activations, overhead, free
    image = Image.open(io.BytesIO(cairosvg.svg2png(bytestring=svg.encode()))).convert("RGB")
    scale = image.width / _svg_width(target)
    top = float(row_y) + 12  # inside the row
    margin_x = float(re.search(r'<g transform="translate\(([\d.]+)', svg)[1])
    margin_y = float(re.search(r'<g transform="translate\([\d.]+, ([\d.]+)', svg)[1])
    for colour, x, width in bar:
        if width < 2 * 12.2:  # one cell (vLLM 0.19 activations on a 24 GB card): its neighbour's glyph overlaps it
            continue
        pixel = image.getpixel((round((margin_x + x + width / 2) * scale), round((margin_y + top) * scale)))
        assert max(abs(a - b) for a, b in zip(pixel, _rgb(colour))) <= 8, (colour, pixel)
    assert len({colour for colour, _, _ in bar}) == 5  # the free part is not drawn in the weights' colour


# -- a pseudo-terminal -------------------------------------------------------------------------------


def _run(argv: list[str], env: dict, tty: bool, *, stderr: bool = False, columns: int = 0) -> str:
    """stdout (with `stderr`, stderr on the same terminal too) piped or on a pseudo-terminal `columns` wide."""
    command = [sys.executable, "-m", "gpumem", *argv]
    if not tty:
        return subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=60).stdout
    leader, follower = pty.openpty()
    if columns:
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    process = subprocess.Popen(command, env=env, stdout=follower, stderr=follower if stderr else subprocess.DEVNULL,
                               stdin=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the other side closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=60)
    os.close(leader)
    return b"".join(chunks).decode().replace("\r\n", "\n")


@pytest.mark.parametrize("width", [80, 120])
def test_a_terminal_shows_the_piped_lines_in_colour(hub, width):
    env = {**os.environ, "COLUMNS": str(width), "TERM": "xterm-256color",
           "PYTHONPATH": str(FIXTURES.parent / "src")}
    argv = ["hf", "meta-llama/Llama-2-7b-hf", "--token", TOKEN, "--gpu", "RTX 4090", "--no-cache"]
    piped = _run(argv, env, tty=False)
    on_terminal = _run(argv, env, tty=True)
    assert "\x1b[" in on_terminal
    assert re.sub(r"\x1b\[[0-9;]*m", "", on_terminal) == piped
    assert max(len(line) for line in piped.splitlines()) <= width


def test_notes_on_a_terminal_wrap_at_its_width_or_at_columns(hub):
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env.update(TERM="xterm-256color", PYTHONPATH=str(FIXTURES.parent / "src"))
    argv = ["calc", "--params", "7B", "--gpu", "a100"]  # says which A100 "a100" picked: a 92-character note
    note = "Note: --gpu a100 means the A100 80GB (also in the catalog: A100 40GB; name one to choose it)"
    wide = re.sub(r"\x1b\[[0-9;]*m", "", _run(argv, env, tty=True, stderr=True, columns=100))
    assert note in wide.splitlines()
    narrow = re.sub(r"\x1b\[[0-9;]*m", "", _run(argv, {**env, "COLUMNS": "80"}, tty=True, stderr=True, columns=100))
    said = narrow.splitlines()[narrow.splitlines().index(note[:note.rindex(" ", 0, 80)]):]
    assert max(len(line) for line in narrow.splitlines()) <= 80 and said[1] == "      " + note[note.rindex(" ", 0, 80) + 1:]


def test_text_from_repos_reaches_no_writer_raw():
    from gpumem.output import render

    hostile = "evil\x1b[2J\x1b]8;;http://x\x07name"
    table = Table(hostile, (Column("model", "model", align="left", identifier=True),),
                  ((Cell(hostile, "=cmd|' /C calc'!A0"),),), caption=hostile)
    document = render._safe(Document((table,)))
    shown = plain_lines(layout(document, 80)) + render.to_markdown(document)
    assert "\x1b" not in shown and "\x07" not in shown and "\\x1b[2J" in shown
    assert "\n'=cmd" in render.to_csv(document)  # a spreadsheet formula neutralised


def test_a_plans_command_wraps_at_the_width_and_is_never_cut():
    from gpumem.output.tables import Commands

    command = ("vllm serve meta-llama/Llama-2-70b-hf --tensor-parallel-size 2 --max-model-len 4096 "
               "--gpu-memory-utilization 0.9 --max-num-seqs 7 --kv-cache-dtype fp8")
    lines = plain_lines(layout(Document((Commands("Start it", (command,)),)), 60)).splitlines()
    assert all(len(line) <= 60 for line in lines) and lines[1].endswith(" \\")
    joined = " ".join(line.strip().removesuffix("\\").strip() for line in lines[1:])
    assert joined == command and "--max-model-len 4096" in "\n".join(lines)  # an option stays with its value


def test_decode_speeds_share_one_decimals_rule():
    from gpumem.output.views import _rate_cell

    assert [_rate_cell([41.23, 689.0])(v).text for v in (41.23, 689.0)] == ["41", "689"]
    assert [_rate_cell([41.23, 3.46, None])(v).text for v in (41.23, 3.46, None)] == ["41.2", "3.5", "-"]


def test_llama_cpp_plans_are_layer_splits_and_a_plan_that_does_not_fit_shows_its_need(gguf_hub, gpumem, monkeypatch):
    """llama.cpp spreads whole layers over its GPUs (-sm layer): no "TP" anywhere; a plan that does not fit says
    what it needs per GPU, as a fitting one does."""
    monkeypatch.setenv("COLUMNS", "120")
    argv = ("hf", GGUF_REPO, "--file", "llama-2-7b.Q4_K_M.gguf", "--engine", "llama.cpp", "--gpu", "RTX 3090",
            "--tp", "2", "--no-cache")
    for load, fits in ((("--context", "4096"), True), (("--context", "32k", "--concurrency", "4"), False)):
        code, out, _ = gpumem(*argv, *load)
        plan = json.loads(gpumem(*argv, *load, "--json")[1])["recommendations"][0]
        assert code == 0 and plan["fits"] is fits and plan["count"] == 2
        assert "2 GPUs, layer split" in " ".join(out.split()) and "TP" not in out
        row = next(line.split() for line in out.splitlines() if line.startswith("RTX 3090 "))
        assert row[2:5] == ["2", "layers", f"{plan['per_gpu_total_bytes'] / 1e9:.2f}"], row
        assert ("does not fit" in " ".join(row)) is not fits
        bar = next(line for line in out.splitlines() if line.startswith("█"))
        assert len(bar) == BAR_WIDTH and ("does not fit by" in out) is not fits  # an overflow fills the bar, no more


def test_every_gpu_that_cannot_serve_says_how_many_would_be_needed_or_why_none_can(gpumem, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    argv = ("hf", "deepseek-ai/DeepSeek-R1", "--all", "--offline")
    plans = json.loads(gpumem(*argv, "--json")[1])["recommendations"]
    _, out, _ = gpumem(*argv)
    rows = {p["gpu"]: next(line for line in out.splitlines() if line.startswith(p["gpu"] + "  ")) for p in plans}
    apple = [p for p in plans if p["gpu"].startswith("Apple")]
    assert apple and all(not p["runs_on_gpu"] and not p["fits"] for p in apple)
    for p in plans:
        cells = rows[p["gpu"]][len(p["gpu"]):].split()
        if not p["runs_on_gpu"]:  # none can: vLLM does not run there
            assert cells == ["-", "-", "no", "vLLM"], cells
        elif not p["fits"]:  # how many: more than the most tried, and what one GPU would need at that count
            assert cells == [">", str(p["count"]), f"{p['per_gpu_total_bytes'] / 1e9:.2f}", "does", "not", "fit"]
    assert "no vLLM: vLLM does not run on that vendor's GPUs" in " ".join(out.split())
