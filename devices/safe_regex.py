"""Regular expressions for dynamic rules (``-match`` / ``-notMatch``) on a linear-time engine.

Why: a rule is evaluated over every device on the workers, so a backtracking engine lets one pattern such as
``^(.+)+Z$`` stall membership for everyone (issue 12: 4.25 s over 3,000 devices, doubling with every character of
a device name). Patterns run on RE2 (the ``google-re2`` package), whose matching time is linear in the length of
the value whatever the pattern.

The rule language keeps Python's ``re`` syntax and meaning (what the console always accepted). A pattern is first
parsed by Python's own parser (same syntax errors as before), then its syntax tree is written out again in RE2
syntax, so that every construct is either translated to RE2 with Python's meaning or refused with the reason:

=========================================  ==================================================================
Python ``re``                              here
=========================================  ==================================================================
``\\d \\w \\s`` and their negations          Unicode classes, as Python's: ``\\p{Nd}``, ``[\\p{L}\\p{N}_]``,
                                           Python's whitespace set (RE2's own ``\\d \\w \\s`` are ASCII only);
                                           ASCII ones under ``(?a)``
``$`` (no ``(?m)``)                        end of the value or before a newline that ends it, as in Python
``\\Z``                                     end of the value (RE2 spells it ``\\z``)
``{,n}``                                   0 to n repetitions (RE2 would read it literally)
``.``, ``^``, ``(?s)``, ``(?m)``, ``(?i)``  same meaning, written out explicitly
``\\b`` ``\\B``                              kept, but RE2's word boundary knows only ASCII letters, digits and
                                           ``_`` (Python's also knows other scripts): the one difference left
backreferences, lookahead, lookbehind,     refused with the reason: they need backtracking, which is exactly
atomic groups, possessive quantifiers,     what makes evaluation time explode
conditional groups
repetition counts above 1,000              refused (RE2's limit)
patterns too large for RE2's memory bound  refused
=========================================  ==================================================================

Matching ignores case (as the rule language always did) with Unicode case folding.
"""

from __future__ import annotations

import re
from re import _constants as sre  # the stdlib parser's opcodes (stable across 3.11-3.13)
from re import _parser as sre_parse

import re2

__all__ = ["SafePattern", "UnsupportedPattern", "compile_pattern", "to_re2"]

SafePattern = re2._Regexp

MAX_REPEAT = 1000
MAX_MEM = 8 << 20  # bytes of RE2 program memory per pattern

# Python's Unicode classes, as RE2 class members (without the surrounding brackets).
_UNICODE_DIGIT = r"\p{Nd}"
_UNICODE_WORD = r"\p{L}\p{N}_"
_UNICODE_SPACE = r"\t-\r\x{1c}-\x{1f}\x{85}\p{Z}"  # exactly the characters for which str.isspace() holds
_ASCII_DIGIT = "0-9"
_ASCII_WORD = "0-9A-Za-z_"
_ASCII_SPACE = r"\t-\r "

_REFUSED = {
    sre.GROUPREF: "backreferences such as \\1 or (?P=name)",
    sre.GROUPREF_EXISTS: "conditional groups such as (?(1)yes|no)",
    sre.ATOMIC_GROUP: "atomic groups (?>...)",
    sre.POSSESSIVE_REPEAT: "possessive quantifiers such as *+, ++ or ?+",
}


class UnsupportedPattern(ValueError):
    """A valid Python pattern that cannot be evaluated in linear time; the message says which construct."""


def _why(construct: str) -> UnsupportedPattern:
    return UnsupportedPattern(
        f"{construct} are not supported: dynamic rules run on a linear-time regular-expression engine (RE2) "
        "so that no rule can stall membership evaluation"
    )


def _char(code: int) -> str:
    ch = chr(code)
    return ch if ch.isascii() and ch.isalnum() else f"\\x{{{code:x}}}"


class _Writer:
    """Writes a parsed Python pattern out in RE2 syntax, tracking the flags in effect."""

    def __init__(self, flags: int) -> None:
        self.flags = flags

    def flag(self, bit: int) -> bool:
        return bool(self.flags & bit)

    def sequence(self, items) -> str:
        return "".join(self.item(op, av) for op, av in items)

    def item(self, op, av) -> str:
        if op in _REFUSED:
            raise _why(_REFUSED[op])
        if op in (sre.ASSERT, sre.ASSERT_NOT):
            direction, _ = av
            raise _why(
                "lookbehind assertions (?<=...) and (?<!...)"
                if direction < 0
                else "lookahead assertions (?=...) and (?!...)"
            )
        if op is sre.LITERAL:
            return _char(av)
        if op is sre.NOT_LITERAL:
            return f"[^{_char(av)}]"
        if op is sre.ANY:
            return "(?s:.)" if self.flag(re.DOTALL) else "[^\\n]"
        if op is sre.IN:
            return self.char_class(av)
        if op is sre.BRANCH:
            return "(?:" + "|".join(self.sequence(branch) for branch in av[1]) + ")"
        if op is sre.SUBPATTERN:
            return self.group(*av)
        if op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
            return self.repeat(*av, lazy=op is sre.MIN_REPEAT)
        if op is sre.AT:
            return self.anchor(av)
        raise _why(f"the construct {op} is")  # pragma: no cover - Python's parser builds nothing else

    def group(self, _number, add: int, remove: int, items) -> str:
        saved = self.flags
        self.flags = (self.flags | add) & ~remove
        body = self.sequence(items)
        self.flags = saved
        if add & re.IGNORECASE:
            return f"(?i:{body})"
        if remove & re.IGNORECASE:
            return f"(?-i:{body})"
        return f"(?:{body})"

    def repeat(self, low: int, high, items, *, lazy: bool) -> str:
        for count in (low, high):
            if count != sre.MAXREPEAT and count > MAX_REPEAT:
                raise UnsupportedPattern(
                    f"a repetition count of {count} is not supported; at most {MAX_REPEAT} per quantifier"
                )
        if high == sre.MAXREPEAT:
            quantifier = {0: "*", 1: "+"}.get(low, f"{{{low},}}")
        else:
            quantifier = f"{{{low}}}" if low == high else f"{{{low},{high}}}"
        return f"(?:{self.sequence(items)}){quantifier}{'?' if lazy else ''}"

    def anchor(self, at) -> str:
        multiline = self.flag(re.MULTILINE)
        if at is sre.AT_BEGINNING:
            return "(?m:^)" if multiline else "\\A"
        if at is sre.AT_BEGINNING_STRING:
            return "\\A"
        if at is sre.AT_END:
            # Python's $ also matches before a newline that ends the value; RE2's only at the very end.
            return "(?m:$)" if multiline else "(?:\\n?\\z)"
        if at is sre.AT_END_STRING:
            return "\\z"
        if at is sre.AT_BOUNDARY:
            return "\\b"
        if at is sre.AT_NON_BOUNDARY:
            return "\\B"
        raise _why(f"the anchor {at} is")  # pragma: no cover

    def category(self, name) -> tuple[str, bool]:
        """(RE2 class members, negated) for Python's \\d \\D \\w \\W \\s \\S under the flags in effect."""
        ascii_only = self.flag(re.ASCII)
        members = {
            "DIGIT": _ASCII_DIGIT if ascii_only else _UNICODE_DIGIT,
            "WORD": _ASCII_WORD if ascii_only else _UNICODE_WORD,
            "SPACE": _ASCII_SPACE if ascii_only else _UNICODE_SPACE,
        }
        kind = str(name).removeprefix("CATEGORY_")
        negated = kind.startswith("NOT_")
        return members[kind.removeprefix("NOT_")], negated

    def char_class(self, items) -> str:
        """A bracketed class. Python's \\d \\w \\s already hold both cases, so they are written without case
        folding ((?-i:...)); RE2 would otherwise add characters whose fold is a letter (U+0345 for \\w)."""
        negate = bool(items) and items[0][0] is sre.NEGATE
        literals: list[str] = []
        categories: list[str] = []
        complements: list[str] = []  # \D \W \S: not class members in RE2, so an alternative of their own
        for op, av in items[negate:]:
            if op is sre.LITERAL:
                literals.append(_char(av))
            elif op is sre.RANGE:
                literals.append(f"{_char(av[0])}-{_char(av[1])}")
            elif op is sre.CATEGORY:
                body, negated = self.category(av)
                (complements if negated else categories).append(body)
            else:  # pragma: no cover - Python's parser puts nothing else in a class
                raise _why(f"the class member {op} is")
        lits, cats = "".join(literals), "".join(categories)
        if negate:
            if complements:
                raise UnsupportedPattern(
                    "\\D, \\W or \\S inside a negated class [^...] is not supported; "
                    "write the positive class instead (e.g. [^\\W] is \\w)"
                )
            return f"(?-i:[^{cats}])" if cats and not lits else f"[^{lits}{cats}]"
        parts = [f"[{lits}]"] if lits else []
        parts += [f"(?-i:[{cats}])"] if cats else []
        parts += [f"(?-i:[^{body}])" for body in complements]
        return parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"


def to_re2(pattern: str) -> str:
    """The RE2 spelling of a Python ``re`` pattern, matched ignoring case; re.error or UnsupportedPattern."""
    tree = sre_parse.parse(pattern, re.IGNORECASE)
    flags = tree.state.flags
    body = _Writer(flags).sequence(tree)
    return f"(?i){body}" if flags & re.IGNORECASE else body


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False
    options.max_mem = MAX_MEM
    return options


def compile_pattern(pattern: str) -> SafePattern:
    """A compiled RE2 pattern with Python's meaning; re.error (bad syntax) or UnsupportedPattern (the reason)."""
    re.compile(pattern, re.IGNORECASE)  # Python's syntax errors, worded as before
    translated = to_re2(pattern)
    try:
        return re2.compile(translated, _options())
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        if "repetition size" in reason:
            raise UnsupportedPattern(
                f"nested repetitions multiply to more than RE2 allows ({reason}); at most {MAX_REPEAT} in total"
            ) from None
        if "too large" in reason or "too big" in reason:
            raise UnsupportedPattern(
                "the pattern is too large to evaluate safely (RE2's memory bound); simplify its repetitions"
            ) from None
        raise UnsupportedPattern(
            f"the pattern cannot run on the linear-time engine (RE2): {reason}"
        ) from None
