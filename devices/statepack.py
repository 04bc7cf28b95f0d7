"""The simulated agent's state as it was stored from devices 0011 to 0014: canonical JSON, deflated against a preset
dictionary. Since 0014 a device row holds the key of its state (devices.models.AgentStateField: 8 bytes instead of
these ~360, each distinct state stored once); this module stays to read and write the old rows in migrations, and
its dictionary stays frozen for them.

Why: the state (Get-MpPreference values, the applied and managed setting ids) is the largest part of a device
row. As JSONB, PostgreSQL compressed each document alone (pglz) and averaged 1,174 bytes a device at 1,000,000
devices; most of that is the same long setting ids (``device_vendor_msft_policy_config_defender_…``) written out
again on every row. Deflate with a preset dictionary of those ids (RFC 1950's FDICT, ``zlib.compressobj(zdict=)``)
points at the dictionary instead: about 360 bytes for the same documents.

Format: ``b""`` is the empty state ``{}``; otherwise one version byte, then a raw deflate stream of the state's
canonical JSON (sorted keys, no spaces) compressed against that version's dictionary. Version 1's dictionary is
the file ``agent-state-v1.zdict`` beside this module, built once by :func:`catalog_dictionary` from the setting
catalog and the modelled MpPreference names. It is frozen: stored rows need it to be read, so a test pins its
SHA-256. A later dictionary is a new version byte and a new file; readers keep every version they ever wrote.

The packing is deterministic (same state, same bytes), so the check-in pipeline keys its per-state cache on the
packed bytes as they come from the database, without unpacking them (devices.checkins.agent_apply).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

VERSION = 1
_DICTIONARIES = {1: "agent-state-v1.zdict"}
# Measured on 3,921 states of the 1,000,000-device bench fleet (3,108 bytes of JSON each): level 6 and memLevel 8
# give 360 bytes in 81 us (most of it loading the dictionary); level 9 356 bytes, level 1 531 bytes in 70 us;
# memLevel 9 cost 109 us for the same bytes.
_LEVEL = 6
_MEM_LEVEL = 8
_WBITS = -15  # a raw deflate stream: the version byte is our header, and the dictionary is known


class PackError(ValueError):
    """Stored bytes that are not a packed agent state this code can read."""


@cache
def dictionary(version: int = VERSION) -> bytes:
    name = _DICTIONARIES.get(version)
    if name is None:
        raise PackError(f"Agent state of unknown format version {version}.")
    return (Path(__file__).with_name(name)).read_bytes()


def canonical(state: Mapping[str, Any]) -> bytes:
    return json.dumps(state, sort_keys=True, separators=(",", ":")).encode()


def pack(state: Mapping[str, Any]) -> bytes:
    if not state:
        return b""
    packer = zlib.compressobj(
        _LEVEL, zlib.DEFLATED, _WBITS, _MEM_LEVEL, zlib.Z_DEFAULT_STRATEGY, dictionary(VERSION)
    )
    return bytes([VERSION]) + packer.compress(canonical(state)) + packer.flush()


def unpack(data: bytes | memoryview | None) -> dict[str, Any]:
    if not data:
        return {}
    data = bytes(data)
    version = data[0]
    try:
        unpacker = zlib.decompressobj(_WBITS, dictionary(version))
        text = unpacker.decompress(data[1:]) + unpacker.flush()
    except zlib.error as exc:
        raise PackError(f"Agent state (format version {version}) is damaged: {exc}.") from exc
    if not unpacker.eof:
        raise PackError(f"Agent state (format version {version}) is cut short.")
    return json.loads(text)


def catalog_dictionary(setting_ids: Iterable[str], preference_names: Iterable[str]) -> bytes:
    """The dictionary the way version 1's was built: every MpPreference name and every catalog setting id, as
    they appear in canonical JSON, and the state's own keys last (deflate reaches the end of the dictionary most
    cheaply). For a future version only; the stored versions never change."""
    parts = [json.dumps(name) + ":" for name in sorted(set(preference_names))]
    parts += [json.dumps(sid) + "," for sid in sorted(set(setting_ids))]
    parts += [
        '{"applied":{',
        '"last_applied_fingerprint":"',
        '"local":{}',
        '"managed":[',
        '"pending_restart":{}',
        '"preferences":{',
        '"tamper_protection":true',
    ]
    return "".join(parts).encode()[-32768:]


class PackedJSONField(models.BinaryField):
    """A JSON object stored packed (above): the model sees a dict, the database a short bytea / BLOB.

    Nothing filters on its contents (it is the simulated device's own state), so it offers no JSON lookups.
    Hand-written SQL reads the column's bytes and calls :func:`unpack`, and writes :func:`pack`'s bytes.
    """

    description = "A JSON object, deflated against a preset dictionary"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("editable", False)
        super().__init__(*args, **kwargs)

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> dict[str, Any] | None:
        return None if value is None else unpack(value)

    def to_python(self, value: Any) -> Any:
        try:
            if isinstance(value, bytes | bytearray | memoryview):
                return unpack(value)
            if isinstance(value, str):  # value_to_string's form (fixtures, dumpdata)
                return json.loads(value) if value else {}
        except (PackError, ValueError) as exc:
            raise ValidationError(f"{self.name}: {exc}", code="invalid") from exc
        return value

    def get_prep_value(self, value: Any) -> bytes | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = self.to_python(value)
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value)
        if not isinstance(value, Mapping):
            raise TypeError(f"{self.name} holds a JSON object, not {type(value).__name__}.")
        return pack(value)

    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> Any:
        if not prepared:
            value = self.get_prep_value(value)
        return None if value is None else connection.Database.Binary(value)

    def value_to_string(self, obj: Any) -> str:
        return json.dumps(self.value_from_object(obj))
