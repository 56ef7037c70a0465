"""Refuse request bodies in any content coding but `identity` with 415, before they are read."""

from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.errors import ApiError, error_response

_CONTENT_ENCODING: Final = b"content-encoding"
HEADER: Final = "Content-Encoding"


class UnsupportedContentEncodingError(ApiError):
    def __init__(self) -> None:
        super().__init__(
            415,
            ["header", HEADER],
            f"{HEADER} must be identity or absent: compressed request bodies are not accepted",
            "unsupported_content_encoding",
            headers={"Accept-Encoding": "identity"},
        )


class IdentityContentEncoding:
    """Pure ASGI middleware: a request whose Content-Encoding names any coding but `identity`
    (`gzip`, `br`, `gzip, identity`, ...) is answered 415 with `Accept-Encoding: identity`
    (RFC 9110, 15.5.16), whatever its body.

    Without it the service ignored the header: a gzip body got a misleading "not UTF-8" 422 and a
    plain body labelled gzip was scored, so a proxy that decoded it and the service read two
    different requests. Refusing compression (rather than decompressing) also keeps
    MAX_BODY_BYTES the bound on what a request can make the service hold.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == _CONTENT_ENCODING and not _identity(value):
                    error = UnsupportedContentEncodingError()
                    response = error_response(
                        415, [error.item()], headers=error.headers, scope=scope
                    )
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def _identity(value: bytes) -> bool:
    """Whether a Content-Encoding value lists no coding but `identity` (empty elements ignored)."""
    codings = (part.strip().lower() for part in value.split(b","))
    return all(coding in (b"", b"identity") for coding in codings)
