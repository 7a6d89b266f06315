"""The dated price table, the user file and --price overrides."""

from __future__ import annotations

import json
import tomllib

import pytest

from gpumem.errors import UsageError
from gpumem.planning.gpus import load_catalog
from gpumem.planning.prices import PRICES_FILE, load_prices, parse_price_option, user_prices_file


def test_every_catalog_price_is_dated_sourced_and_names_a_catalog_gpu():
    data = tomllib.loads(PRICES_FILE.read_text())
    names = {g.name for g in load_catalog()}
    assert data["as_of"] == "2026-05"
    for entry in data["price"]:
        assert entry["gpu"] in names
        assert entry["source"].startswith("https://") and entry["date"].startswith("2026")
        assert 0.1 < entry["usd_per_hour"] < 20


def test_catalog_prices_are_labelled_with_their_date():
    price = load_prices().get("H100 SXM")
    assert price.usd_per_hour == 3.00 and price.label == "on-demand 2026-05" and "mercatus" in price.source


def test_price_option_overrides_the_catalog_through_any_gpu_name():
    table = load_prices([parse_price_option("NVIDIA H100 80GB HBM3=2.1")])
    assert table.get("H100 SXM").usd_per_hour == 2.1 and table.get("H100 SXM").label == "price"  # the CLI: --price
    assert table.get("A100 80GB").usd_per_hour == 1.30  # the others stay


def test_the_cli_says_a_given_price_as_its_flag(gpumem):
    code, out, _ = gpumem("calc", "--params", "70B", "--gpu", "H100", "--price", "H100=2", "--json")
    assert code == 0 and json.loads(out)["recommendations"][0]["price_basis"] == "--price"
    code, out, _ = gpumem("calc", "--params", "70B", "--gpu", "H100", "--price", "H100=2")
    assert code == 0 and "cheapest $/hour (--price)" in " ".join(out.split())


def test_price_option_can_price_a_gpu_the_table_leaves_out():
    assert load_prices().get("H20") is None
    assert load_prices([parse_price_option("h20=$1.2")]).get("H20").usd_per_hour == 1.2


@pytest.mark.parametrize("text,message", [
    ("H100", "GPU=USD"), ("=2", "GPU=USD"), ("H100=cheap", "not a number"), ("H100=-1", "between 0 and 10000"),
    ("Z999=2", "unknown GPU"),
])
def test_bad_price_options_are_usage_errors(text, message):
    with pytest.raises(UsageError, match=message):
        parse_price_option(text)


def test_user_file_sits_between_the_catalog_and_the_command_line(tmp_path):
    path = tmp_path / "prices.toml"
    path.write_text('date = "2026-11-30"\n[usd_per_hour]\n"H100" = 2.49\na100 = 1.10\n')
    table = load_prices(user_file=path)
    assert table.get("H100 SXM").usd_per_hour == 2.49
    assert table.get("H100 SXM").label == f"user file {path} 2026-11-30"
    assert load_prices([("H100 SXM", 1.0)], user_file=path).get("H100 SXM").usd_per_hour == 1.0


def test_user_file_is_found_through_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "p.toml"
    path.write_text("[usd_per_hour]\nL4 = 0.5\n")
    monkeypatch.setenv("GPUMEM_PRICES", str(path))
    assert user_prices_file() == path
    monkeypatch.setenv("GPUMEM_PRICES", str(tmp_path / "missing.toml"))
    with pytest.raises(UsageError, match="no such file"):
        user_prices_file()


@pytest.mark.parametrize("content,message", [
    ("not toml [", "cannot read"), ("[other]\nx = 1\n", "no \\[usd_per_hour\\] table"),
    ("[usd_per_hour]\nH100 = 'two'\n", "between 0 and 10000"),
])
def test_bad_user_files_are_usage_errors(tmp_path, content, message):
    path = tmp_path / "prices.toml"
    path.write_text(content)
    with pytest.raises(UsageError, match=message):
        load_prices(user_file=path)
