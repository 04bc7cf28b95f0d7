"""Microsoft Graph's error envelope, for every 4xx/5xx the API returns."""

from __future__ import annotations

import uuid

from django.http import JsonResponse
from django.utils import timezone
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

CODES = {
    400: "BadRequest",
    401: "InvalidAuthenticationToken",
    403: "Authorization_RequestDenied",
    404: "ResourceNotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    429: "TooManyRequests",
    500: "InternalServerError",
}


class GraphError(exceptions.APIException):
    """Raise anywhere in an API view: becomes {"error": {"code", "message", "innerError"}} with that status."""

    def __init__(self, status_code: int, message: str, code: str | None = None):
        self.status_code = status_code
        self.graph_code = code or CODES.get(status_code, "BadRequest")
        super().__init__(detail=message)


def envelope(status_code: int, message: str, code: str | None = None, request=None) -> dict:
    client_request_id = ""
    if request is not None:
        client_request_id = request.headers.get("client-request-id", "")
    return {
        "error": {
            "code": code or CODES.get(status_code, "BadRequest"),
            "message": message,
            "innerError": {
                "date": timezone.now().strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": str(uuid.uuid4()),
                "client-request-id": client_request_id or str(uuid.uuid4()),
            },
        }
    }


def graph_error_response(
    status_code: int, message: str, code: str | None = None, request=None
) -> JsonResponse:
    return JsonResponse(envelope(status_code, message, code, request), status=status_code)


def _message(detail) -> str:
    if isinstance(detail, dict):
        return "; ".join(f"{k}: {_message(v)}" for k, v in detail.items())
    if isinstance(detail, list):
        return "; ".join(_message(d) for d in detail)
    return str(detail)


def graph_exception_handler(exc, context):
    response = exception_handler(exc, context)
    request = context.get("request")
    if isinstance(exc, GraphError):
        return Response(
            envelope(exc.status_code, str(exc.detail), exc.graph_code, request), status=exc.status_code
        )
    if response is None:
        return None  # a real bug: Django's 500 handling (logged) applies
    code = None
    if isinstance(exc, exceptions.Throttled):
        code = "TooManyRequests"
        message = f"Too many requests. Retry after {int(exc.wait or 1)} seconds."
    elif isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        response.status_code = status.HTTP_401_UNAUTHORIZED
        message = (
            "Access token is empty, invalid or expired."
            if isinstance(exc, exceptions.AuthenticationFailed)
            else "Access token is empty."
        )
    elif isinstance(exc, exceptions.ParseError):
        message = f"Request body is not valid JSON: {exc.detail}"
    else:
        message = _message(getattr(exc, "detail", str(exc)))
    headers = {k: v for k, v in response.headers.items() if k in ("Retry-After", "WWW-Authenticate", "Allow")}
    return Response(
        envelope(response.status_code, message, code, request), status=response.status_code, headers=headers
    )
