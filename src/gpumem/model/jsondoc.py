"""Parse untrusted JSON documents (headers, config.json, index files) into objects, safely."""

from __future__ import annotations

import json

from ..errors import FormatError


def load_json_object(text: str | bytes, label: str, error: type[FormatError]) -> dict:
    """The JSON object in `text`; `error` ("<label>: ...") for invalid UTF-8 or JSON, deep nesting or a non-object."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise error(f"{label} is not valid UTF-8 (byte {exc.start})") from None
    try:
        value = json.loads(text)
    except RecursionError:  # the C parser recurses once per nesting level
        raise error(f"{label} is JSON nested too deeply to be a real file") from None
    except ValueError as exc:
        raise error(f"{label} is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise error(f"{label} is a JSON {type(value).__name__}, not an object")
    return value
