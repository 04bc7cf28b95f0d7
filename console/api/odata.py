"""The OData query options Microsoft's SDKs send: $filter, $select, $top, $skip, $orderby, $count, $expand.

$filter supports eq, ne, gt, ge, lt, le, and, or, not, parentheses, startswith(), endswith(), contains() and
`collection/any(x:x eq 'value')` over the fields an endpoint exposes. Each endpoint passes a FIELDS map from the
Graph property name to a Django lookup (or a callable building a Q for computed properties). Anything else is a
clear 400 naming the position and the problem.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlencode

from django.db.models import Q

from .errors import GraphError

Field = str | Callable[[str, object], Q]

MAX_TOP = 999
MAX_NESTING = 32
DEFAULT_TOP = 100

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>'(?:[^']|'')*')
    | (?P<guid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})
    | (?P<datetime>\d{4}-\d{2}-\d{2}T[0-9:.]+(?:Z|[+-]\d{2}:\d{2})?)
    | (?P<number>-?\d+(?:\.\d+)?)
    | (?P<lparen>\()
    | (?P<rparen>\))
    | (?P<comma>,)
    | (?P<colon>:)
    | (?P<name>[A-Za-z_@][A-Za-z0-9_./@]*)
    )""",
    re.VERBOSE,
)
COMPARE = {"eq": "exact", "ne": "exact", "gt": "gt", "ge": "gte", "lt": "lt", "le": "lte", "has": "has"}
FUNCS = {"startswith": "istartswith", "endswith": "iendswith", "contains": "icontains"}


@dataclass
class _Tok:
    kind: str
    value: object
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    tokens, pos = [], 0
    while pos < len(text):
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos == len(text):
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise GraphError(400, f"Invalid $filter at position {pos}: unexpected {text[pos : pos + 10]!r}.")
        kind = m.lastgroup
        raw = m.group(kind)
        start = m.start(kind)
        if kind == "string":
            value: object = raw[1:-1].replace("''", "'")
        elif kind == "number":
            value = float(raw) if "." in raw else int(raw)
        elif kind == "datetime":
            try:
                value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            except ValueError:
                raise GraphError(
                    400, f"Invalid $filter at position {start}: {raw!r} is not a date."
                ) from None
        else:
            value = raw
        if kind == "name" and raw in ("true", "false", "null"):
            kind, value = "literal", {"true": True, "false": False, "null": None}[raw]
        tokens.append(_Tok(kind, value, start))
        pos = m.end()
    tokens.append(_Tok("end", None, len(text)))
    return tokens


class _FilterParser:
    def __init__(self, text: str, fields: Mapping[str, Field]):
        self.text = text
        self.fields = {k.lower(): (k, v) for k, v in fields.items()}
        self.toks = _tokenize(text)
        self.i = 0
        self.depth = 0

    def error(self, tok: _Tok, problem: str) -> GraphError:
        return GraphError(400, f"Invalid $filter at position {tok.pos}: {problem}.")

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok.kind == "name" and str(tok.value).lower() == word:
            self.i += 1
            return True
        return False

    def expect(self, kind: str, what: str) -> _Tok:
        tok = self.take()
        if tok.kind != kind:
            raise self.error(tok, f"expected {what}")
        return tok

    def parse(self) -> Q:
        q = self.parse_or()
        if self.peek().kind != "end":
            raise self.error(self.peek(), "expected 'and', 'or' or the end of the filter")
        return q

    def parse_or(self) -> Q:
        q = self.parse_and()
        while self.keyword("or"):
            q = q | self.parse_and()
        return q

    def parse_and(self) -> Q:
        q = self.parse_not()
        while self.keyword("and"):
            q = q & self.parse_not()
        return q

    def parse_not(self) -> Q:
        # Nesting (parentheses, not) is bounded so that a hostile filter is a 400, not a RecursionError.
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(self.peek(), f"nested more than {MAX_NESTING} levels deep")
        try:
            if self.keyword("not"):
                return ~self.parse_not()
            return self.parse_primary()
        finally:
            self.depth -= 1

    def field(self, tok: _Tok) -> tuple[str, Field]:
        if tok.kind != "name":
            raise self.error(tok, "expected a property name")
        found = self.fields.get(str(tok.value).lower())
        if found is None:
            names = ", ".join(sorted(k for k, _ in self.fields.values()))
            raise self.error(
                tok, f"property {tok.value!r} cannot be filtered; filterable properties: {names}"
            )
        return found

    def literal(self) -> object:
        tok = self.take()
        if tok.kind not in ("string", "number", "literal", "guid", "datetime"):
            raise self.error(tok, "expected a value ('text', a number, true, false or null)")
        return tok.value

    def build(self, name: str, spec: Field, lookup: str, value: object, negate: bool = False) -> Q:
        if callable(spec):
            q = spec(lookup, value)
        elif lookup == "has":  # a flags enum stored as "a,b": `technologies has 'microsoftSense'`
            if not isinstance(value, str):
                raise GraphError(400, f"Invalid $filter: 'has' needs a quoted flag name for {name!r}.")
            q = Q(**{f"{spec}__icontains": value})
        elif value is None and lookup == "exact":
            q = Q(**{f"{spec}__isnull": True})
        else:
            q = Q(**{f"{spec}__{lookup}": value})
        return ~q if negate else q

    def parse_primary(self) -> Q:
        tok = self.take()
        if tok.kind == "lparen":
            q = self.parse_or()
            self.expect("rparen", "')'")
            return q
        if tok.kind == "name" and str(tok.value).lower() in FUNCS and self.peek().kind == "lparen":
            func = str(tok.value).lower()
            self.take()
            name, spec = self.field(self.take())
            self.expect("comma", "','")
            value = self.literal()
            if not isinstance(value, str):
                raise self.error(tok, f"{func}() needs a quoted text value")
            self.expect("rparen", "')'")
            return self.build(name, spec, FUNCS[func], value)
        if tok.kind == "name" and "/" in str(tok.value) and str(tok.value).lower().endswith(("/any", "/all")):
            path, _, quant = str(tok.value).rpartition("/")
            name, spec = self.field(_Tok("name", path, tok.pos))
            self.expect("lparen", "'('")
            var = self.expect("name", "a lambda variable").value
            self.expect("colon", "':'")
            ref = self.expect("name", f"'{var}'")
            if ref.value != var:
                raise self.error(ref, f"expected the lambda variable {var!r}")
            op = self.take()
            if op.kind != "name" or str(op.value).lower() != "eq":
                raise self.error(op, "only 'eq' is supported inside any()")
            value = self.literal()
            self.expect("rparen", "')'")
            if quant.lower() == "all":
                raise self.error(tok, "all() is not supported; use any()")
            return self.build(name, spec, "any", value)
        name, spec = self.field(tok)
        op = self.take()
        if op.kind != "name" or str(op.value).lower() not in COMPARE:
            raise self.error(op, "expected an operator: eq, ne, gt, ge, lt, le or has")
        value = self.literal()
        word = str(op.value).lower()
        return self.build(name, spec, COMPARE[word], value, negate=word == "ne")


def parse_filter(text: str, fields: Mapping[str, Field]) -> Q:
    if len(text) > 4000:
        raise GraphError(400, "$filter is too long (4,000 characters at most).")
    return _FilterParser(text, fields).parse()


@dataclass
class ODataQuery:
    filter: Q = field(default_factory=Q)
    select: list[str] | None = None
    expand: set[str] = field(default_factory=set)
    orderby: list[str] = field(default_factory=list)
    top: int = DEFAULT_TOP
    skip: int = 0
    count: bool = False


def _int_option(params, name: str, default: int, maximum: int) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    if not str(raw).isdigit():
        raise GraphError(400, f"{name} must be a whole number, not {raw!r}.")
    value = int(raw)
    if value > maximum:
        raise GraphError(400, f"{name} must be at most {maximum}.")
    return value


def parse_query(
    params,
    *,
    fields: Mapping[str, Field],
    orderable: Mapping[str, str],
    expandable: set[str] = frozenset(),
    selectable: set[str] | None = None,
) -> ODataQuery:
    known = {"$filter", "$select", "$expand", "$orderby", "$top", "$skip", "$count", "$search", "$skiptoken"}
    for key in params:
        if key.startswith("$") and key not in known:
            raise GraphError(400, f"Query option {key!r} is not supported.")
    for key in known:
        if len(params.getlist(key) if hasattr(params, "getlist") else ()) > 1:
            # As Graph answers it (the last value silently winning would hide a client's mistake).
            raise GraphError(
                400,
                f"Query option '{key}' was specified more than once, but it must be specified at most once.",
            )
        if key in params and not str(params.get(key, "")).strip():
            raise GraphError(400, f"Query option {key} has no value.")
    q = ODataQuery()
    if params.get("$filter"):
        q.filter = parse_filter(params["$filter"], fields)
    if params.get("$select"):
        q.select = [s.strip() for s in params["$select"].split(",") if s.strip()]
        if selectable is not None:
            bad = [s for s in q.select if s not in selectable]
            if bad:
                raise GraphError(400, f"Could not find a property named {bad[0]!r} to $select.")
    if params.get("$expand"):
        q.expand = {e.strip().split("(")[0] for e in params["$expand"].split(",") if e.strip()}
        bad = q.expand - set(expandable)
        if bad:
            raise GraphError(
                400, f"Could not find a navigation property named {sorted(bad)[0]!r} to $expand."
            )
    if params.get("$orderby"):
        for part in params["$orderby"].split(","):
            bits = part.strip().split()
            if not bits or len(bits) > 2 or (len(bits) == 2 and bits[1].lower() not in ("asc", "desc")):
                raise GraphError(400, f"Invalid $orderby clause {part.strip()!r}.")
            column = orderable.get(bits[0])
            if column is None:
                raise GraphError(400, f"Property {bits[0]!r} cannot be used in $orderby.")
            q.orderby.append(("-" if len(bits) == 2 and bits[1].lower() == "desc" else "") + column)
    q.top = _int_option(params, "$top", DEFAULT_TOP, MAX_TOP) or DEFAULT_TOP
    skiptoken, skip = _int_option(params, "$skiptoken", 0, 10**9), _int_option(params, "$skip", 0, 10**9)
    q.skip = skiptoken or skip
    count = str(params.get("$count", "")).lower()
    if count not in ("true", "false") and "$count" in params:
        raise GraphError(400, "$count must be true or false.")
    q.count = count == "true"
    return q


def next_link(request, query: ODataQuery, returned: int, total_known: int | None = None) -> str | None:
    """An absolute URL for the next page (the SDK's PageIterator GETs it verbatim)."""
    if returned < query.top:
        return None
    if total_known is not None and query.skip + returned >= total_known:
        return None
    params = {k: v for k, v in request.GET.items() if k not in ("$skip", "$skiptoken")}
    params["$skiptoken"] = str(query.skip + returned)
    return request.build_absolute_uri(request.path) + "?" + urlencode(params)


def apply_select(obj: dict, select: list[str] | None) -> dict:
    if not select:
        return obj
    keep = set(select) | {"id", "@odata.type"}
    return {k: v for k, v in obj.items() if k in keep}
