"""Text at the terminal's width: word wrapping (table cells, titles, shell commands with ` \\` continuations) and
the notes, hints and errors said on stderr (`say`).

Only the standard library's os, re and sys: an error (a mistyped flag before any command runs) is said without
loading the tables, the reports or the planner.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from typing import TextIO


def terminal_width() -> int:
    """The width tables fit: COLUMNS when set, else stdout's terminal, else 80 (a pipe)."""
    return _width(sys.stdout)


def stderr_width() -> int:
    """The width notes, hints and errors wrap at: COLUMNS when set, else stderr's terminal, else 80."""
    return _width(sys.stderr)


def _width(stream: TextIO) -> int:
    """COLUMNS when set, else the width of the terminal `stream` writes to, else 80."""
    try:
        return max(20, int(os.environ["COLUMNS"]))
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(stream.fileno()).columns if stream.isatty() else 80
    except (OSError, ValueError, AttributeError):
        return 80


def say(label: str, message: str) -> None:
    """`Note: ...`, `Hint: ...` or `Error: ...` on stderr, wrapped at its width with the text indented under the
    label (ids, URLs, flags and `commands` whole)."""
    sys.stderr.write("".join(line + "\n" for line in message_lines(label, message, stderr_width())))


# A number and its unit stay on one line: "18.3 GB", "7.62 B", "4 bit".
_UNIT = re.compile(r"^(?:[kMGT]i?B|B|M|K|T|bit|bits|×|·|/)$")
# A word: a run of non-spaces, where a `command` or a "quoted name" counts as one run (never split inside).
_WORD = re.compile(r'(?:`[^`]*`|"[^"\s][^"]*"|\S)+')


def words(value: str) -> list[str]:
    """Words that wrapping never splits (a unit stays with its number, a separator with what precedes it, a
    `command` or "quoted name" with itself)."""
    tokens: list[str] = []
    for word in _WORD.findall(value):
        if tokens and _UNIT.match(word):
            tokens[-1] += " " + word
        else:
            tokens.append(word)
    return tokens


def _whole(word: str, width: int) -> list[str]:
    return [word]


def wrap(value: str, width: int, split: Callable[[str, int], list[str]] = _whole) -> list[str]:
    """Greedy word wrap at spaces. A word longer than `width` starts a line of its own (whole, or over the lines
    `split(word, width)` cuts it into); the words after it share its last line while they fit."""
    lines: list[str] = []
    current = ""
    for token in words(value):
        if len(token) > width:
            lines += [current] if current else []
            *whole, current = split(token, width)
            lines += whole
        elif current and len(current) + 1 + len(token) > width:
            lines.append(current)
            current = token
        else:
            current = f"{current} {token}" if current else token
    if current:
        lines.append(current)
    return lines or [""]


def wrap_title(value: str, width: int) -> list[str]:
    """A title wrapped at its clause boundaries (after ", " or ": ") where a clause fits, else at spaces:
    "..., 1 sequence of 1,024 tokens," / "KV fp16 (auto), TP 1", never "..., KV" / "fp16 (auto) ..."."""
    clauses = re.split(r"(?<=[,:]) (?=\D)", value)  # not inside a number such as "1, 2"
    lines: list[str] = []
    current = ""
    for clause in clauses:
        if current and len(current) + 1 + len(clause) <= width:
            current += " " + clause
            continue
        if current:
            lines.append(current)
        pieces = wrap(clause, width)
        lines += pieces[:-1]
        current = pieces[-1]
    if current:
        lines.append(current)
    return lines or [""]


def message_lines(label: str, message: str, width: int) -> list[str]:
    """A note, hint or error for stderr: `Label: text` wrapped at `width`, continuation lines indented under the
    text; ids, URLs, flags and `commands` are never split (a long `command` takes ` \\` continuations, as on
    stdout). Line breaks in `message` are kept."""
    head = f"{label}: "
    indent = " " * len(head)
    room = max(20, width - len(head))
    lines = [line for paragraph in message.split("\n") for line in wrap(paragraph, room, _split_command)]
    return [(head if k == 0 else indent) + line for k, line in enumerate(lines)]


def _split_command(word: str, width: int) -> list[str]:
    """A `command` too long for a line, over several (`wrap_command`); any other word whole."""
    return wrap_command(word, width) if word.startswith("`") else [word]


def wrap_command(command: str, width: int) -> list[str]:
    """A shell command over several lines joined by ` \\`: breaks before an option (or between an option and a
    value too long to share its line), never inside a word."""
    groups: list[str] = []
    for word in command.split(" "):  # an option and its value stay together while they fit
        if groups and not word.startswith("-") and groups[-1].startswith("-") and " " not in groups[-1] \
                and len("    " + groups[-1] + " " + word + " \\") <= width:
            groups[-1] += " " + word
        else:
            groups.append(word)
    lines, current = [], ""
    for group in groups:
        if current and len(current) + 1 + len(group) + 2 > width:
            lines.append(current + " \\")
            current = "    " + group
        else:
            current = f"{current} {group}" if current else group
    lines.append(current)
    return lines

