"""ASGI middleware that guards every route: body size limit with the API's error shape."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ser.errors import InputError
from serving.errors import error_body, error_response, send_error


class BodyTooLarge(Exception):
    """Raised from `receive` once a streamed body passes the limit.

    The outer app gets it back here; a mounted Starlette app must map it to a 413 with an
    exception handler (`too_large_handler`), or its own error middleware answers 500 first.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(f"the body exceeds the limit of {limit} bytes")


class UploadsInFlight(Exception):
    """Raised from `receive` when a streamed body would pass the worker's in-flight budget."""


class BodyLimitMiddleware:
    """Refuse bodies over `max_bytes` (413), by Content-Length before reading or while
    streaming, and keep the bytes of bodies in flight on this worker under `max_in_flight`
    (503, retry): memory follows from uploads being held and analysed (each costs about 6x
    its size at its peak: copies, decoded samples, windows), not from the request count;
    16 concurrent 24 MiB uploads took the server to 2.9 GiB without it."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_in_flight: int) -> None:
        self.app, self.max_bytes, self.max_in_flight = app, max_bytes, max_in_flight
        self.in_flight = 0

    def _busy(self) -> InputError:
        return InputError("overloaded", f"the server is holding {self.max_in_flight // 2**20} MiB of uploads; "
                          "retry shortly", 503)  # fmt: skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = 0
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit():
                declared = int(value)
        if declared > self.max_bytes:
            return await send_error(send, InputError(
                "too_large", f"the body is {declared} bytes; the limit is {self.max_bytes} bytes", 413))
        if declared and self.in_flight + declared > self.max_in_flight:
            return await send_error(send, self._busy(), headers=((b"retry-after", b"1"), (b"connection", b"close")))
        self.in_flight += declared
        held, received = declared, 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received, held
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
                if received > held:  # chunked, or more than declared: counted as it comes
                    if self.in_flight + received - held > self.max_in_flight:
                        raise UploadsInFlight()
                    self.in_flight += received - held
                    held = received
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as e:
            if not started:
                await send_error(send, InputError("too_large", str(e), 413))
        except UploadsInFlight:
            if not started:
                await send_error(send, self._busy(), headers=((b"retry-after", b"1"), (b"connection", b"close")))
        finally:
            self.in_flight -= held


async def too_large_handler(request, exc: BodyTooLarge):
    return error_response(InputError("too_large", str(exc), 413), headers={"connection": "close"})


class ConcurrencyLimitMiddleware:
    """At most `limit` requests in flight on `paths`; the rest get 429 at once, not a queue.

    BentoML's own `max_concurrency` answers 429 in another shape and also counts the
    service's internal batching calls, so the public cap lives here.
    """

    def __init__(self, app: ASGIApp, limit: int, paths: tuple[str, ...] = ("/predict",)) -> None:
        self.app, self.limit, self.paths = app, limit, paths
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") not in self.paths:
            return await self.app(scope, receive, send)
        if self.in_flight >= self.limit:
            return await send_error(send, InputError(
                "too_many_requests", f"more than {self.limit} requests in flight; retry shortly", 429),
                headers=((b"retry-after", b"1"),))  # fmt: skip
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


_PASS_THROUGH = ("/docs", "/static_content")  # Swagger UI's own files


class ErrorShapeMiddleware:
    """Rewrite any 4xx/5xx that isn't already {"error": {"code", "message"}} into that shape.

    BentoML answers its own validation errors as [{"error": msg}] and Starlette answers
    404/405 as plain text; clients should parse one shape whatever failed.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").startswith(_PASS_THROUGH):
            return await self.app(scope, receive, send)
        start: Message | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                if message["status"] < 400:
                    start = None
                    await send(message)
                    return
                start = message
                return
            if start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                await _send_shaped(send, start, b"".join(chunks), scope)

        await self.app(scope, receive, capture)


def _reshape(status: int, body: bytes, scope: Scope) -> bytes | None:
    """None when the body already has the shape."""
    from http import HTTPStatus

    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), dict) and {"code", "message"} <= set(data["error"]):
        return None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]
    if isinstance(data, dict):
        message = data.get("error") or data.get("detail") or data.get("message") or json.dumps(data)
    else:
        message = body.decode("utf-8", "replace").strip() or HTTPStatus(status).phrase
        if message in (HTTPStatus(status).phrase, "Method Not Allowed", "Not Found"):
            message = f"{message}: {scope.get('method')} {scope.get('path')}"
    code = HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_") if status in HTTPStatus._value2member_map_ else "error"
    return error_body(code, str(message)[:2000])


async def _send_shaped(send: Send, start: Message, body: bytes, scope: Scope) -> None:
    shaped = _reshape(start["status"], body, scope)
    if shaped is None:
        shaped_headers = start["headers"]
        out = body
    else:
        out = shaped
        shaped_headers = [(k, v) for k, v in start["headers"] if k.lower() not in (b"content-type", b"content-length")]
        shaped_headers += [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]
    await send({**start, "headers": shaped_headers})
    await send({"type": "http.response.body", "body": out})


class FeaturesBodyMiddleware:
    """The batchable /classify_features endpoint's body, checked before BentoML sees it.

    BentoML's endpoints parse multipart and pickle bodies too, read bodies without a time
    limit (a body trickled a byte every 2 s got 504 after 60 s) and log every refusal as
    an ERROR with a traceback. This reads the body within the body timeout (else 408),
    takes JSON only (415) of the endpoint's shape with whole finite windows (400), and
    replays the checked body to BentoML.
    """

    def __init__(self, app: ASGIApp, path: str, timeout_s: float) -> None:
        self.app, self.path, self.timeout_s = app, path, timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") != self.path or scope.get("method") != "POST":
            return await self.app(scope, receive, send)
        ctype = dict(scope.get("headers", [])).get(b"content-type", b"").split(b";")[0].strip().lower()
        if ctype != b"application/json":
            return await send_error(send, InputError(
                "unsupported_media_type",
                f"{self.path} takes application/json, not {ctype.decode('latin-1') or 'no content type'}", 415))
        try:
            body = await read_body(receive, self.timeout_s)
            _check_features(body)
        except InputError as e:
            return await send_error(send, e)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def read_body(receive: Receive, timeout_s: float) -> bytes:
    """A request's whole body, read in memory: 408 when it hasn't all arrived within
    `timeout_s` (a client trickling bytes), 413 past the size limit and 503 past the
    in-flight budget (BodyLimitMiddleware raises both from `receive`), 400 if the client
    left. Every route that reads a body reads it here."""
    import anyio

    chunks = []
    try:
        with anyio.fail_after(timeout_s):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":  # nobody to answer; no traceback
                    raise InputError("client_disconnected", "the client went away during the upload", 400)
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    return b"".join(chunks)
    except TimeoutError as e:
        raise InputError("request_timeout", f"the body did not arrive within {timeout_s:g} s", 408) from e
    except BodyTooLarge as e:
        raise InputError("too_large", str(e), 413) from e
    except UploadsInFlight as e:
        raise InputError("overloaded", "the server is holding too many uploads; retry shortly", 503) from e


def _check_features(body: bytes) -> None:
    from ser.config import N_FRAMES, N_MFCC
    from serving.predict import decode_features

    try:
        data = json.loads(body)
    except ValueError as e:
        raise InputError("bad_json", f"the body is not JSON ({e})") from None
    items = data.get("features") if isinstance(data, dict) else None
    if not isinstance(items, list) or not all(isinstance(f, str) for f in items) or set(data) != {"features"}:
        raise InputError("bad_features", 'send {"features": [base64 float32 windows, ...]}')
    for f in items:
        try:
            decode_features(f, N_FRAMES, N_MFCC)
        except (ValueError, TypeError) as e:
            raise InputError("bad_features", str(e)) from None


SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    # the pages load only their own scripts and styles (Swagger UI sets inline styles) and
    # may not be framed: /demo asks for the microphone
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                                 b"media-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    (b"permissions-policy", b"microphone=(self), camera=(), geolocation=()"),
)  # fmt: skip


class SecurityHeadersMiddleware:
    """Headers that stop sniffing, framing and foreign scripts, on every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)
