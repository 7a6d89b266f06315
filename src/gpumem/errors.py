"""gpumem's one error hierarchy, each class mapped to a documented process exit code.

Library code raises these; `cli.main` prints `Error: <message>` (plus `Hint: <hint>`) and exits
with `exit_code`. Messages never contain a token.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes (documented in the README)."""

    OK = 0
    ERROR = 1
    USAGE = 2
    NOT_FOUND = 3
    ACCESS = 4
    FORMAT = 5
    NETWORK = 6
    INTERRUPTED = 130
    PIPE_CLOSED = 141  # stdout closed by its reader (`gpumem ... | head`)


class GpumemError(Exception):
    """Base class of every error gpumem raises on purpose.

    Messages and hints speak the library's words: a parameter is named as the library spells it (`deadline`,
    `offline`, `token`). `hint_options` lists the parameters the hint names, each as a word of its own, so that
    the CLI can say them as its flags (`--timeout`, `--offline`, `--token`).
    """

    exit_code = ExitCode.ERROR

    def __init__(self, message: str, *, hint: str | None = None, hint_options: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.hint_options = hint_options


class UsageError(GpumemError):
    """The request itself is invalid: a bad repo id, option value or combination.

    `option` names the parameter (library spelling, e.g. "kv_dtype") the message starts with, so that the
    CLI can say it as its flag (`--kv-dtype`); the library's own words never name a flag.
    """

    exit_code = ExitCode.USAGE

    def __init__(self, message: str, *, hint: str | None = None, option: str | None = None,
                 hint_options: tuple[str, ...] = ()) -> None:
        super().__init__(message, hint=hint, hint_options=hint_options)
        self.option = option


class AdapterTraining(UsageError):
    """Training plans were asked of a LoRA adapter: they are planned on its base model (`base`, None when its config
    names none) with the adapter's `rank` and `target_modules` (comma-separated), which the hint names."""

    def __init__(self, message: str, *, base: str | None, rank: int, target_modules: str) -> None:
        super().__init__(message, hint=f"plan it on {base or 'its base'} with method lora, rank {rank} and "
                                       f"target_modules {target_modules}",
                         hint_options=("method", "rank", "target_modules"))
        self.base, self.rank, self.target_modules = base, rank, target_modules


class NotFoundError(GpumemError):
    """Something named by the user does not exist."""

    exit_code = ExitCode.NOT_FOUND


class RepoNotFound(NotFoundError):
    """The repository does not exist, or is private and the token cannot see it."""


class RevisionNotFound(NotFoundError):
    """The branch, tag, commit or PR ref does not exist in the repository."""


class EntryNotFound(NotFoundError):
    """A file the repository's own metadata names is missing."""


class AccessError(GpumemError):
    """The repository exists but the credentials do not open it."""

    exit_code = ExitCode.ACCESS


class GatedRepo(AccessError):
    """The repository is gated: access must be requested and a token passed."""


class AuthError(AccessError):
    """The token was rejected."""


class FormatError(GpumemError):
    """The repository's files are not what gpumem can read."""

    exit_code = ExitCode.FORMAT


class NoWeights(FormatError):
    """The repository holds no weight files gpumem can read."""


class BadHeader(FormatError):
    """A safetensors or GGUF header is malformed; the message names the file and the tensor/field."""


class BadConfig(FormatError):
    """config.json (or an index file) is malformed or has absurd values; names the file and field."""


class NetworkError(GpumemError):
    """The Hub could not be reached or kept failing."""

    exit_code = ExitCode.NETWORK


class HubUnavailable(NetworkError):
    """Connection errors, timeouts, 5xx or 429 persisted after the retries."""


class OfflineMiss(NetworkError):
    """Offline mode was asked for and neither the cache nor the snapshot holds the answer."""


class OutputError(GpumemError):
    """An output file (--svg) could not be written; what went to stdout is complete."""


class Interrupted(GpumemError):
    """The run was interrupted (Ctrl-C): requests in flight were cancelled."""

    exit_code = ExitCode.INTERRUPTED


def repo_error_record(repo_id: str, error: GpumemError) -> dict:
    """The one JSON shape of a repo that failed in a many-repo answer (hf, compare and fit alike)."""
    return {"repo_id": repo_id, "error": error.message, "exit_code": int(error.exit_code)}
