"""The one helper every state change goes through to leave an audit record."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import models

from .models import AuditEvent


@dataclass(frozen=True)
class Actor:
    user: Any = None
    name: str = "System"
    source: str = AuditEvent.Source.SYSTEM
    ip: str | None = None


_current: contextvars.ContextVar[Actor | None] = contextvars.ContextVar("audit_actor", default=None)

SYSTEM = Actor()


def current_actor() -> Actor:
    return _current.get() or SYSTEM


@contextmanager
def acting_as(actor: Actor) -> Iterator[Actor]:
    token = _current.set(actor)
    try:
        yield actor
    finally:
        _current.reset(token)


def actor_from_request(request, source: str = AuditEvent.Source.UI) -> Actor:
    from .security import client_ip

    user = getattr(request, "user", None)
    ip = client_ip(request)
    if user is not None and user.is_authenticated:
        return Actor(user=user, name=user.get_username(), source=source, ip=ip)
    return Actor(name="Anonymous", source=source, ip=ip)


def snapshot(obj: models.Model, fields: list[str] | None = None) -> dict[str, Any]:
    """A JSON-able dict of a model's concrete fields, for before/after."""
    data: dict[str, Any] = {}
    for field in obj._meta.concrete_fields:
        if fields is not None and field.name not in fields:
            continue
        value = field.value_from_object(obj)
        if hasattr(value, "isoformat"):
            value = value.isoformat()
        elif not isinstance(value, str | int | float | bool | list | dict | type(None)):
            value = str(value)
        data[field.name] = value
    return data


def record(
    action: str,
    obj: models.Model | None = None,
    *,
    object_type: str = "",
    object_id: str = "",
    object_repr: str = "",
    before: dict | None = None,
    after: dict | None = None,
    actor: Actor | None = None,
) -> AuditEvent:
    actor = actor or current_actor()
    if obj is not None:
        object_type = object_type or obj._meta.verbose_name.title()
        object_id = object_id or str(obj.pk)
        object_repr = object_repr or str(obj)[:300]
    user = actor.user if getattr(actor.user, "pk", None) else None
    return AuditEvent.objects.create(
        actor=user,
        actor_name=actor.name,
        source=actor.source,
        action=action,
        object_type=object_type,
        object_id=object_id,
        object_repr=object_repr[:300],
        ip=actor.ip,
        before=before,
        after=after,
    )


def changed(before: dict, after: dict) -> tuple[dict, dict]:
    """Only the keys whose values differ, so an audit record shows the change and not the whole object."""
    keys = [k for k in after if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in keys}, {k: after[k] for k in keys}
