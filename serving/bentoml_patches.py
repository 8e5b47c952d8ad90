"""Two of BentoML's own middlewares made safe against what strangers send, a third
stepped over when it has nothing to do, and one per-request rebuild kept.

BentoML puts its HTTP metrics and access log outside every middleware a service adds, so
they see requests before we can refuse them, and both take the raw request as it came:
- **Metrics** are labelled with the raw URL path: 3,000 requests to random paths took
  `/metrics` from 13 KB to 13 MB and a scrape past Prometheus's timeout. Here the label is
  the route (`/predict`, `/static/{file}`), and any path the service doesn't have is
  counted as `/{other}`.
- **The access log** decodes the request's Content-Type as UTF-8 only after the response
  headers are sent, so one non-UTF-8 byte cost every route its body; and it writes the
  decoded path raw, so `%0a` and `%1b` forged log lines and terminal escapes. Here it
  gets the path and headers with control and non-ASCII bytes escaped.

Both see a copy of the request made for them (`shown`); the application behind them gets
the request as it came.
- **OpenTelemetry's ASGI middleware** runs only where traces are exported (BentoML's
  `tracing` config: an exporter and a sample rate above 0). Without one it still opened
  spans for every request and message; stepping over it took the 5 s clip from 344-359
  to 381-386 requests/s at 8 clients on this 2-core machine (README, Speed).

- **An API method's local caller** (`APIMethod._local_call`) is rebuilt by BentoML for
  every request, `inspect.signature` and `functools.wraps` included: about 2 % of a 5 s
  clip's request under load (py-spy). Here it is built once per service instance and method.

`install()` replaces the three classes where BentoML looks them up when it builds the
app, and the method on BentoML's class, so it must run when the service module is imported.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

ROUTES = frozenset({
    "/", "/predict", "/classify_features", "/model", "/technical", "/demo", "/about", "/docs", "/openapi.json",
    "/docs.json", "/schema.json", "/livez", "/readyz", "/healthz", "/metrics",
})  # fmt: skip
PREFIXES = ("/static/", "/static_content/")
_UNSAFE = re.compile(r"[^\x20-\x7e]")
_ORIGINAL = "ser.original_scope"


def route_label(path: str) -> str:
    if path in ROUTES:
        return path
    for prefix in PREFIXES:
        if path.startswith(prefix):
            return prefix + "{file}"
    return "/{other}"


def printable(text: str) -> str:
    """Control and non-ASCII characters as \\xNN escapes: one request, one log line."""
    return _UNSAFE.sub(lambda m: "".join(f"\\x{b:02x}" for b in m.group().encode("utf-8", "surrogateescape")), text)


def _safe_header(value: bytes) -> bytes:
    return printable(value.decode("latin-1")).encode("ascii")


class _Original:
    """Hands the application the request as it came, not the copy shown to the middleware."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope.get(_ORIGINAL, scope), receive, send)


def _showing(base: type, shown: Callable[[Scope], Scope]) -> type:
    class Shown(base):
        def __init__(self, app: ASGIApp, *args, **kwargs) -> None:
            super().__init__(_Original(app), *args, **kwargs)

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] not in ("http", "websocket"):
                return await super().__call__(scope, receive, send)
            await super().__call__({**shown(scope), _ORIGINAL: scope}, receive, send)

    Shown.__name__ = Shown.__qualname__ = f"Safe{base.__name__}"
    return Shown


def _for_metrics(scope: Scope) -> Scope:
    return {**scope, "path": route_label(scope["path"])}


def _for_access_log(scope: Scope) -> Scope:
    headers = [(k, _safe_header(v)) for k, v in scope.get("headers", [])]
    return {**scope, "path": printable(scope["path"]), "headers": headers}


def tracing_exported() -> bool:
    """Whether BentoML's tracing sends spans anywhere: an exporter and a sample rate above 0."""
    from bentoml._internal.container import BentoMLContainer

    tracing = BentoMLContainer.tracing
    return bool(tracing.exporter_type.get()) and float(tracing.sample_rate.get() or 0) > 0


def _traced_only(base: type) -> type:
    """OpenTelemetry's ASGI middleware, stepped over when no trace is exported: it opens a
    span for the request and one for each message received or sent (an upload arrives
    in several), which nobody reads without an exporter."""

    class TracedOnly(base):
        def __init__(self, app: ASGIApp, *args, **kwargs) -> None:
            super().__init__(app, *args, **kwargs)
            self._inner = None if tracing_exported() else app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if self._inner is not None:
                return await self._inner(scope, receive, send)
            await super().__call__(scope, receive, send)

    TracedOnly.__name__ = TracedOnly.__qualname__ = f"TracedOnly{base.__name__}"
    return TracedOnly


def _built_once(local_call: Callable) -> Callable:
    """`APIMethod._local_call`, kept on the service instance: it depends only on the method
    and the instance, and BentoML called it for every request."""

    def cached(method, instance):  # noqa: ANN001, ANN202
        if not hasattr(instance, "__dict__"):
            return local_call(method, instance)
        calls = instance.__dict__.setdefault("_ser_local_calls", {})
        if method.name not in calls:
            calls[method.name] = local_call(method, instance)
        return calls[method.name]

    cached._ser_safe = True
    return cached


def install() -> None:
    from _bentoml_sdk.method import APIMethod
    from bentoml._internal.server.http import access, instruments
    from opentelemetry.instrumentation import asgi as otel_asgi

    if not getattr(APIMethod._local_call, "_ser_safe", False):
        APIMethod._local_call = _built_once(APIMethod._local_call)

    if not getattr(otel_asgi.OpenTelemetryMiddleware, "_ser_safe", False):
        otel_asgi.OpenTelemetryMiddleware = _traced_only(otel_asgi.OpenTelemetryMiddleware)
        otel_asgi.OpenTelemetryMiddleware._ser_safe = True

    if not getattr(instruments.RunnerTrafficMetricsMiddleware, "_ser_safe", False):
        instruments.RunnerTrafficMetricsMiddleware = _showing(instruments.RunnerTrafficMetricsMiddleware, _for_metrics)
        instruments.RunnerTrafficMetricsMiddleware._ser_safe = True
    if not getattr(access.AccessLogMiddleware, "_ser_safe", False):
        access.AccessLogMiddleware = _showing(access.AccessLogMiddleware, _for_access_log)
        access.AccessLogMiddleware._ser_safe = True
