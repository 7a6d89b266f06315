"""Where a repo's metadata comes from: the result cache, then the Hub, then the built-in snapshot.

The policy in one place: a cached commit answers without reading headers (one request checks where a branch
points; an unreachable Hub keeps the cached answer, with a note); a fresh read is counted once and cached as
its summary; an unreachable Hub, or a gated repo without a token, falls back to the snapshot; offline, only
the cache and the snapshot answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .. import constants
from ..errors import AccessError, GatedRepo, GpumemError, HubUnavailable, OfflineMiss
from .repo_ids import validate_repo_id, validate_revision

if TYPE_CHECKING:  # HubOptions' defaults (the CLI's flags) need neither at start-up
    from ..model.types import RepoMetadata
    from .cache import ResultCache


@dataclass(frozen=True)
class HubOptions:
    """How to reach the Hub: token (None = discover, False = none), endpoint, offline, cache, timeouts."""

    token: str | bool | None = None
    endpoint: str | None = None
    offline: bool | None = None  # None: HF_HUB_OFFLINE decides
    use_cache: bool = True
    timeout: float = constants.DEFAULT_TIMEOUT_S
    deadline: float | None = constants.DEFAULT_DEADLINE_S


def open_client(options: HubOptions | None = None):
    """A HubClient configured from HubOptions (share it across calls to reuse connections)."""
    from .hub import HubClient

    options = options or HubOptions()
    return HubClient(options.endpoint, options.token, timeout=options.timeout, deadline=options.deadline)


def is_offline(options: HubOptions | None = None) -> bool:
    """Whether these options (or HF_HUB_OFFLINE) forbid the network."""
    options = options or HubOptions()
    return constants.hf_offline() if options.offline is None else options.offline


def read_repos(repo_ids: Sequence[str], revision: str = "main", options: HubOptions | None = None, *,
               client=None, return_errors: bool = False, on_done: Callable[[str], None] | None = None,
               gguf_file: str | None = None) -> list:
    """Each repo's metadata (or, with `return_errors`, its error in its place), read over one client."""
    from .cache import ResultCache

    options = options or HubOptions()
    validate_revision(revision)
    for repo_id in repo_ids:
        validate_repo_id(repo_id)
    cache = ResultCache() if options.use_cache else None
    if is_offline(options):
        endpoint = constants.hf_endpoint(options.endpoint)
        return [_each(lambda r: _offline(endpoint, r, revision, cache), repo_id, return_errors, on_done)
                for repo_id in repo_ids]
    owned = client is None
    client = client or open_client(options)
    client.restart_deadline()  # a shared client's deadline bounds this call, not its lifetime
    try:
        return client.map_concurrent(
            lambda repo_id: _each(lambda r: _online(client, r, revision, cache, gguf_file), repo_id, return_errors,
                                  on_done),
            repo_ids)
    finally:
        if owned:
            client.close()


def _each(read: Callable[[str], RepoMetadata], repo_id: str, return_errors: bool,
          on_done: Callable[[str], None] | None):
    """One repo of a many-repo run: its metadata, or (when asked) its error in its place."""
    try:
        return read(repo_id)
    except GpumemError as exc:
        if return_errors:
            return exc
        raise
    finally:
        if on_done:
            on_done(repo_id)


def _online(client, repo_id: str, revision: str, cache: ResultCache | None, gguf_file: str | None = None) -> RepoMetadata:
    if cache and (sha := cache.sha_for(client.endpoint, repo_id, revision)):
        note = None
        if sha != revision:  # a branch or tag may have moved: one request to find out
            try:
                sha = client.resolve(repo_id, revision).sha
            except HubUnavailable:
                note = f"the Hub could not be reached: answered from the cache ({revision} may have moved since)"
        if cached := cache.load(client.endpoint, repo_id, sha):
            return replace(cached, source="cache", notes=(note, *cached.notes) if note else cached.notes)
    from .fetch import fetch_repo  # here, not above: a cached answer needs no header reader or counter

    try:
        metadata = fetch_repo(client, repo_id, revision, gguf_file=gguf_file)
    except (HubUnavailable, GatedRepo, AccessError) as exc:
        fallback = _snapshot_fallback(repo_id, exc, client.has_token)
        if fallback is None:
            raise
        return fallback
    metadata = _summarized(metadata)
    if cache and (gguf_file is None or metadata.weight_sets[0].format != "gguf"):  # never cache a partial read
        cache.store(client.endpoint, revision, _without_tensors(metadata))
    return metadata


def _summarized(metadata: RepoMetadata) -> RepoMetadata:
    """The metadata with each weight set counted once (its ModelSummary beside its tensors)."""
    from ..model.params import summarize_weight_set

    return replace(metadata, weight_sets=tuple(ws if ws.summary else replace(ws, summary=summarize_weight_set(ws))
                                               for ws in metadata.weight_sets))


def _without_tensors(metadata: RepoMetadata) -> RepoMetadata:
    """What the cache keeps: the summaries instead of the tensors (DeepSeek-V3: 92k tensors, a few dozen
    classes). Components reported together (diffusers) keep their tensors, as they are counted as one, and so
    do PEFT adapters (small, and read tensor by tensor)."""
    if len(metadata.weight_sets) > 1 and metadata.weight_sets[0].format != "gguf":
        return metadata
    return replace(metadata, weight_sets=tuple(ws if ws.adapter_config is not None else replace(ws, tensors=())
                                               for ws in metadata.weight_sets))


def _offline(endpoint: str, repo_id: str, revision: str, cache: ResultCache | None) -> RepoMetadata:
    from .snapshot import LIVE_DATA_HINT, load_snapshot

    sha = cache.sha_for(endpoint, repo_id, revision) if cache else None
    if cache and sha and (cached := cache.load(endpoint, repo_id, sha)):
        return replace(cached, source="cache")
    if snapshot := load_snapshot(repo_id):
        return _from_snapshot(snapshot, "offline", LIVE_DATA_HINT["offline"])
    raise OfflineMiss(f"offline, and neither the cache nor the built-in snapshot holds {repo_id}@{revision}",
                      hint="run once with network access (without offline / HF_HUB_OFFLINE=1)", hint_options=("offline",))


def _snapshot_fallback(repo_id: str, exc: GpumemError, has_token: bool) -> RepoMetadata | None:
    """Answer from the snapshot when the Hub is unreachable, or the repo is gated and no token was given."""
    from .snapshot import LIVE_DATA_HINT, load_snapshot

    if isinstance(exc, AccessError) and (has_token or not isinstance(exc, GatedRepo)):
        return None
    snapshot = load_snapshot(repo_id)
    if snapshot is None:
        return None
    if isinstance(exc, HubUnavailable):
        return _from_snapshot(snapshot, "the Hub could not be reached", LIVE_DATA_HINT["unreachable"])
    return _from_snapshot(snapshot, "the repo is gated and no token was given", LIVE_DATA_HINT["gated"])


def _from_snapshot(metadata: RepoMetadata, why: str, live_data: tuple[str, tuple[str, ...]]) -> RepoMetadata:
    """The snapshot's answer with a note on why it answered and how to get live data instead."""
    from ..model.types import Note

    hint, options = live_data
    note = Note(f"{why}: answered from the built-in snapshot", hint=hint, hint_options=options)
    return replace(metadata, notes=(note, *metadata.notes))
