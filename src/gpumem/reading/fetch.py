"""Read a repo's metadata from the Hub in two overlapping waves of concurrent requests.

Wave 1: model info (the revision -> commit sha, and the file list), config.json and
model.safetensors.index.json, all at once. Wave 2, as soon as model info has answered: every weight file's
header and the remaining small files, all at once (safetensors headers on the HTTP thread, which parses each
as it arrives; the rest on worker threads). A header read's first range is sized from the index so a
second read is rare; the index (9 MB for DeepSeek-V3) may still be on its way when the read starts, so the
read asks the Hub first and takes its size when the Hub redirects it to the CDN (HubClient.range_steps); an
index over 1 MiB is not waited for: its shards' reads take sizes guessed from the listing, and it is read only for
the shard names it uses (model/safetensors_index.py), which must be listed.
Every file read in wave 2 is pinned to the commit sha; wave-1 files are checked against it.
"""

from __future__ import annotations

import math
import posixpath
import threading
from collections import defaultdict
from collections.abc import Callable, Collection, Generator
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from ..constants import SMALL_FILE_CAP
from ..errors import BadConfig, BadHeader, EntryNotFound, GpumemError, Interrupted
from ..model.gguf_header import IncompleteGGUF, gguf_config, parse_gguf
from ..model.jsondoc import load_json_object
from ..model.layout import ADAPTER_CONFIG, Layout, WeightSetPlan, is_adapter_set, pick_gguf_variant, plan_layout
from ..model.params import NameParts, summarize_table
from ..model.safetensors_header import (
    PREFIX_BYTES,
    SafetensorsHeader,
    parse_header,
    read_header_length,
)
from ..model.safetensors_index import weight_map_shards
from ..model.types import RepoMetadata, TensorTable, WeightSet
from .hub import HubClient, RepoListing, Steps, deadline_error

ROOT_CONFIG = "config.json"
ROOT_INDEX = "model.safetensors.index.json"
# Serialized size of one header entry beyond its name: quotes, dtype, a 2-D shape and two offsets
# (measured on real headers: 80-86 bytes); the margin keeps a second read rare.
_ENTRY_BYTES = 86
_HEADER_MARGIN = 1.08
_DEFAULT_FIRST_READ = 64 * 1024  # no index to predict from (single-file repos)
_MAX_FIRST_READ = 1024 * 1024  # an index of junk names must not turn the first read into a weights download
_GGUF_FIRST_READ = 64 * 1024  # most of a split part's or a small model's header; bigger ones say how much more
_SMALL_FILES = ("quantize_config.json", "quant_config.json")
# Header reads in flight at once on the HTTP thread: every shard of a big repo (over HTTP/2 they share a connection;
# over HTTP/1.1 the transport opens at most MAX_CONCURRENCY connections per host and queues the rest)
_WAVE_IN_FLIGHT = 1024
# An index bigger than this (DeepSeek-V3's: 8.9 MB, 92k tensors) is not waited for: its JSON alone takes ~0.1 s of
# CPU, so a shard's first read takes a size guessed from the listing instead (the index's own size spread over the
# shards by file size, x1.5 for what a header entry holds beyond the index's, + 8 KiB); one a guess falls short
# of gets a second read. A smaller index arrives with the redirects and sizes the reads exactly.
_WAIT_FOR_INDEX_UP_TO = 1024 * 1024
_GUESS_PER_INDEX_BYTE = 1.5
_GUESS_SLACK = 8 * 1024
_DEADLINE_GRACE_S = 5.0  # past the client's deadline every read has ended; if one has not, the wave stops waiting

T = TypeVar("T")


def fetch_repo(client: HubClient, repo_id: str, revision: str = "main", *, gguf_file: str | None = None) -> RepoMetadata:
    """Read everything gpumem needs about one revision of a repo (never tensor data).

    `gguf_file` reads only that variant of a GGUF repo (each header carries a tokenizer of ~1 MB).
    Errors are raised in the order that explains best: model info, config, index, then the rest.
    """
    sizes = _HeaderSizes()

    def read_document(path: str, parse: Callable[[bytes, str], T]) -> tuple[T | None, str | None]:
        try:
            content, commit = client.read_file(repo_id, revision, path)
        except EntryNotFound:
            return None, None
        return parse(content, path), commit

    def index_then_sizes() -> tuple[Index | None, str | None]:
        try:
            index, commit = read_document(ROOT_INDEX, parse_index)
        except BaseException:
            sizes.fail()  # the waiting header reads stop, and this error is raised
            raise
        sizes.publish(index)
        return index, commit

    def listing_then_wave2() -> tuple[RepoListing, tuple[bool, Any]]:
        listing = client.resolve(repo_id, revision)
        return listing, _capture(lambda: _wave2(client, listing, gguf_file, sizes))

    # The index first: with a single worker the calls run in this order, and wave 2 waits for its sizes.
    index_outcome, config_outcome, listing_outcome = client.map_concurrent(
        _capture, [index_then_sizes, lambda: read_document(ROOT_CONFIG, parse_json), listing_then_wave2])
    listing, wave2 = _unwrap(listing_outcome)  # the model-info error (not found, bad revision) explains best
    documents: dict[str, dict | Index | None] = {}
    for path, outcome, parse in ((ROOT_CONFIG, config_outcome, parse_json), (ROOT_INDEX, index_outcome, parse_index)):
        document, commit = _unwrap(outcome)
        if commit and commit != listing.sha:  # a push raced us: read the file at the sha
            content, _ = client.read_file(repo_id, listing.sha, path)
            document = parse(content, path)
        documents[path] = document
    layout, small, results, name_parts, listed = _unwrap(wave2)
    documents.update((path, results[path]) for path in small)
    sets = tuple(build_weight_set(plan, listed.get, listed.keys(), documents, results,
                                  keep_tensors=keeps_tensors(layout.sets, plan), name_parts=name_parts)
                 for plan in layout.sets)
    return RepoMetadata(repo_id, listing.sha, "hub", sets, tuple(listed), layout.notes)


def keeps_tensors(sets: tuple[WeightSetPlan, ...], plan: WeightSetPlan) -> bool:
    """Whether a weight set read from the Hub keeps its tensors beside its summary, as the cache keeps them:
    components reported together (diffusers) and adapters do; a model alone keeps only its summary, which
    spares an object per tensor (DeepSeek-V3: 92k)."""
    return (len(sets) > 1 and sets[0].format != "gguf") or is_adapter_set(plan)


@dataclass(frozen=True, slots=True)
class LargeIndex:
    """A root index over _WAIT_FOR_INDEX_UP_TO read without building its weight map (DeepSeek-V3's: 92k entries):
    the shard names it uses, and its text, parsed in full only should a shard need wording or reads need sizes."""

    content: bytes
    shards: frozenset[str]

    def document(self, path: str) -> dict:
        return parse_json(self.content, path)


Index = dict | LargeIndex


def parse_index(content: bytes, path: str) -> Index:
    """The root index: an index too big to wait for, laid out as the writers lay it out, is read for its shard names
    alone (~0.03 s where JSON takes ~0.1 s); any other as JSON, which words what is wrong with it."""
    if len(content) > _WAIT_FOR_INDEX_UP_TO and (shards := weight_map_shards(content)) is not None:
        return LargeIndex(content, frozenset(shards))
    return parse_json(content, path)


class _HeaderSizes:
    """First-read sizes of the shards the root index names, for the header reads that wait for them: the index is
    published once wave 1 has read it (or has failed to), and its sizes are predicted when a read first asks."""

    def __init__(self) -> None:
        self._known = threading.Event()
        self._index: Index | None = None
        self._failed = False
        self._sizes: dict[str, int] | None = None
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []

    def publish(self, index: Index | None) -> None:
        """The index (None: the repo has none)."""
        self._index = index
        self._announce()

    def fail(self) -> None:
        """Reading the index failed: the reads waiting for it stop (its own error is raised)."""
        self._failed = True
        self._announce()

    def _announce(self) -> None:
        with self._lock:
            self._known.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def when_ready(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the index is read or has failed (at once if it has)."""
        with self._lock:
            if not self._known.is_set():
                self._callbacks.append(callback)
                return
        callback()

    def first_read(self, path: str, size: int | None) -> int:
        """The first range to ask of `path`, once the index is read."""
        self._known.wait()
        if self._failed:
            raise _IndexFailed(f"{path}: left unread, as the index could not be read")
        with self._lock:
            if self._sizes is None:
                index = self._index
                self._sizes = predict_header_sizes(index.document(ROOT_INDEX) if isinstance(index, LargeIndex)
                                                   else index or {})
            sizes = self._sizes
        return first_read_size(sizes.get(path) or sizes.get(posixpath.basename(path)), size)

    def first_read_now(self, path: str, size: int | None, default: int) -> int:
        """The first range to ask of `path` if the index is read already, else `default` (without waiting)."""
        return self.first_read(path, size) if self._known.is_set() and not self._failed else default


class _IndexFailed(GpumemError):
    """A header read left off because reading the index failed (whose own error is raised instead)."""


def _wave2(client: HubClient, listing: RepoListing, gguf_file: str | None, sizes: _HeaderSizes
           ) -> tuple[Layout, list[str], dict[str, object], dict[str, NameParts], dict[str, int | None]]:
    """Every header and small file the layout needs, at once (config and root index are wave 1's): the layout,
    the small files' paths, every result by path, for a set counted into a summary what each header's names
    say for counting (made as each header arrives), and the listed files' sizes. Safetensors headers are read on
    the HTTP thread (no thread each) and parsed there one at a time as they arrive; small files and GGUF headers
    on worker threads."""
    listed = {f.path: f.size for f in listing.files}
    layout = plan_layout(listed)
    if gguf_file is not None and layout.sets[0].format == "gguf":
        layout = replace(layout, sets=(pick_gguf_variant(layout.sets, gguf_file),))
    small = small_files_needed(layout.sets, listed.keys(), (ROOT_CONFIG, ROOT_INDEX))
    tasks: list[Callable[[], tuple[str, object]]] = [_small_task(client, listing, path) for path in small]
    reads: list[_HeaderRead] = []
    name_parts: dict[str, NameParts] = {}
    for plan in layout.sets:
        if plan.format == "safetensors":
            later = sizes if plan.index == ROOT_INDEX else None
            parts = None if keeps_tensors(layout.sets, plan) else name_parts
            guesses = _guessed_first_reads(plan.files, listed) if later is not None else {}
            if guesses:  # a big index is not waited for, nor asked: its shards' first reads are the guesses
                later = None
            reads.extend(_HeaderRead(path, listed.get(path), guesses.get(path) or first_read_size(None, listed.get(path)),
                                     later, parts) for path in plan.files)
        elif plan.format != "pytorch-bin":
            tasks.extend(_gguf_task(client, listing, path, listed.get(path)) for path in plan.files)
    wave = _HeaderWave(client, listing, reads)  # under way before the worker threads start
    try:
        outcomes = client.map_concurrent(lambda task: _capture(task), tasks)
    except BaseException:  # not a gpumem error, which _capture keeps in order: the header reads stop now
        client.cancel()
        raise
    # the first error in plan order: small files, then each set's files (a layout is all GGUF or has none)
    results = dict(_unwrap(outcome) for outcome in outcomes + wave.outcomes())
    return layout, small, results, name_parts, listed


@dataclass(frozen=True, slots=True)
class _HeaderRead:
    """One safetensors header to read: its first range (a guess, a default, or `later` the index's size for it,
    taken when the Hub redirects the read), and where its NameParts go."""

    path: str
    size: int | None
    first_read: int
    later: _HeaderSizes | None
    name_parts: dict[str, NameParts] | None


class _HeaderWave:
    """Safetensors header reads in flight on the HTTP thread, all at once (up to _WAVE_IN_FLIGHT), each parsed
    there once it has arrived and no transfer needs the thread: parsing overlaps the wave on the one thread that
    moves it, instead of 48 workers contending for the GIL with it (whose callbacks then waited their turn)."""

    def __init__(self, client: HubClient, listing: RepoListing, reads: list[_HeaderRead]) -> None:
        self.client, self.listing, self.reads = client, listing, reads
        self._outcomes: list[tuple[bool, Any]] = [(False, None)] * len(reads)
        self._left = len(reads)
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._waiting = iter(range(len(reads)))
        if not reads:
            self._done.set()
        for _ in range(min(len(reads), _WAVE_IN_FLIGHT)):
            self._start_next()

    def outcomes(self) -> list[tuple[bool, Any]]:
        """Every read's (ok, header or error), in order, once all have ended; Ctrl-C cancels the client. Every read
        ends by the client's deadline; should one be lost all the same, the wave ends a little after it."""
        try:
            while not self._done.wait(0.2):  # short waits: the signal handler (Ctrl-C) runs between them
                left = self.client.transport.remaining()
                if left is not None and left < -_DEADLINE_GRACE_S:
                    raise deadline_error()  # (cancelled below)
        except BaseException:
            self.client.cancel()
            raise
        return self._outcomes

    def _start_next(self) -> None:
        with self._lock:
            number = next(self._waiting, None)
        if number is None:
            return
        read, client, listing = self.reads[number], self.client, self.listing
        path, size, later = read.path, read.size, read.later

        def steps(start: int, length: int) -> Steps[bytes]:
            if start == 0 and later is not None:  # the first range: sized from the index, taken at the redirect
                return client.range_steps(listing.repo_id, listing.sha, path, 0, later.first_read_now(path, size, length),
                                          length_at_redirect=lambda: later.first_read(path, size),
                                          ready=later.when_ready)
            return client.range_steps(listing.repo_id, listing.sha, path, start, length)

        client.start(_safetensors_prefix(steps, path, read.first_read, size),
                     lambda prefix, error: self._arrived(number, prefix, error))

    def _arrived(self, number: int, prefix: bytes | None, error: BaseException | None) -> None:
        self.client.transport.call_soon(self._start_next)  # not from here: reads failing at once would recurse
        if error is not None:
            self._end(number, (False, error))
        else:
            self.client.transport.when_idle(lambda: self._parse(number, prefix or b""))

    def _parse(self, number: int, prefix: bytes) -> None:
        read = self.reads[number]
        try:
            if self.client.transport.cancelled:  # cancel() is answered now, not after every parse already queued
                raise Interrupted("interrupted")
            header = parse_header(prefix, read.path, read.size)
            if read.name_parts is not None:  # counting's work on the names, while other headers are on their way
                read.name_parts[read.path] = NameParts.of(header.table.names)
            outcome: tuple[bool, Any] = (True, (read.path, header))
        except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread, in order
            outcome = (False, exc)
        self._end(number, outcome)

    def _end(self, number: int, outcome: tuple[bool, Any]) -> None:
        self._outcomes[number] = outcome
        with self._lock:
            self._left -= 1
            if self._left == 0:
                self._done.set()


def _guessed_first_reads(files: tuple[str, ...], listed: dict[str, int | None]) -> dict[str, int]:
    """First ranges for the shards of a set whose index is too big to wait for ({} for a small or unlisted one)."""
    index = listed.get(ROOT_INDEX)
    sizes = {path: listed.get(path) or 0 for path in files}
    total = sum(sizes.values())
    if not index or index <= _WAIT_FOR_INDEX_UP_TO or not all(sizes.values()):
        return {}
    return {path: first_read_size(math.ceil(_GUESS_PER_INDEX_BYTE * index * size / total) + _GUESS_SLACK, size)
            for path, size in sizes.items()}


def small_files_needed(plans: tuple[WeightSetPlan, ...], listed: Collection[str], have: Collection[str]) -> list[str]:
    """Config, index and quantization files the weight sets need that are not read yet."""
    wanted = set()
    for plan in plans:
        wanted.add(posixpath.join(plan.folder, ROOT_CONFIG))
        if is_adapter_set(plan):
            wanted.add(posixpath.join(plan.folder, ADAPTER_CONFIG))
        if plan.index:
            wanted.add(plan.index)
    wanted.update(name for name in _SMALL_FILES if name in listed)
    return sorted(p for p in wanted if p in listed and p not in have)


def _small_task(client: HubClient, listing: RepoListing, path: str) -> Callable[[], tuple[str, object]]:
    def run() -> tuple[str, object]:
        content, _ = client.read_file(listing.repo_id, listing.sha, path)
        return path, parse_json(content, path)
    return run


def _gguf_task(client: HubClient, listing: RepoListing, path: str, size: int | None) -> Callable[[], tuple[str, object]]:
    def run() -> tuple[str, object]:
        return path, read_weight_header(lambda start, length: client.read_range(listing.repo_id, listing.sha, path,
                                                                                start, length), "gguf", path, size)
    return run


def read_weight_header(read: Callable[[int, int], bytes], fmt: str, path: str, size: int | None,
                       guess: int | None = None):
    """Read and parse one weight file's header through `read(start, length)` (Hub or local file)."""
    if fmt == "gguf":
        return _read_gguf_header(read, path, size)
    return _read_safetensors_header(read, path, first_read_size(guess, size), size)


def first_read_size(guess: int | None, size: int | None) -> int:
    """The first range of a safetensors header read: the index's guess (capped: an index of junk names must not
    turn it into a weights download), else a default; never past the file's end."""
    length = min(guess or _DEFAULT_FIRST_READ, _MAX_FIRST_READ)
    return min(length, size) if size else length


def predict_header_sizes(index: dict) -> dict[str, int]:
    """First-read size per shard the index names: its tensor names, plus a per-entry allowance.

    One pass over the weight map (DeepSeek-V3's has 92k entries); shard names that are not strings are left to
    the index check, which words them.
    """
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict):
        return {}
    chars: dict[str, int] = defaultdict(int)
    counts: dict[str, int] = defaultdict(int)
    for name, file in weight_map.items():
        if type(file) is str:
            chars[file] += len(name)
            counts[file] += 1
    return {file: math.ceil((PREFIX_BYTES + 64 + chars[file] + count * _ENTRY_BYTES) * _HEADER_MARGIN)
            for file, count in counts.items()}


def _read_safetensors_header(read: Callable[[int, int], bytes], path: str, first_read: int,
                             size: int | None) -> SafetensorsHeader:
    prefix = _safetensors_prefix(lambda start, length: _at_once(read(start, length)), path, first_read, size)
    try:
        next(prefix)
    except StopIteration as stop:
        return parse_header(stop.value, path, size)
    raise AssertionError("reads through a plain callable take no steps")


def _safetensors_prefix(read: Callable[[int, int], Generator[Any, Any, bytes]], path: str, first_read: int,
                        size: int | None) -> Generator[Any, Any, bytes]:
    """A safetensors file's 8-byte length and JSON header, in one read when `first_read` covers it, else two:
    as steps, so that the same rule serves a blocking `read` and the Hub client's reads on its HTTP thread."""
    first = yield from read(0, first_read)
    needed = PREFIX_BYTES + read_header_length(first, path)
    if size is not None and needed > size:
        raise BadHeader(f"{path}: header length {needed - PREFIX_BYTES:,} runs past the end of the {size:,}-byte file")
    if len(first) < needed:
        first += yield from read(len(first), needed - len(first))
    return first[:needed]


def _at_once(value: bytes) -> Generator[Any, Any, bytes]:
    """A value as steps that take none (a read that has already happened)."""
    yield from ()
    return value


def _read_gguf_header(read: Callable[[int, int], bytes], path: str, size: int | None):
    """Read a GGUF header incrementally: headers hold the tokenizer and can be several MB."""
    data = read(0, min(_GGUF_FIRST_READ, size or _GGUF_FIRST_READ))
    while True:
        try:
            return parse_gguf(data, path, size)
        except IncompleteGGUF as more:
            if size is not None and len(data) >= size:
                raise BadHeader(f"{path}: the GGUF header runs past the end of the file") from None
            if len(data) >= SMALL_FILE_CAP:
                raise BadHeader(f"{path}: the GGUF header runs past {SMALL_FILE_CAP:,} bytes; refusing to read more") from None
            target = min(max(more.needed_at_least, 2 * len(data)), SMALL_FILE_CAP)
            if size is not None:
                target = min(target, size)
            more_bytes = read(len(data), target - len(data))
            if not more_bytes:
                raise BadHeader(f"{path}: the file ended inside its GGUF header") from None
            data += more_bytes


def build_weight_set(plan: WeightSetPlan, size_of: Callable[[str], int | None], listed: Collection[str],
                     documents: dict, headers: dict, *, keep_tensors: bool = True,
                     name_parts: dict[str, NameParts] | None = None) -> WeightSet:
    """Assemble one WeightSet from its parsed headers and small files; without `keep_tensors`, a safetensors
    set carries its summary (counted here, from the headers' columns, with each header's `name_parts` where
    the reader made them) and no tensors."""
    config = documents.get(posixpath.join(plan.folder, ROOT_CONFIG))
    quantize_config = next((documents[n] for n in _SMALL_FILES if documents.get(n)), None)
    if plan.format == "pytorch-bin":
        return _bin_set(plan, size_of, documents, config)
    parsed = [headers[path] for path in plan.files]
    if plan.format == "gguf":
        config = _gguf_set_config(parsed)
    if plan.index and documents.get(plan.index):
        _check_index(plan.index, documents[plan.index], listed)
    adapter_config = documents.get(posixpath.join(plan.folder, ADAPTER_CONFIG)) if is_adapter_set(plan) else None
    table = _merge_tables(parsed)
    notes = _unknown_type_notes(parsed) if plan.format == "gguf" else ()
    if keep_tensors or plan.format != "safetensors":
        return WeightSet(plan.name, plan.format, plan.files, table.tensors(), config, quantize_config, notes=notes,
                         adapter_config=adapter_config)
    names = None
    if name_parts and all(path in name_parts for path in plan.files):
        names = NameParts.concat(name_parts[path] for path in plan.files)
    return WeightSet(plan.name, plan.format, plan.files, (), config, quantize_config, notes=notes,
                     adapter_config=adapter_config, summary=summarize_table(table, config, quantize_config, names=names))


def _bin_set(plan: WeightSetPlan, size_of: Callable[[str], int | None], documents: dict, config: dict | None) -> WeightSet:
    """A pickle-only repo: never download it; take total_size from its index or the listed file sizes."""
    index = documents.get(plan.index) if plan.index else None
    metadata = (index or {}).get("metadata")
    total = metadata.get("total_size") if isinstance(metadata, dict) else None
    if not isinstance(total, int):
        sizes = [size_of(path) for path in plan.files]
        known = [s for s in sizes if isinstance(s, int)]
        total = sum(known) if len(known) == len(sizes) else None
    note = "no safetensors: estimated from the pytorch_model.bin " + ("index's total_size" if index else "file sizes")
    return WeightSet(plan.name, plan.format, plan.files, (), config, None, total, (note,))


def _merge_tables(parsed: list) -> TensorTable:
    """The headers' tensors in one table, in file order; a name stored twice is refused."""
    table = TensorTable.concat(h.table if isinstance(h, SafetensorsHeader) else TensorTable.of(h.tensors)
                               for h in parsed)
    if len(set(table.names)) < len(table):
        seen: dict[str, str] = {}
        for name, file in zip(table.names, table.files):
            if name in seen:
                raise BadHeader(f"{file}: tensor '{name}' is also stored in {seen[name]}")
            seen[name] = file
    return table


def _check_index(path: str, index: Index, listed: Collection[str]) -> None:
    """Every shard the index's weight map names is listed (the first one that is not, in map order, is the error)."""
    folder = posixpath.dirname(path)
    if isinstance(index, LargeIndex):
        if all(posixpath.join(folder, shard) in listed for shard in index.shards):
            return
        index = index.document(path)  # which shard comes first in the map, as the JSON reads it
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict):
        raise BadConfig(f"{path}: field 'weight_map' is missing or not an object")
    try:
        shards = list(dict.fromkeys(weight_map.values()))  # 163 distinct shards, not 92k entries (DeepSeek-V3)
    except TypeError:  # a list or object where a shard name belongs
        shards = list({repr(shard): shard for shard in weight_map.values()}.values())
    for shard in shards:
        if not isinstance(shard, str) or posixpath.join(folder, shard) not in listed:
            raise BadConfig(f"{path}: field 'weight_map' names shard {shard!r}, which is not in the repo")


def _gguf_set_config(parsed: list) -> dict:
    """Config keys from a GGUF variant's first part; vocab_size from token_embd when the metadata omits it."""
    config = gguf_config(parsed[0].metadata, parsed[0].file)
    if "vocab_size" not in config:  # older converters wrote neither llama.vocab_size nor always the tokenizer
        embedding = next((t for header in parsed for t in header.tensors if t.name == "token_embd.weight"), None)
        if embedding is not None and len(embedding.shape) == 2:
            config["vocab_size"] = embedding.shape[0]
    return config


def _unknown_type_notes(parsed: list) -> tuple[str, ...]:
    """GGUF tensors of ggml types gpumem does not know: the reader left them out (their size is unknown too).

    Unknown safetensors dtypes keep their exact bytes (the offsets give them); params.count_weights notes them.
    """
    types = sorted({t for header in parsed for t in header.unknown_types})
    if not types:
        return ()
    count = sum(header.unknown_tensors for header in parsed)
    label = f"ggml type{'s' if len(types) > 1 else ''} {', '.join(map(str, types))}"
    return (f"{label} ({count} tensor{'s' if count != 1 else ''}) left out of bytes and parameters",)


def parse_json(content: bytes, path: str) -> dict:
    """Parse a small JSON metadata file that must hold an object."""
    return load_json_object(content, path, BadConfig)


def _capture(call: Callable[[], object]) -> tuple[bool, object]:
    try:
        return True, call()
    except GpumemError as exc:
        return False, exc


def _unwrap(outcome: tuple[bool, Any]):
    ok, value = outcome
    if not ok:
        raise value
    return value
