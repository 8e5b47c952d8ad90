"""The API's one error body: {"error": {"code": "...", "message": "..."}}.

Every refusal is a `ser.errors.InputError` raised where the problem is found; this module
writes it, for route code (`error_response`) and for ASGI middleware that answers before
any route runs (`send_error`).
"""

from __future__ import annotations

import json

from starlette.responses import Response
from starlette.types import Send

from ser.errors import InputError


def error_body(code: str, message: str) -> bytes:
    """Every error answer is written here, so every one is also counted (errors by code)."""
    from serving.metrics import record_error

    record_error(code)
    return json.dumps({"error": {"code": code, "message": message}}).encode()


def error_response(error: InputError, headers: dict[str, str] | None = None) -> Response:
    return Response(error_body(error.code, error.message), error.status, headers, media_type="application/json")


async def send_error(send: Send, error: InputError, headers: tuple[tuple[bytes, bytes], ...] = ((b"connection", b"close"),)) -> None:
    body = error_body(error.code, error.message)
    await send({"type": "http.response.start", "status": error.status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})
