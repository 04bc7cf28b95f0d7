"""Names and free text a person or a client types: no control characters, no bidi overrides.

A name is shown in lists, breadcrumbs, audit logs, CSV exports and terminals. Control characters (ESC starts a
terminal escape sequence, backspace and carriage return overwrite what was printed before) and the Unicode
bidirectional overrides and isolates (U+202A-U+202E, U+2066-U+2069: "Trojan Source" - text that reads
differently from what it is) have no place in one. Free text (descriptions) may hold line breaks and tabs.

One rule for every way in: the forms, the API (which uses the same forms and services) and import call
``check_name`` / ``check_free_text``; the data migration console/0003 cleans older rows with ``strip_unsafe``.
"""

from __future__ import annotations

import re
import unicodedata

from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible

# C0 controls, DEL and C1 controls; free text keeps tab and line feed, and CR only as part of CRLF (a textarea).
_NAME_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_TEXT_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]|\r(?!\n)")
# Bidirectional embeddings, overrides, isolates and marks.
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _describe(char: str) -> str:
    name = unicodedata.name(char, "") or {
        "\x1b": "ESCAPE",
        "\x08": "BACKSPACE",
        "\r": "CARRIAGE RETURN",
        "\n": "LINE FEED",
        "\t": "TAB",
        "\x00": "NUL",
    }.get(char, "control character")
    return f"U+{ord(char):04X} {name}".rstrip()


def unsafe_character(value: str, *, multiline: bool = False) -> str | None:
    """A description of the first character ``value`` may not contain, or None when it is clean."""
    controls = _TEXT_CONTROLS if multiline else _NAME_CONTROLS
    found = controls.search(value) or _BIDI.search(value)
    return _describe(found.group()[0]) if found else None


def problem(value: object, label: str = "The name", *, multiline: bool = False) -> str | None:
    """The message for a person, or None: says which character and why, so it can be fixed."""
    if not isinstance(value, str):
        return None
    char = unsafe_character(value, multiline=multiline)
    if char is None:
        return None
    allowed = " (line breaks and tabs are fine)" if multiline else ""
    return (
        f"{label} contains {char}. Control characters and right-to-left override characters are not "
        f"allowed{allowed}: they would change how the text shows in lists, exports and the audit log."
    )


@deconstructible
class PlainTextValidator:
    """Form-field validator: ``validators=[NAME]`` for names, ``[FREE_TEXT]`` for descriptions."""

    def __init__(self, label: str = "The name", multiline: bool = False) -> None:
        self.label = label
        self.multiline = multiline

    def __call__(self, value: object) -> None:
        message = problem(value, self.label, multiline=self.multiline)
        if message:
            raise ValidationError(message, code="unsafe_characters")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlainTextValidator) and (self.label, self.multiline) == (
            other.label,
            other.multiline,
        )


validate_name = PlainTextValidator("The name")
validate_description = PlainTextValidator("The description", multiline=True)


def strip_unsafe(value: str, *, multiline: bool = False) -> str:
    """``value`` without the characters the validators refuse (CR alone becomes a line break in free text)."""
    if multiline:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
        return _BIDI.sub("", _TEXT_CONTROLS.sub("", value))
    return " ".join(_BIDI.sub("", _NAME_CONTROLS.sub(" ", value)).split())
