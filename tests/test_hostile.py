"""Hostile files, folders, caches, environments and terminals (issue 16), beyond the bad-inputs table:
each ends in one clean line with a documented exit code, reads no more than 16 MiB of anything, shows no
escape code, writes nothing outside the cache."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gpumem.reading.cache import ResultCache
from gpumem.reading.sanitize import clean, csv_cell, redact, register_secret
from gpumem_dev.fakehub import FakeFile, FakeRepo, repo_from_fixture, safetensors_bytes

SRC = str(Path(__file__).resolve().parents[1] / "src")
GPT2 = "openai-community/gpt2"
EVIL = "\x1b[2J\x1b]8;;https://evil.example\x07[bold]click[/bold]\x1b]8;;\x07\nError: forged"


def gpt2_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    base = repo_from_fixture("openai-community__gpt2")
    (folder / "config.json").write_bytes(base.files["config.json"].prefix)
    prefix, size = safetensors_bytes([("w", "F32", (2, 2))])
    (folder / "model.safetensors").write_bytes(prefix + b"\0" * size)
    return folder


# -- local files that are not files -----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["config.json", "model.safetensors"])
def test_a_fifo_in_a_local_folder_is_refused_not_waited_on(gpumem, tmp_path, name):
    folder = gpt2_folder(tmp_path)
    (folder / name).unlink()
    os.mkfifo(folder / name)
    code, out, err = gpumem("local", str(folder), "--json")
    assert code == 5 and err.splitlines()[0] == f"Error: {name}: not a regular file (a FIFO); refusing to read it"


def test_a_config_linked_to_dev_zero_is_refused(gpumem, tmp_path):
    folder = gpt2_folder(tmp_path)
    (folder / "config.json").unlink()
    (folder / "config.json").symlink_to("/dev/zero")
    code, _, err = gpumem("local", str(folder), "--json")
    assert code == 5 and "not a regular file (a device)" in err.splitlines()[0]


def test_a_local_config_over_16_mib_is_refused(gpumem, tmp_path):
    folder = gpt2_folder(tmp_path)
    with open(folder / "config.json", "wb") as handle:
        handle.truncate(17 << 20)
    code, _, err = gpumem("local", str(folder), "--json")
    assert code == 5 and "over 16,777,216 bytes" in err


# -- the cache ----------------------------------------------------------------------------------------------

def _entry(hub) -> Path:
    entries = list(Path(os.environ["HF_HOME"], "gpumem").rglob("*.json"))
    assert len(entries) == 1
    return entries[0]


@pytest.mark.parametrize("obstacle", ["folder", "fifo", "empty-sets", "deep", "bad-types"])
def test_a_broken_cache_entry_is_refetched_and_repaired(hub, gpumem, obstacle):
    assert gpumem("hf", GPT2, "--json")[0] == 0
    entry = _entry(hub)
    data = json.loads(entry.read_text())
    entry.unlink()
    if obstacle == "folder":
        entry.mkdir()
    elif obstacle == "fifo":
        os.mkfifo(entry)
    elif obstacle == "empty-sets":
        entry.write_text(json.dumps({**data, "weight_sets": []}))
    elif obstacle == "deep":
        entry.write_text("[" * 100_000 + "]" * 100_000)
    else:
        data["weight_sets"][0]["files"] = [5, None]
        entry.write_text(json.dumps(data))
    hub.reset_log()
    code, out, err = gpumem("hf", GPT2, "--json")
    assert code == 0, err
    assert json.loads(out)["parameters"] == 124_439_808
    assert any(r.path.startswith("/cdn/") for r in hub.requests)  # refetched
    assert entry.is_file() and json.loads(entry.read_text())["weight_sets"]  # and repaired


def test_a_symlinked_refs_folder_never_makes_gpumem_write_outside_the_cache(hub, gpumem, tmp_path):
    assert gpumem("hf", GPT2, "--json")[0] == 0
    refs = _entry(hub).parent / "refs"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "main").write_text("precious")
    for child in refs.iterdir():
        child.unlink()
    refs.rmdir()
    refs.symlink_to(outside)
    _entry(hub).unlink()
    assert gpumem("hf", GPT2, "--json")[0] == 0
    assert (outside / "main").read_text() == "precious" and sorted(os.listdir(outside)) == ["main"]


def test_cache_info_races_writers_without_an_error(tmp_path):
    cache = ResultCache(tmp_path)
    folder = tmp_path / "v1" / "host" / "repo"
    folder.mkdir(parents=True)
    for i in range(50):
        (folder / f".tmp-{i}.part").write_text("x")
    original = os.lstat

    def vanishing(path, *args, **kwargs):  # another run renamed the temp file between listing and stat
        if ".tmp-" in str(path):
            raise FileNotFoundError(path)
        return original(path, *args, **kwargs)

    os.lstat = vanishing
    try:
        assert cache.info().entries == 0
    finally:
        os.lstat = original


# -- the environment ------------------------------------------------------------------------------------------

def test_credentials_in_hf_endpoint_are_refused_and_shown_nowhere(hub, gpumem, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint.replace("http://", "http://alice:s3cr3tpw@"))
    code, out, err = gpumem("hf", "bad/never-read", "--json", "--no-cache", "--debug")
    assert code == 2 and "s3cr3tpw" not in out + err and "alice" not in out + err
    assert not hub.requests  # never sent, as Basic auth or otherwise
    assert not Path(os.environ["HF_HOME"], "gpumem").exists()


def test_a_closed_stdout_pipe_ends_quietly(tmp_path):
    env = {**os.environ, "PYTHONPATH": SRC}
    process = subprocess.Popen([sys.executable, "-m", "gpumem", "gpus"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    process.stdout.close()  # `gpumem gpus | head -0`
    _, err = process.communicate(timeout=60)
    assert process.returncode == 141 and b"Traceback" not in err and b"Error" not in err


def test_twenty_repos_of_many_shards_under_a_small_open_file_limit(hub, tmp_path):
    """ulimit -n 128: the connection cap follows the limit, so 12 repos x 40 shards never run out of files."""
    for i in range(12):
        base = repo_from_fixture("openai-community__gpt2")
        files = {"config.json": base.files["config.json"]}
        weight_map = {}
        for shard in range(40):
            name = f"model-{shard:05d}-of-00040.safetensors"
            prefix, size = safetensors_bytes([(f"t{shard}", "F32", (2, 2))])
            files[name] = FakeFile(prefix, len(prefix) + size)
            weight_map[f"t{shard}"] = name
        files["model.safetensors.index.json"] = FakeFile.of(json.dumps({"weight_map": weight_map}))
        hub.add_repo(FakeRepo(f"many/repo-{i:02d}", files))
    script = ("import resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128)); "
              "from gpumem.cli import main; main(sys.argv[1:])")
    env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "PYTHONPATH": SRC}
    done = subprocess.run([sys.executable, "-c", script, "hf", *(f"many/repo-{i:02d}" for i in range(12)),
                           "--json", "--no-cache"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(json.loads(done.stdout)) == 12


# -- output: escape codes, markup, formulas -------------------------------------------------------------------

def test_a_hostile_tensor_name_and_dtype_reach_no_terminal_raw(hub, gpumem):
    prefix, size = safetensors_bytes([(EVIL, "F32", (2, 2)), ("x[/bold]", "F16", (2,))])
    base = repo_from_fixture("openai-community__gpt2")
    hub.add_repo(FakeRepo("bad/hostile-names", {"config.json": base.files["config.json"],
                                                "model.safetensors": FakeFile(prefix, len(prefix) + size)}))
    for args in [(), ("--format", "markdown"), ("--format", "csv"), ("--compare",)]:
        if args == ("--compare",):
            code, out, err = gpumem("compare", "bad/hostile-names", GPT2, "--no-cache")
        else:
            code, out, err = gpumem("hf", "bad/hostile-names", "--no-cache", *args)
        assert code == 0, err
        assert "\x1b" not in out + err and "\x07" not in out + err, args


def test_the_sanitiser():
    register_secret("hf_abcdefghijklmnop")
    assert clean("a\x1b[2Jb\x07c\u202ed\nz") == "a\\x1b[2Jb\\x07c\\u202ed\\x0az"
    assert redact("Bearer hf_abcdefghijklmnop https://u:p@h.example/x") == "Bearer *** https://***@h.example/x"
    # each pattern also where the text is ASCII without its other triggers, and where it is not ASCII at all
    assert redact("x BASIC abcdefgh1234") == "x BASIC ***" and redact("see hf_zyxwvuts99") == "see hf_***"
    assert redact("é https://u@h/ baſic abcdefgh1234") == "é https://***@h/ baſic ***"
    assert clean("plain text") == "plain text" and clean("x\x7f") == "x\\x7f"
    assert [csv_cell(v) for v in ("=1+1", "+x", "-x", "@SUM(A1)", "-1.5", 3, "ok")] == \
        ["'=1+1", "'+x", "'-x", "'@SUM(A1)", "-1.5", 3, "ok"]


# -- --svg ---------------------------------------------------------------------------------------------------

def test_svg_refuses_a_fifo_and_honours_the_umask(gpumem, tmp_path):
    fifo = tmp_path / "out.svg"
    os.mkfifo(fifo)
    code, out, err = gpumem("hf", GPT2, "--offline", "--svg", str(fifo))
    assert code == 1 and err.splitlines()[-1].startswith(f"Error: --svg {fifo}: cannot write it (")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # still a FIFO, not replaced
    target = tmp_path / "ok.svg"
    old = os.umask(0o022)
    try:
        assert gpumem("hf", GPT2, "--offline", "--svg", str(target))[0] == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644


# -- bounded fuzzing of the model-info and cache readers (gpumem_dev/fuzz.py runs the long version) ----------

def test_fuzz_model_info_and_cache_entries_raise_only_gpumem_errors():
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from gpumem_dev.fuzz import TARGETS

    for name in ("model info: JSON-shaped", "model info: raw bytes", "cache entries: JSON-shaped",
                 "cache entries: raw bytes"):
        function, strategies = TARGETS[name]
        settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))(
            given(st.tuples(*strategies))(lambda args: function(*args)))()  # noqa: B023 - run at once
