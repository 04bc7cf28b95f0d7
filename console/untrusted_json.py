"""The one way in for JSON that someone outside the console wrote: device reports, API bodies, imported files.

Python's json module is safe against many things but not against these, each of which used to end in a 500:

- nesting: the decoder recurses, so ``[[[[…]]]]`` 1,000 levels deep raises RecursionError (not ValueError). The
  depth is measured *before* decoding, by counting brackets outside strings, so a deep document never reaches
  the recursive decoder;
- text the database cannot store: PostgreSQL refuses NUL (``\\u0000``) in text and jsonb, and lone surrogates
  (``\\ud800``) cannot even be encoded as UTF-8. Other C0 control characters (ESC, backspace, …) make no sense in
  any value the console accepts and end up in logs, CSV exports and terminals;
- NaN and Infinity (and ``1e999``, which Python reads as infinity): not JSON, and jsonb refuses them;
- size: every caller names its own limit (Graph's 4 MB for the API, the channel's 256 KB for a report).

Every refusal is an UntrustedJSONError with a status (400, or 413 for size) and a message that says what was
wrong and where, so each caller answers in its own error format (the Graph envelope, the channel's error JSON, a
form error).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from itertools import accumulate
from typing import Any

DEFAULT_MAX_DEPTH = 64
GRAPH_MAX_BYTES = 4 * 1024 * 1024  # Microsoft Graph refuses request bodies over 4 MB

# A JSON string (with its escapes), or an unterminated one up to the end of the text. Possessive quantifiers and
# an ending that always matches keep it linear: a failed match would be retried from every later quote, and
# '"' followed by a million escaped quotes would take hours.
_STRING = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
# NUL and the C0/DEL controls except tab, line feed and carriage return; lone surrogates (not storable).
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


class UntrustedJSONError(ValueError):
    """A document refused before it reached any code that trusts it: an HTTP status, a code and a message."""

    def __init__(self, message: str, *, status: int = 400, code: str = "invalid_json") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


def loads(
    data: bytes | str,
    *,
    max_bytes: int,
    max_depth: int = DEFAULT_MAX_DEPTH,
    what: str = "The request body",
) -> Any:
    """Decode ``data`` or raise UntrustedJSONError; the result holds only storable, printable-or-whitespace text.

    ``what`` names the document in messages ("The report", "The file").
    """
    size = len(data.encode("utf-8") if isinstance(data, str) else data)
    if size > max_bytes:
        raise UntrustedJSONError(f"{what} is larger than {_human(max_bytes)}.", status=413, code="too_large")
    text = _decode(data, what)
    depth = nesting_depth(text)
    if depth > max_depth:
        raise UntrustedJSONError(
            f"{what} nests {depth} levels deep; at most {max_depth} levels are accepted.", code="too_deep"
        )
    try:
        document = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except UntrustedJSONError:
        raise
    except json.JSONDecodeError as exc:
        raise UntrustedJSONError(
            f"{what} isn't valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})."
        ) from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer of more than 4,300 digits
        raise UntrustedJSONError(f"{what} isn't valid JSON ({exc}).") from None
    # A forbidden character in a decoded string is either in the text itself or written as an escape (\u0000,
    # \b, \f, \ud800): a text with neither needs no walk over the document (a device's report, every time).
    if "\\" in text or _FORBIDDEN.search(text):
        check_text(document, what)
    return document


def nesting_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in ``text``, counting brackets outside strings only.

    Linear in the text and never recursive: strings are cut out by one regular expression, then the running sum
    of +1/-1 per bracket is taken in C (itertools.accumulate).
    """
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    if not brackets:
        return 0
    return max(0, max(accumulate(map(_DEPTH_STEP.__getitem__, brackets))))


def check_text(document: Any, what: str = "The request body") -> None:
    """Refuse NUL, other control characters (tab and line breaks excepted) and lone surrogates in any key or
    string value, naming where the first one is."""
    for path, text in _strings(document):
        found = _FORBIDDEN.search(text)
        if found is not None:
            char = found.group()
            kind = "a control character"
            if char == "\x00":
                kind = "a NUL character"
            elif "\ud800" <= char <= "\udfff":
                kind = "an unpaired surrogate"
            where = f" at {path}" if path else ""
            raise UntrustedJSONError(
                f"{what} contains {kind} (U+{ord(char):04X}){where}; text may not contain NUL or control "
                "characters other than tab and line breaks.",
                code="invalid_text",
            )


def _strings(document: Any) -> Iterator[tuple[str, str]]:
    """(path, text) of every key and string value, without recursion (the depth is already bounded)."""
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            yield path, value
        elif isinstance(value, dict):
            for key, item in value.items():
                child = f"{path}.{key}" if path else str(key)
                yield path or "(top level)", key
                stack.append((child, item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(value))


def _decode(data: bytes | str, what: str) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UntrustedJSONError(f"{what} isn't UTF-8 text.", code="invalid_encoding") from None


def _refuse_constant(name: str) -> None:
    raise UntrustedJSONError(
        f"{name} isn't a JSON number; send a finite number or null.", code="invalid_number"
    )


def _finite_float(raw: str) -> float:
    value = float(raw)
    if value in (float("inf"), float("-inf")):
        raise UntrustedJSONError(f"The number {raw[:40]} is too large.", code="invalid_number")
    return value


def _human(size: int) -> str:
    if size >= 1024 * 1024 and size % (1024 * 1024) == 0:
        return f"{size // (1024 * 1024)} MB"
    return f"{size // 1024} KB"
