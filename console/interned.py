"""Columns whose values are stored once: the row holds a 64-bit key, the text lives in ``console.StoredText``.

The status tables repeat a few hundred distinct texts tens of millions of times: a setting status row carried
its setting key (67 bytes on average: ``device_vendor_msft_policy_config_defender_…``) and its value as JSONB
(52 bytes on average; a firewall rule list is a kilobyte), an effective-settings row its setting key. Stored as
the key of the text, each is 8 bytes. The key is a pure function of the text (the first 64 bits of its MD5,
``text_key``, which the status messages' keys have always been), so

- a filter needs no lookup: ``setting_key="…"`` and ``setting_key__in=[…]`` compare keys, and two interned
  columns compare with each other (``OuterRef("setting_key")``) as the texts would;
- a key read from the database is turned back into its text from a per-process cache that can never be stale
  (a key always stands for the same text), filled from ``StoredText`` on a miss;
- writing a row stores its texts first (``INSERT … ON CONFLICT DO NOTHING``, in the writer's transaction: a
  rolled-back write leaves nothing behind, and the next writer stores them again), and a text whose key already
  stands for another raises instead of reading back as the wrong text.

What a key cannot do is sort or match by text: ``order_by`` the relation ``<column>_text__text`` for the text's
order, and the text lookups (``icontains``, ``startswith``, …) are answered by finding the matching texts first
(``key IN (SELECT key FROM stored texts WHERE text …)``).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import json
import threading
from typing import Any

from django.apps import apps
from django.db import models
from django.db.models.lookups import In, Lookup

# key -> text, for every key read or written by this process (always true: the key is derived from the text).
_TEXTS: dict[int, str] = {}
_CACHE_LIMIT = 200_000


@functools.lru_cache(maxsize=65536)
def text_key(text: str | None) -> int | None:
    """A text's key: the first 8 bytes of its MD5, as a signed 64-bit integer (None for no text or "").

    A pure function of the text, so a stored row is compared by key without reading any text, and a cached key
    can never point at another text, even after a rolled-back transaction. PostgreSQL computes the same value
    as ``('x' || left(md5(text), 16))::bit(64)::bigint`` (migrations reports 0007 and 0009).
    """
    if not text:
        return None
    return int.from_bytes(hashlib.md5(text.encode()).digest()[:8], "big", signed=True)


def _stored_text_model():
    return apps.get_model("console", "StoredText")


def texts_of(keys) -> dict[int, str]:
    """key -> text for these keys: from the cache, the rest in one query."""
    wanted = {k for k in keys if k is not None}
    missing = [k for k in wanted if k not in _TEXTS]
    if missing:
        found = dict(_stored_text_model().objects.filter(key__in=missing).values_list("key", "text"))
        lost = set(missing) - set(found)
        if lost:
            raise LookupError(
                f"No stored text for key(s) {sorted(lost)[:5]}: a row was written without its text"
            )
        if len(_TEXTS) < _CACHE_LIMIT:
            _TEXTS.update(found)
        else:
            return {k: _TEXTS.get(k) or found[k] for k in wanted}
    return {k: _TEXTS[k] for k in wanted}


def store_texts(texts) -> dict[str, int]:
    """Make sure each text has its StoredText row, in the current transaction; text -> key.

    One INSERT … ON CONFLICT DO NOTHING and one SELECT (``StoredTextManager.intern``, which raises on a key that
    stands for another text). No "already stored" cache: a table restored or emptied under a running worker
    (a backup, a benchmark's TRUNCATE, a test's flush) must never leave rows pointing at no text."""
    keys = _stored_text_model().objects.intern(text for text in texts if text is not None)
    if len(_TEXTS) < _CACHE_LIMIT:
        _TEXTS.update({key: text for text, key in keys.items()})
    return keys


_PRESTORED = threading.local()


@contextlib.contextmanager
def stored_first(texts):
    """Store these texts now (one INSERT, one SELECT) and let the rows saved inside the block skip storing each of
    them again (a field otherwise stores its text on every save: two statements a row). Use it inside the
    writer's transaction, so that the texts and the rows commit or roll back together."""
    keys = frozenset(store_texts(texts).values())
    outer = getattr(_PRESTORED, "keys", frozenset())
    _PRESTORED.keys = outer | keys
    try:
        yield
    finally:
        _PRESTORED.keys = outer


class InternedTextField(models.BigIntegerField):
    """A text column stored as its key (see the module). Python sees the text."""

    description = "Text stored once (the column holds the key of the text)"

    def __init__(self, *args, empty_text: str | None = None, **kwargs):
        """``empty_text``: what Python reads for SQL NULL. A text column whose "no text" is "" (a device's
        enrollment message) keeps reading "" although the key of "" is NULL."""
        self.empty_text = empty_text
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        if self.empty_text is not None:
            kwargs["empty_text"] = self.empty_text
        return name, path, args, kwargs

    def encode(self, value: Any) -> str:
        return str(value)

    def decode(self, text: str) -> Any:
        return text

    def key_of(self, value: Any) -> int | None:
        return None if value is None else text_key(self.encode(value))

    # Python -> database
    def get_prep_value(self, value):
        if value is None or hasattr(value, "resolve_expression"):
            return value
        return self.key_of(value)

    def get_db_prep_save(self, value, connection):
        if value is not None and not hasattr(value, "resolve_expression"):
            text = self.encode(value)
            if text_key(text) not in getattr(_PRESTORED, "keys", ()):
                store_texts([text])
        return super().get_db_prep_save(value, connection)

    def to_python(self, value):
        return value

    # database -> Python
    def from_db_value(self, value, expression, connection):
        if value is None:
            return self.empty_text
        text = _TEXTS.get(value)
        if text is None:
            text = texts_of([value])[value]
        return self.decode(text)

    def get_lookup(self, lookup_name):
        if lookup_name in ("exact", "in", "isnull"):
            return super().get_lookup(lookup_name)
        if lookup_name in TEXT_LOOKUPS:
            return TEXT_LOOKUPS[lookup_name]
        return None  # a comparison of keys (gt, lt, range, …) would mean nothing: Django says so

    def formfield(self, **kwargs):
        return models.CharField().formfield(**kwargs)


class InternedJSONField(InternedTextField):
    """A JSON value stored as the key of its canonical JSON text (sorted keys, no spaces). SQL NULL is None."""

    description = "JSON value stored once (the column holds the key of its canonical text)"
    _ENCODER = json.JSONEncoder(separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    _DECODED: dict[int, Any] = {}

    def encode(self, value: Any) -> str:
        return canonical_json(value)

    def decode(self, text: str) -> Any:
        return json.loads(text)

    def from_db_value(self, value, expression, connection):
        if value is None:
            return None
        decoded = self._DECODED.get(value, _MISSING)
        if decoded is _MISSING:
            decoded = super().from_db_value(value, expression, connection)
            if len(self._DECODED) < _CACHE_LIMIT:
                self._DECODED[value] = decoded
        # A list or dict is the caller's own copy: the cached one is shared by every row with this value.
        return copy.deepcopy(decoded) if isinstance(decoded, (list, dict)) else decoded

    def get_lookup(self, lookup_name):
        if lookup_name in ("exact", "in", "isnull"):
            return models.BigIntegerField.get_lookup(self, lookup_name)
        return None


_MISSING = object()


class _TextLookup(Lookup):
    """``<interned column>__<lookup>=value``: the keys of the stored texts that match, as a subquery."""

    prepare_rhs = False

    def as_sql(self, compiler, connection):
        texts = _stored_text_model().objects.filter(**{f"text__{self.lookup_name}": self.rhs}).values("key")
        return compiler.compile(In(self.lhs, texts.query))


TEXT_LOOKUPS = {
    name: type(f"Interned{name.title()}", (_TextLookup,), {"lookup_name": name})
    for name in (
        "iexact",
        "contains",
        "icontains",
        "startswith",
        "istartswith",
        "endswith",
        "iendswith",
        "regex",
        "iregex",
    )
}


_SCALAR_JSON: dict[tuple[type, Any], str] = {}


def canonical_json(value: Any) -> str:
    """The text an InternedJSONField stores for ``value`` (what its key is computed from); scalars, most setting
    values, are encoded once per process."""
    if isinstance(value, (int, str, bool, float)):
        cache_key = (type(value), value)
        text = _SCALAR_JSON.get(cache_key)
        if text is None:
            text = InternedJSONField._ENCODER.encode(value)
            if len(_SCALAR_JSON) < 100_000:
                _SCALAR_JSON[cache_key] = text
        return text
    return InternedJSONField._ENCODER.encode(value)


__all__ = [
    "InternedJSONField",
    "InternedTextField",
    "canonical_json",
    "store_texts",
    "stored_first",
    "text_key",
    "texts_of",
]
