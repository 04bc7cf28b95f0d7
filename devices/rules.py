"""Parser and evaluator for Microsoft Entra dynamic device-membership rules.

No Django, no ``eval``: a tokenizer that records character positions feeds a hand-written
recursive-descent parser, which builds a small immutable syntax tree that :meth:`Rule.matches` walks.

Grammar (Entra's, restricted to device properties)::

    rule        := or_expr END
    or_expr     := and_expr ( OR and_expr )*
    and_expr    := not_expr ( AND not_expr )*
    not_expr    := NOT not_expr | primary
    primary     := "(" or_expr ")" | comparison
    comparison  := "device." PROPERTY OPERATOR value
                 | "device." MULTI_VALUED_PROPERTY ( "-any" | "-all" ) element
    element     := "(" or_expr ")"            -- where every comparison has "_" as its left side
                 | "_" OPERATOR value
    value       := STRING | "true" | "false" | "null" | "[" STRING ( "," STRING )* "]"

Decisions taken from the Entra documentation ("Manage rules for dynamic membership groups"):

* Operators and logical operators are case-insensitive and may be written with or without the leading
  hyphen (``-and`` / ``and``, ``-eq`` / ``eq``).  The en dash that the documentation's own examples use
  (``–and``) is accepted as a hyphen.
* Precedence, highest first: comparison operators, ``-not``, ``-and``, ``-or``.  ``-any``/``-all`` take a
  single ``_ <operator> <value>`` or a parenthesised expression over ``_``.
* Strings are double-quoted; a double quote inside one is escaped with a backtick (`"), as Entra
  documents, and a doubled backtick is a literal backtick.  Single-quoted strings (Entra uses them in
  ``['value']`` lists) are accepted too; a single quote inside one is written twice (``''``).  A backslash is
  an ordinary character so regular expressions such as ``"^\\d+$"`` need no doubling.
* Unquoted values are only ``true``, ``false`` (boolean properties) and ``null`` (with ``-eq``/``-ne``).
* String comparisons and ``-match`` ignore case; ``-match`` is a regular-expression *search* in Python's ``re``
  syntax and meaning, evaluated in linear time by RE2 (see ``devices.safe_regex``): a pattern that needs
  backtracking (backreferences, lookaround, ...) is refused with the reason, like any other syntax error.
* A rule may be at most 3072 characters long.

Evaluation semantics:

* A property missing from the device mapping is null.
* Every negative operator is exactly the negation of its positive twin (``-ne`` of ``-eq``,
  ``-notContains`` of ``-contains``, ...), so ``-ne "x"`` is true for a null property.
* Multi-valued properties (``systemLabels``, ``devicePhysicalIds``) compared directly hold when *some*
  element satisfies the positive operator (``device.systemLabels -contains "MDEJoined"``); the negative
  operators hold when *no* element does.  ``-eq null`` holds for a missing or empty collection.
  ``-any`` / ``-all`` apply the element expression to every element (``-all`` is true for an empty
  collection).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .safe_regex import SafePattern, UnsupportedPattern, compile_pattern

__all__ = [
    "DEVICE_PROPERTIES",
    "FILTER_PROPERTIES",
    "FILTER_UNSUPPORTED",
    "MAX_FILTER_RULE_LENGTH",
    "MAX_RULE_LENGTH",
    "FilterRule",
    "Rule",
    "RuleSyntaxError",
    "parse_filter_rule",
    "parse_rule",
    "properties_used",
]

MAX_RULE_LENGTH = 3072
_MAX_DEPTH = 64

_STRING = "string"
_BOOLEAN = "boolean"
_MULTI = "multi"

#: Supported device properties (Entra spelling, also the key in the device mapping) -> kind.
DEVICE_PROPERTIES: dict[str, str] = {
    "accountEnabled": _BOOLEAN,
    "displayName": _STRING,
    "deviceId": _STRING,
    "deviceOSType": _STRING,
    "deviceOSVersion": _STRING,
    "deviceOwnership": _STRING,
    "deviceTrustType": _STRING,
    "enrollmentProfileName": _STRING,
    "isRooted": _BOOLEAN,
    "managementType": _STRING,
    "mdmAppId": _STRING,
    "objectId": _STRING,
    "profileType": _STRING,
    "systemLabels": _MULTI,
    "devicePhysicalIds": _MULTI,
    **{f"extensionAttribute{n}": _STRING for n in range(1, 16)},
    "deviceManufacturer": _STRING,
    "deviceModel": _STRING,
    "deviceCategory": _STRING,
}

# Entra documents the MDM application id as ``device.deviceManagementAppId``; it reads ``mdmAppId``.
_ALIASES = {"devicemanagementappid": "mdmAppId"}
_PROPERTY_LOOKUP = {name.lower(): name for name in DEVICE_PROPERTIES} | _ALIASES

# Operator (lower case, no hyphen) -> canonical spelling.
_OPERATORS = {
    name.lower(): name
    for name in (
        "eq",
        "ne",
        "startsWith",
        "notStartsWith",
        "endsWith",
        "notEndsWith",
        "contains",
        "notContains",
        "in",
        "notIn",
        "match",
        "notMatch",
    )
}
# Negative operator -> the positive operator it negates.
_NEGATIONS = {
    "ne": "eq",
    "notstartswith": "startswith",
    "notendswith": "endswith",
    "notcontains": "contains",
    "notin": "in",
    "notmatch": "match",
}
_LIST_OPERATORS = frozenset({"in", "notin"})
_REGEX_OPERATORS = frozenset({"match", "notmatch"})
_NULL_OPERATORS = frozenset({"eq", "ne"})
_QUANTIFIERS = {"any": "-any", "all": "-all"}
_LOGICAL = frozenset({"and", "or", "not"})

_HYPHENS = "-\u2013"
_WORD_RE = re.compile(r"[A-Za-z0-9_.$]+")
_OPERATOR_NAME_RE = re.compile(r"[A-Za-z]+")


class RuleSyntaxError(ValueError):
    """A rule that Entra would reject; ``position`` is the 0-based offset of the offending token."""

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(f"Position {position}: {reason}")
        self.position = position
        self.reason = reason

    def __reduce__(self):  # keep the exception picklable despite the two-argument constructor
        return (type(self), (self.position, self.reason))

    @property
    def column(self) -> int:
        """The 1-based column a person reads in an editor."""
        return self.position + 1


# ------------------------------------------------------------------------------------------------ dialects


@dataclass(frozen=True)
class _Dialect:
    """What differs between Entra's dynamic membership rules and Intune's assignment filter rules."""

    properties: Mapping[str, str]  # canonical name -> kind
    lookup: Mapping[str, str]  # lower-case spelling -> canonical name
    operators: frozenset[str]  # lower case, no hyphen
    unsupported: Mapping[str, str] = field(default_factory=dict)  # lower-case name -> why it can't be used
    example: str = "device.deviceOSType"
    product: str = "Entra"
    max_length: int = MAX_RULE_LENGTH


_ENTRA = _Dialect(DEVICE_PROPERTIES, _PROPERTY_LOOKUP, frozenset(_OPERATORS))

#: Intune assignment filter properties ("Filter device properties") that the simulated device has, -> kind.
#: Intune's spelling is the key of ``Device.filter_properties()``.
FILTER_PROPERTIES: dict[str, str] = {
    "deviceName": _STRING,
    "osVersion": _STRING,
    "deviceTrustType": _STRING,  # "Azure AD joined" | "Azure AD registered" | "Hybrid Azure AD joined" | "Unknown"
    "operatingSystemSKU": _STRING,  # "Enterprise", "Professional", "ServerRdsh", ... (Windows 10/11 clients)
}
_NOT_SIMULATED = (
    "isn't recorded for the simulated devices of this console, so a filter can't use it; supported: "
    + ", ".join(f"device.{name}" for name in FILTER_PROPERTIES)
)
#: Intune filter properties the simulated devices don't have: refused with the reason (never silently null).
FILTER_UNSUPPORTED: dict[str, str] = {
    name.lower(): f"device.{name} {_NOT_SIMULATED}"
    for name in (
        "manufacturer",
        "model",
        "deviceCategory",
        "deviceOwnership",
        "enrollmentProfileName",
        "cpuArchitecture",
        "operatingSystemVersion",
        "isRooted",
    )
}
MAX_FILTER_RULE_LENGTH = 3072
_INTUNE_FILTER = _Dialect(
    FILTER_PROPERTIES,
    {name.lower(): name for name in FILTER_PROPERTIES},
    frozenset(
        {"eq", "ne", "startswith", "endswith", "contains", "notcontains", "in", "notin", "match", "notmatch"}
    ),
    FILTER_UNSUPPORTED,
    example="device.deviceName",
    product="Intune",
    max_length=MAX_FILTER_RULE_LENGTH,
)


# --------------------------------------------------------------------------------------------- tokens


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "(" ")" "[" "]" "," "string" "op" "word" "end" "error"
    pos: int
    end: int
    value: str = ""  # string contents, operator/word text (op without hyphen), or error reason


def _tokenize(text: str) -> list[_Token]:
    """Split ``text`` into tokens. A lexical error becomes a final ``error`` token, so that the parser
    reports whichever problem comes first in the text."""
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "()[],":
            tokens.append(_Token(ch, i, i + 1))
            i += 1
        elif ch in "\"'":
            token = _read_string(text, i)
            tokens.append(token)
            if token.kind == "error":
                return tokens
            i = token.end
        elif ch in _HYPHENS:
            m = _OPERATOR_NAME_RE.match(text, i + 1)
            if m is None:
                tokens.append(_Token("error", i, i + 1, f"expected an operator name after {ch!r}"))
                return tokens
            tokens.append(_Token("op", i, m.end(), m.group()))
            i = m.end()
        elif m := _WORD_RE.match(text, i):
            tokens.append(_Token("word", i, m.end(), m.group()))
            i = m.end()
        else:
            tokens.append(_Token("error", i, i + 1, f"unexpected character {ch!r}"))
            return tokens
    tokens.append(_Token("end", n, n))
    return tokens


def _read_string(text: str, start: int) -> _Token:
    quote = text[start]
    chars: list[str] = []
    i, n = start + 1, len(text)
    while i < n:
        ch = text[i]
        if quote == '"' and ch == "`" and i + 1 < n and text[i + 1] in '"`':
            chars.append(text[i + 1])
            i += 2
        elif ch == quote:
            if quote == "'" and i + 1 < n and text[i + 1] == "'":
                chars.append("'")
                i += 2
                continue
            return _Token("string", start, i + 1, "".join(chars))
        else:
            chars.append(ch)
            i += 1
    return _Token("error", start, n, f"unterminated string: missing the closing {quote}")


# ------------------------------------------------------------------------------------------ syntax tree


@dataclass(frozen=True, slots=True)
class _Compare:
    prop: str | None  # canonical property name; None for the "_" element of -any/-all
    kind: str  # _STRING / _BOOLEAN / _MULTI, or _STRING for "_"
    op: str  # lower case, no hyphen
    value: object  # str, bool, None, or tuple[str, ...] for -in/-notIn (all casefolded)
    pattern: SafePattern | None = None  # -match/-notMatch, compiled for RE2 (devices.safe_regex)


@dataclass(frozen=True, slots=True)
class _Quantified:
    prop: str
    quantifier: str  # "any" | "all"
    predicate: _Node


@dataclass(frozen=True, slots=True)
class _Not:
    child: _Node


@dataclass(frozen=True, slots=True)
class _And:
    children: tuple[_Node, ...]


@dataclass(frozen=True, slots=True)
class _Or:
    children: tuple[_Node, ...]


_Node = _Compare | _Quantified | _Not | _And | _Or


# ---------------------------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str, dialect: _Dialect) -> None:
        self.dialect = dialect
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0
        self.depth = 0

    # token helpers --------------------------------------------------------------------------------
    def peek(self) -> _Token:
        token = self.tokens[self.index]
        if token.kind == "error":
            raise RuleSyntaxError(token.pos, token.value)
        return token

    def advance(self) -> _Token:
        token = self.peek()
        if token.kind != "end":
            self.index += 1
        return token

    def describe(self, token: _Token) -> str:
        if token.kind == "end":
            return "the end of the rule"
        source = self.text[token.pos : token.end]
        if len(source) > 30:
            source = source[:27] + "..."
        return repr(source)

    def fail(self, token: _Token, reason: str) -> RuleSyntaxError:
        return RuleSyntaxError(token.pos, reason)

    @staticmethod
    def keyword(token: _Token) -> str | None:
        """``and``/``or``/``not`` for a logical operator token (with or without hyphen)."""
        if token.kind in ("op", "word") and token.value.lower() in _LOGICAL:
            return token.value.lower()
        return None

    def enter(self, token: _Token) -> None:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise self.fail(token, f"the rule is nested more than {_MAX_DEPTH} levels deep")

    # grammar --------------------------------------------------------------------------------------
    def parse(self) -> _Node:
        node = self.or_expr(element=False)
        token = self.peek()
        if token.kind == ")":
            raise self.fail(token, "unbalanced parentheses: ')' has no matching '('")
        if token.kind != "end":
            raise self.fail(token, f"expected -and, -or or the end of the rule, found {self.describe(token)}")
        return node

    def or_expr(self, element: bool) -> _Node:
        children = [self.and_expr(element)]
        while self.keyword(self.peek()) == "or":
            self.advance()
            children.append(self.and_expr(element))
        return children[0] if len(children) == 1 else _Or(tuple(children))

    def and_expr(self, element: bool) -> _Node:
        children = [self.not_expr(element)]
        while self.keyword(self.peek()) == "and":
            self.advance()
            children.append(self.not_expr(element))
        return children[0] if len(children) == 1 else _And(tuple(children))

    def not_expr(self, element: bool) -> _Node:
        token = self.peek()
        if self.keyword(token) == "not":
            self.advance()
            self.enter(token)
            child = self.not_expr(element)
            self.depth -= 1
            return _Not(child)
        return self.primary(element)

    def primary(self, element: bool) -> _Node:
        token = self.peek()
        if token.kind == "(":
            self.advance()
            self.enter(token)
            node = self.or_expr(element)
            self.close(token)
            self.depth -= 1
            return node
        return self.comparison(element)

    def close(self, opening: _Token) -> None:
        token = self.peek()
        if token.kind == ")":
            self.advance()
            return
        if token.kind == "end":
            raise self.fail(
                token, f"unbalanced parentheses: missing ')' to close the '(' at position {opening.pos}"
            )
        raise self.fail(token, f"expected ')', -and or -or, found {self.describe(token)}")

    def comparison(self, element: bool) -> _Node:
        token = self.advance()
        if element:
            if not (token.kind == "word" and token.value == "_"):
                raise self.fail(token, f"expected _ inside -any/-all, found {self.describe(token)}")
            return self.finish_comparison(None, _STRING, "_")
        prop, kind = self.property(token)
        return self.finish_comparison(prop, kind, f"device.{prop}")

    def property(self, token: _Token) -> tuple[str, str]:
        if token.kind == "word" and token.value == "_":
            raise self.fail(token, "_ can only be used inside -any or -all")
        dialect = self.dialect
        if token.kind != "word" or "." not in token.value or self.keyword(token):
            raise self.fail(
                token, f"expected a device property such as {dialect.example}, found {self.describe(token)}"
            )
        prefix, _, name = token.value.partition(".")
        if prefix.lower() != "device":
            raise self.fail(token, f"only device properties can be used, found {self.describe(token)}")
        canonical = dialect.lookup.get(name.lower())
        if canonical is None:
            why = dialect.unsupported.get(name.lower())
            if why:
                raise self.fail(token, why)
            reason = f"unknown device property {name!r}"
            close = difflib.get_close_matches(name.lower(), list(dialect.lookup), n=1)
            if close:
                reason += f"; did you mean {dialect.lookup[close[0]]!r}?"
            raise self.fail(token, reason)
        return canonical, dialect.properties[canonical]

    def finish_comparison(self, prop: str | None, kind: str, subject: str) -> _Node:
        token = self.advance()
        name = token.value.lower() if token.kind in ("op", "word") else ""
        if name in _QUANTIFIERS and prop is not None:
            if kind != _MULTI:
                multi = ", ".join(p for p, k in self.dialect.properties.items() if k == _MULTI)
                if not multi:
                    raise self.fail(token, f"{_QUANTIFIERS[name]} isn't available in this rule syntax")
                raise self.fail(
                    token, f"{_QUANTIFIERS[name]} can only be used with multi-valued properties ({multi})"
                )
            return _Quantified(prop, name, self.element_predicate(token))
        if name in _QUANTIFIERS:
            raise self.fail(token, f"{_QUANTIFIERS[name]} cannot be used inside -any/-all")
        if name not in _OPERATORS or name not in self.dialect.operators:
            if token.kind == "op":
                raise self.fail(token, f"unknown operator {self.text[token.pos : token.end]!r}")
            raise self.fail(
                token, f"expected an operator such as -eq after {subject}, found {self.describe(token)}"
            )
        spelled = f"-{_OPERATORS[name]}"
        if kind == _BOOLEAN and name not in _NULL_OPERATORS:
            raise self.fail(
                token, f"{spelled} cannot be used with the boolean property {prop}; use -eq or -ne"
            )
        value, pattern = self.value(name, spelled, kind)
        return _Compare(prop, kind, name, value, pattern)

    def element_predicate(self, quantifier: _Token) -> _Node:
        token = self.peek()
        if token.kind == "(":
            self.advance()
            self.enter(token)
            node = self.or_expr(element=True)
            self.close(token)
            self.depth -= 1
            return node
        if token.kind == "word" and token.value == "_":
            return self.comparison(element=True)
        spelled = _QUANTIFIERS[quantifier.value.lower()]
        raise self.fail(
            token, f"expected (_ <operator> <value>) after {spelled}, found {self.describe(token)}"
        )

    def value(self, op: str, spelled: str, kind: str) -> tuple[object, SafePattern | None]:
        token = self.advance()
        if op in _LIST_OPERATORS:
            return self.string_list(token, spelled), None
        word = token.value.lower() if token.kind == "word" else None
        if word == "$null":  # Intune's filters write null as $null too
            word = "null"
        if word == "null":
            if op not in _NULL_OPERATORS:
                raise self.fail(token, f"null can only be compared with -eq or -ne, not {spelled}")
            return None, None
        if kind == _BOOLEAN:
            literal = word if word is not None else token.value.lower() if token.kind == "string" else None
            if literal not in ("true", "false"):
                raise self.fail(token, f"expected true, false or null after {spelled}")
            return literal == "true", None
        if token.kind != "string":
            raise self.fail(token, f"expected a quoted value after {spelled}")
        if op in _REGEX_OPERATORS:
            try:
                pattern = compile_pattern(token.value)
            except UnsupportedPattern as exc:
                raise self.fail(token, f"unsupported regular expression: {exc}") from None
            except (re.error, OverflowError, RecursionError, ValueError) as exc:
                raise self.fail(token, f"invalid regular expression: {exc}") from None
            return token.value, pattern
        return token.value.casefold(), None

    def string_list(self, token: _Token, spelled: str) -> tuple[str, ...]:
        if token.kind != "[":
            raise self.fail(token, f'expected a bracketed list such as ["a","b"] after {spelled}')
        items: list[str] = []
        while True:
            item = self.advance()
            if item.kind == "]" and not items:
                raise self.fail(item, f"the list after {spelled} is empty")
            if item.kind != "string":
                raise self.fail(item, f"expected a quoted value in the list after {spelled}")
            items.append(item.value.casefold())
            separator = self.advance()
            if separator.kind == "]":
                return tuple(items)
            if separator.kind != ",":
                raise self.fail(separator, f"expected ',' or ']' in the list after {spelled}")


# ------------------------------------------------------------------------------------------ evaluation


def _as_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _as_bool(value: object) -> bool | None:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if isinstance(value, int):
        return bool(value)
    return None


def _as_list(value: object) -> list[str | None]:
    if value is None:
        return []
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        return [_as_text(value)]
    return [_as_text(item) for item in value]


def _test_text(node: _Compare, op: str, actual: str | None) -> bool:
    """Positive operator ``op`` on one (possibly null) string value."""
    expected = node.value
    if expected is None:  # only -eq null reaches here
        return actual is None
    if actual is None:
        return False
    if node.pattern is not None:
        return node.pattern.search(actual) is not None
    folded = actual.casefold()
    if isinstance(expected, tuple):
        return folded in expected
    assert isinstance(expected, str), expected
    if op == "eq":
        return folded == expected
    if op == "startswith":
        return folded.startswith(expected)
    if op == "endswith":
        return folded.endswith(expected)
    if op == "contains":
        return expected in folded
    raise AssertionError(op)  # pragma: no cover - the parser only builds known operators


def _compare(node: _Compare, actual: object) -> bool:
    negated = node.op in _NEGATIONS
    op = _NEGATIONS.get(node.op, node.op)
    if node.kind == _BOOLEAN:
        result = _as_bool(actual) is node.value
    elif node.kind == _MULTI:
        items = _as_list(actual)
        result = not items if node.value is None else any(_test_text(node, op, item) for item in items)
    else:
        result = _test_text(node, op, _as_text(actual))
    return result != negated


def _evaluate(node: _Node, device: Mapping[str, object], element: str | None = None) -> bool:
    if isinstance(node, _Compare):
        actual = element if node.prop is None else device.get(node.prop)
        return _compare(node, actual)
    if isinstance(node, _And):
        return all(_evaluate(child, device, element) for child in node.children)
    if isinstance(node, _Or):
        return any(_evaluate(child, device, element) for child in node.children)
    if isinstance(node, _Not):
        return not _evaluate(node.child, device, element)
    items = _as_list(device.get(node.prop))
    check = any if node.quantifier == "any" else all
    return check(_evaluate(node.predicate, device, item) for item in items)


def _collect_properties(node: _Node, found: set[str]) -> None:
    if isinstance(node, _Compare):
        if node.prop is not None:
            found.add(node.prop)
    elif isinstance(node, _Quantified):
        found.add(node.prop)
    elif isinstance(node, _Not):
        _collect_properties(node.child, found)
    else:
        for child in node.children:
            _collect_properties(child, found)


# ---------------------------------------------------------------------------------------------- public


def _parse(text: str, dialect: _Dialect | None = None) -> _Node:
    dialect = dialect or _ENTRA
    if not isinstance(text, str):
        raise TypeError(f"a rule must be a str, not {type(text).__name__}")
    if len(text) > dialect.max_length:
        raise RuleSyntaxError(
            dialect.max_length,
            f"the rule is {len(text)} characters long; {dialect.product} allows at most {dialect.max_length}",
        )
    if not text.strip():
        raise RuleSyntaxError(0, "the rule is empty")
    return _Parser(text, dialect).parse()


@dataclass(frozen=True)
class Rule:
    """A parsed dynamic device-membership rule. Constructing one parses ``text`` (RuleSyntaxError)."""

    text: str
    _tree: _Node = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tree", _parse(self.text))

    def matches(self, device: Mapping[str, object]) -> bool:
        """Whether ``device`` (keyed by Entra property names; missing = null) satisfies the rule."""
        return _evaluate(self._tree, device)


@dataclass(frozen=True)
class FilterRule:
    """A parsed Intune assignment filter rule (RuleSyntaxError on construction). ``matches`` takes the mapping of
    :data:`FILTER_PROPERTIES` names (``Device.filter_properties()``)."""

    text: str
    _tree: _Node = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tree", _parse(self.text, _INTUNE_FILTER))

    def matches(self, device: Mapping[str, object]) -> bool:
        return _evaluate(self._tree, device)


def parse_filter_rule(text: str) -> FilterRule:
    """Parse an Intune assignment filter rule; raises :class:`RuleSyntaxError` (``column`` points at the fault)."""
    return FilterRule(text)


def parse_rule(text: str) -> Rule:
    """Parse an Entra dynamic device-membership rule; raises :class:`RuleSyntaxError`."""
    return Rule(text)


def properties_used(rule: Rule | FilterRule) -> set[str]:
    """The canonical names of the device properties that ``rule`` reads."""
    found: set[str] = set()
    _collect_properties(rule._tree, found)
    return found
