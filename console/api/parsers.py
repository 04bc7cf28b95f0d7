"""The API's JSON parser: request bodies go through console.untrusted_json (one way in for untrusted JSON)."""

from __future__ import annotations

from rest_framework.parsers import BaseParser

from console import untrusted_json

from .errors import GraphError

MAX_BODY = untrusted_json.GRAPH_MAX_BYTES


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
            raise GraphError(exc.status, exc.message) from None
