"""A loopback fake Hugging Face Hub for end-to-end tests and benchmarks.

`from gpumem_dev.fakehub import FakeHub, ...` in tests and scripts alike. `fake_hub` is a fixture body;
tests/conftest.py wraps it: `fake_hub = pytest.fixture(fakehub.fake_hub)`.
"""

from __future__ import annotations

from collections.abc import Iterator

from .repos import (
    GOOD_TOKEN,
    NO_ACCESS_TOKEN,
    FakeFile,
    FakeRepo,
    adapter_files,
    adapter_repo,
    fixture_repos,
    llama2_70b_repo,
    repo_from_fixture,
    safetensors_bytes,
    split_in_order,
    synthetic_sharded_repo,
    virtual_safetensors,
)
from .server import FakeHub, RequestRecord

__all__ = [
    "GOOD_TOKEN", "NO_ACCESS_TOKEN", "FakeFile", "FakeHub", "FakeRepo", "RequestRecord", "adapter_files",
    "adapter_repo", "fake_hub",
    "fixture_repos", "llama2_70b_repo", "repo_from_fixture", "safetensors_bytes", "split_in_order",
    "synthetic_sharded_repo", "virtual_safetensors",
]


def fake_hub() -> Iterator[FakeHub]:
    """A running FakeHub serving every fixture repo, stopped afterwards (a pytest fixture body)."""
    with FakeHub(fixture_repos()) as hub:
        yield hub
