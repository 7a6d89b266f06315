"""On-disk cache of what gpumem read, keyed by endpoint, repo and commit sha.

Layout under `constants.cache_dir()` (HF_HOME/gpumem by default):
    v3/<endpoint key>/<repo key>/refs/<revision key>   -> the commit sha that revision resolved to
    v3/<endpoint key>/<repo key>/<sha>.json            -> RepoMetadata.to_dict(), weight sets as ModelSummary
                                                          (v1 kept tensors, v2 each class's sites as a list: read
                                                          by older gpumem, not by this one)
A commit's content never changes, so entries never expire. Keys are percent-encoded and checked,
so no repo id or revision can name a path outside the cache, and no path is read or written whose real
location (links followed) is outside it: a shared HF_HOME where someone links `refs` elsewhere cannot make
gpumem write there. Writes go to a temp file and are renamed into place: a crash or Ctrl-C mid-write leaves
either the old entry or none. Every entry is checked when read (a regular file under 16 MiB, the JSON
shape and types RepoMetadata needs); anything else is removed and refetched.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from .. import constants
from ..errors import GpumemError
from ..model.types import RepoMetadata, WeightSet
from .files import read_capped, write_atomically

_SHA = re.compile(r"^[0-9a-f]{40}$")
_VERSION = "v3"


@dataclass(frozen=True, slots=True)
class CacheInfo:
    """Where the cache is and what it holds."""

    path: str
    repos: int
    entries: int
    size_bytes: int

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"path": self.path, "repos": self.repos, "entries": self.entries, "size_bytes": self.size_bytes}


class ResultCache:
    """Read and write cached repo metadata; every failure to read is a miss, never an error."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or constants.cache_dir()) / _VERSION

    def sha_for(self, endpoint: str, repo_id: str, revision: str) -> str | None:
        """The commit sha a revision resolved to last time (a full sha maps to itself)."""
        if _SHA.match(revision):
            return revision
        try:
            path = self._inside(self._repo_dir(endpoint, repo_id) / "refs" / _key(revision))
            sha = read_capped(path, 4096).decode("ascii").strip()
        except (OSError, ValueError, GpumemError):
            return None
        return sha if _SHA.match(sha) else None

    def load(self, endpoint: str, repo_id: str, sha: str) -> RepoMetadata | None:
        """The cached metadata of a commit, or None (a corrupt entry is removed and reported as a miss)."""
        if not _SHA.match(sha):
            return None
        try:
            path = self._inside(self._repo_dir(endpoint, repo_id) / f"{sha}.json")
        except ValueError:
            return None
        try:
            data = json.loads(read_capped(path, constants.SMALL_FILE_CAP))
            metadata = RepoMetadata.from_dict(data)
            _check(metadata)
            if metadata.repo_id != repo_id or metadata.revision != sha:
                raise ValueError("entry for another repo or commit")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError, GpumemError):
            if os.path.lexists(path):
                _remove(path)
            return None
        return metadata

    def store(self, endpoint: str, revision: str, metadata: RepoMetadata) -> None:
        """Record a result and the revision -> sha mapping; silently skipped if the disk refuses."""
        if not _SHA.match(metadata.revision):
            return
        try:
            repo_dir = self._repo_dir(endpoint, metadata.repo_id)
            (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
            self._write(repo_dir / f"{metadata.revision}.json", json.dumps(metadata.to_dict(), separators=(",", ":")))
            if revision != metadata.revision:
                self._write(repo_dir / "refs" / _key(revision), metadata.revision)
        except (OSError, ValueError):
            pass  # a read-only or full disk must not fail the run; the answer is already computed

    def info(self) -> CacheInfo:
        """Count cached repos and entries and their size (files that other runs rename or remove meanwhile
        are skipped, never an error)."""
        entries, repos, size = 0, set(), 0
        for folder, _, files in os.walk(self.root):  # never follows links out of the cache
            for name in files:
                try:
                    size += os.lstat(os.path.join(folder, name)).st_size
                except OSError:
                    continue
                if name.endswith(".json") and not name.startswith(".tmp-"):
                    entries += 1
                    repos.add(folder)
        return CacheInfo(str(self.root.parent), len(repos), entries, size)

    def clear(self) -> CacheInfo:
        """Delete every entry; returns what was removed (what another run wrote meanwhile, or what the disk
        refused to delete, is not counted)."""
        before = self.info()
        shutil.rmtree(self.root, ignore_errors=True)
        after = self.info()
        return CacheInfo(before.path, max(0, before.repos - after.repos), max(0, before.entries - after.entries),
                         max(0, before.size_bytes - after.size_bytes))

    def _inside(self, path: Path) -> Path:
        """`path` if its real location (every link followed) is inside the cache; ValueError otherwise."""
        root = os.path.realpath(self.root)
        if not os.path.realpath(path).startswith(root + os.sep):
            raise ValueError(f"cache path leads outside the cache folder: {path}")
        return path

    def _write(self, path: Path, text: str) -> None:
        """An atomic write inside the cache; something not a regular file in the way is removed first. Not flushed
        to disk (an fsync: 10-60 ms of a cold DeepSeek-R1 read's wall here): an entry a crash left short or empty
        is refused when read and fetched again, as any damaged entry is."""
        self._inside(path)
        if os.path.lexists(path) and not path.is_file():
            _remove(path)
        write_atomically(self._inside(path), text, durable=False)

    def _repo_dir(self, endpoint: str, repo_id: str) -> Path:
        host = re.sub(r"[^A-Za-z0-9.-]", "_", urlsplit(endpoint).netloc or "endpoint")
        digest = hashlib.sha256(endpoint.encode()).hexdigest()[:12]
        path = self.root / f"{host}-{digest}" / _key(repo_id)
        if self.root.resolve() not in path.resolve().parents:
            raise ValueError(f"cache key escapes the cache folder: {repo_id!r}")
        return path


def _remove(path: Path) -> None:
    """Remove what is at `path` (a file, a link, a FIFO, a folder), ignoring a race or a refusal."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass


def _check(metadata: RepoMetadata) -> None:
    """ValueError unless a loaded entry has the types and shape every later step relies on."""
    if not metadata.weight_sets or not _strings(metadata.files) or not _strings(metadata.notes):
        raise ValueError("entry without weight sets, or with odd file names or notes")
    for weight_set in metadata.weight_sets:
        _check_set(weight_set)


def _check_set(weight_set: WeightSet) -> None:
    ok = (isinstance(weight_set.name, str) and isinstance(weight_set.format, str) and _strings(weight_set.files)
          and _strings(weight_set.notes) and all(isinstance(d, dict | None) for d in
                                                (weight_set.config, weight_set.quantize_config))
          and (weight_set.estimated_bytes is None or _count(weight_set.estimated_bytes)))
    ok = ok and isinstance(weight_set.adapter_config, dict | None)
    if not ok or not (weight_set.tensors or weight_set.summary is not None or weight_set.estimated_bytes is not None):
        raise ValueError(f"weight set {weight_set.name!r} is malformed")
    for tensor in weight_set.tensors:
        if not (isinstance(tensor.name, str) and isinstance(tensor.dtype, str) and isinstance(tensor.file, str)
                and _count(tensor.nbytes) and all(_count(d) for d in tensor.shape)):
            raise ValueError("a tensor entry is malformed")


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63


def _strings(values: object) -> bool:
    return isinstance(values, tuple) and all(isinstance(v, str) for v in values)


def _key(value: str) -> str:
    """A single path component for any string: percent-encoded, never '.', '..' or empty."""
    key = quote(value, safe="")
    if key in {"", ".", ".."} or len(key) > 200:
        raise ValueError(f"not a valid cache key: {value!r}")
    return key



@dataclass(frozen=True, slots=True)
class CachedRepo:
    """One repo in the cache: the endpoint it came from, its cached commits and the revisions that led there."""

    endpoint: str  # the endpoint's host, as the folder names it
    repo_id: str
    commits: tuple[str, ...]
    revisions: tuple[str, ...]  # branch, tag or PR names recorded (full shas are not)
    size_bytes: int
    modified: float  # newest write, seconds since the epoch

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"endpoint": self.endpoint, "repo_id": self.repo_id, "commits": list(self.commits),
                "revisions": list(self.revisions), "size_bytes": self.size_bytes, "modified": self.modified}


def list_repos(cache: ResultCache) -> list[CachedRepo]:
    """What the cache holds, repo by repo (links are never followed; what other runs remove meanwhile is skipped)."""
    found = []
    for repo_dir in _repo_folders(cache):
        commits, size, modified = [], 0, 0.0
        for entry in _scan(repo_dir):
            sha = entry.name.removesuffix(".json")
            if entry.name.endswith(".json") and _SHA.match(sha) and entry.is_file(follow_symlinks=False):
                try:
                    stat = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                commits.append(sha)
                size, modified = size + stat.st_size, max(modified, stat.st_mtime)
        revisions = sorted(unquote(e.name) for e in _scan(repo_dir / "refs") if e.is_file(follow_symlinks=False))
        if commits:
            endpoint = repo_dir.parent.name.rsplit("-", 1)[0]
            found.append(CachedRepo(endpoint, unquote(repo_dir.name), tuple(sorted(commits)), tuple(revisions), size,
                                    modified))
    return sorted(found, key=lambda r: (r.repo_id.lower(), r.endpoint))


def clear_repo(cache: ResultCache, repo_id: str) -> list[CachedRepo]:
    """Delete one repo's entries, from every endpoint (the id matched case-insensitively); returns what was there."""
    removed = [r for r in list_repos(cache) if r.repo_id.lower() == repo_id.lower()]
    names = {r.repo_id for r in removed}
    for repo_dir in _repo_folders(cache):
        if unquote(repo_dir.name) in names:
            shutil.rmtree(repo_dir, ignore_errors=True)  # refuses a link: nothing outside the cache is touched
    return removed


def _repo_folders(cache: ResultCache) -> list[Path]:
    """<endpoint>/<repo> folders (real folders, never links)."""
    return [Path(repo.path) for endpoint in _scan(cache.root) if endpoint.is_dir(follow_symlinks=False)
            for repo in _scan(Path(endpoint.path)) if repo.is_dir(follow_symlinks=False)]


def _scan(path: Path) -> list[os.DirEntry]:
    try:
        return list(os.scandir(path))
    except OSError:  # not there (yet, or any more), or not a folder
        return []
