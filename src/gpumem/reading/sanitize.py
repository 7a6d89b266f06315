"""One treatment for text gpumem did not write before it is shown: server messages, file, folder and
tensor names, dtypes, config values. JSON output needs none of it (json.dumps escapes control characters).

- `redact`: the token and any credentials in URLs become `***` (secrets are registered where they are read);
- `clean`: control characters (escape codes, OSC-8 links, bidi overrides, NUL) are shown as `\\xNN`, and very
  long text is cut, so no server can clear a screen, forge an "Error:" line or hide a link;
- rich markup needs no escaping: the writers hand rich `Text` pieces, which it never parses as markup;
- `csv_cell`: a text cell that a spreadsheet would run as a formula gets a leading apostrophe.
"""

from __future__ import annotations

import re
import threading

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]*@")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_HF_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{8,}")
_SECRETS: set[str] = set()
_LOCK = threading.Lock()
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def register_secret(secret: str | None) -> None:
    """Remember a secret (a token, a password) so `redact` hides it wherever it shows up."""
    if secret and len(secret) >= 4:
        with _LOCK:
            _SECRETS.add(secret)


def redact(text: str) -> str:
    """`text` with every registered secret, URL credentials, Authorization values and hf_ tokens as `***`."""
    with _LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, "***")
    plain = text.isascii()  # ASCII text skips a pattern whose literal part it lacks (the request log: 2 per request)
    if not plain or "@" in text:
        text = _URL_CREDENTIALS.sub(r"\1***@", text)
    if not plain or "bearer" in (lower := text.lower()) or "basic" in lower:
        text = _BEARER.sub(lambda m: f"{m.group(1)} ***", text)
    return _HF_TOKEN.sub("hf_***", text) if not plain or "hf_" in text else text


def clean(text: object, limit: int = 500) -> str:
    """Untrusted text made safe for a terminal: redacted, control characters as \\xNN, at most `limit` characters."""
    text = redact(str(text))
    if not (text.isascii() and text.isprintable()):  # printable ASCII holds none of _CONTROL's characters
        text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256 else f"\\u{ord(m.group()):04x}",
                            text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def csv_cell(value: object) -> object:
    """A CSV value: numbers as they are; text cleaned, with a leading apostrophe when a spreadsheet
    would take it for a formula (=, +, -, @)."""
    if not isinstance(value, str):
        return value
    text = clean(value, limit=10_000)
    if text.startswith(_FORMULA_START) and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
