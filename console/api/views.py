"""The base of every Graph-shaped endpoint: token auth, role checks, tenant throttling, the error envelope,
OData collections with absolute nextLinks, and audit records attributed to the token's owner."""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import FieldError, ValidationError
from django.db import DataError
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from console.audit import Actor, _current
from console.models import AuditEvent
from console.tokens import token_permissions

from .auth import (
    GraphTokenAuthentication,
    HasRolePermission,
    TenantReadThrottle,
    TenantWriteThrottle,
)
from .errors import GraphError, graph_error_response
from .odata import apply_select, next_link, parse_query
from .parsers import MAX_BODY, UntrustedJSONParser


class CountNegotiation(BaseContentNegotiation):
    """`$count` segments: the SDKs ask for `text/plain`; the count is text and an error is Graph's JSON envelope,
    whatever the Accept header says (DRF would answer 406 to text/plain)."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class GraphView(APIView):
    authentication_classes = [GraphTokenAuthentication]
    permission_classes = [HasRolePermission]
    throttle_classes = [TenantReadThrottle, TenantWriteThrottle]
    parser_classes = [UntrustedJSONParser]
    renderer_classes = [JSONRenderer]
    required_perms: dict[str, str] = {}

    @classmethod
    def as_view(cls, **initkwargs):
        view = super().as_view(**initkwargs)
        view.login_required = False  # token auth, not the console's session login (LoginRequiredMiddleware)
        return view

    def initial(self, request, *args, **kwargs):
        # An unsupported method is 405 for everyone (not a 403 from the role check, which would mislead).
        if request.method != "OPTIONS" and not hasattr(self, request.method.lower()):
            raise exceptions.MethodNotAllowed(request.method)
        length = request.META.get("CONTENT_LENGTH") or "0"
        if length.isdigit() and int(length) > MAX_BODY:
            raise GraphError(413, "The request body is larger than 4 MB.")
        # PostgreSQL text cannot hold NUL characters: refuse them up front rather than fail in the database.
        if "\x00" in request.META.get("QUERY_STRING", "") or any("\x00" in v for v in request.GET.values()):
            raise GraphError(400, "The query must not contain NUL characters.")
        super().initial(request, *args, **kwargs)
        token = request.auth
        actor = Actor(
            user=request.user,
            name=f"{request.user.get_username()} (API token {token.prefix})",
            source=AuditEvent.Source.API,
            ip=request.META.get("REMOTE_ADDR") or None,
        )
        self._audit_token = _current.set(actor)

    def finalize_response(self, request, response, *args, **kwargs):
        token = getattr(self, "_audit_token", None)
        if token is not None:
            _current.reset(token)
            self._audit_token = None
        return super().finalize_response(request, response, *args, **kwargs)

    def require_perm(self, request, perm: str, message: str) -> None:
        """A check beyond the method's own (e.g. Assign when a body carries assignments): 403 without it."""
        granted = getattr(request, "_token_perms", None)
        if granted is None:
            granted = request._token_perms = token_permissions(request.auth)
        if perm not in granted:
            raise GraphError(403, message)

    def json_body(self, request) -> dict:
        """The body as a JSON object (UntrustedJSONParser has already refused deep, huge or unstorable ones)."""
        data = request.data
        if not isinstance(data, dict):
            raise GraphError(400, "The request body must be a JSON object.")
        return data

    def collection(
        self,
        request,
        queryset,
        serialize: Callable[[object, set[str]], dict],
        *,
        fields: dict,
        orderable: dict[str, str],
        expandable: set[str] = frozenset(),
        default_order: tuple[str, ...] = ("pk",),
        context: str = "",
        selectable: set[str] | None = None,
    ) -> Response:
        query = parse_query(
            request.GET, fields=fields, orderable=orderable, expandable=expandable, selectable=selectable
        )
        try:
            qs = queryset.filter(query.filter).order_by(*(query.orderby or default_order), "pk")
            total = qs.count() if query.count else None
            page = list(qs[query.skip : query.skip + query.top])
        except (ValidationError, ValueError, TypeError, FieldError, OverflowError, DataError) as exc:
            # A literal of the wrong type for its property ('abc' for a date or a GUID): the client's mistake.
            raise GraphError(
                400, f"Invalid $filter: a value does not fit its property ({_first(exc)})."
            ) from None
        body: dict = {}
        if context:
            body["@odata.context"] = request.build_absolute_uri("/").rstrip("/") + context
        if total is not None:
            body["@odata.count"] = total
        body["value"] = [apply_select(serialize(obj, query.expand), query.select) for obj in page]
        link = next_link(request, query, len(page), total)
        if link:
            body["@odata.nextLink"] = link
        return Response(body)


def _first(exc: Exception) -> str:
    messages = getattr(exc, "messages", None)
    return str(messages[0] if messages else exc)[:200]


@csrf_exempt
def not_found(request, path: str = ""):
    """Unknown Graph paths get Graph's envelope, not the console's HTML 404."""
    return graph_error_response(
        400 if not path else 404,
        f"Resource not found for the segment '{path.split('/')[0] if path else ''}'.",
        "BadRequest" if not path else "ResourceNotFound",
        request,
    )


not_found.login_required = False


def json_404(request, exception=None) -> JsonResponse:
    return graph_error_response(404, "The requested resource does not exist.", request=request)
