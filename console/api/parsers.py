"""The API's JSON parser: request bodies go through console.untrusted_json (one way in for untrusted JSON)."""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.parsers import BaseParser

from console import untrusted_json

MAX_BODY = untrusted_json.GRAPH_MAX_BYTES


class BodyRefused(exceptions.APIException):
    """A body the parser refuses: 400 or 413, in the Graph envelope (console.api.errors formats every
    APIException). Not a GraphError: this module is loaded by DRF's settings, before console.api.errors can be."""

    def __init__(self, status_code: int, message: str) -> None:
        self.status_code = status_code
        super().__init__(detail=message)


class UntrustedJSONParser(BaseParser):
    """application/json with Graph's 4 MB limit, a nesting limit and text checks; refusals are Graph errors.

    Deliberately not a JSONParser subclass: DRF hands JSONParser subclasses ``request.body``, whose own limit
    (DATA_UPLOAD_MAX_MEMORY_SIZE, 2.5 MB) answers with an HTML page instead of the Graph envelope. This one reads
    the stream itself, at most one byte over the limit.
    """

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read(MAX_BODY + 1) if stream is not None else b""
        try:
            return untrusted_json.loads(raw, max_bytes=MAX_BODY)
        except untrusted_json.UntrustedJSONError as exc:
            raise BodyRefused(exc.status, exc.message) from None
