"""The HTTP connection itself: its parser, how long and how large a client's request
headers may be, and what uvicorn answers to a request it cannot parse.

HTTP/1.1 is parsed by httptools (llhttp, in C), uvicorn's faster parser: the workers
spent 4.28 against 4.41 ms of CPU per request with h11 (5 s clip, fixed windows, 8
clients; means of six runs each, less in four of the six: README, Speed). uvicorn
starts its keep-alive timer only after a response, so a connection that never finishes
its headers stayed open (1,000 slow-header connections were all still open after 75 s),
and with httptools it sets no limit on their size. This protocol closes a connection
whose request headers haven't all arrived within `SER_HEADER_TIMEOUT_S` (10 s) of its
first byte (or of its opening), refuses headers over `MAX_HEADER_BYTES` (h11's limit in
uvicorn), and answers unparseable requests in the API's error shape instead of uvicorn's
plain text. WebSocket connections (/live) get small protocol buffers. `install()` makes
both uvicorn's "auto" protocols; BentoML's workers resolve them after importing the service.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from serving.errors import error_body
from serving.settings import SETTINGS

MAX_HEADER_BYTES = 16 * 1024  # request line and headers: uvicorn's limit for h11


class HeadersTooLarge(Exception):
    pass


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    _header_timer: asyncio.TimerHandle | None = None
    _header_bytes = 0
    _refusal: str | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    # parser callbacks: a request's first byte, its line and headers, their end
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        if self._header_timer is None:
            self._arm()  # a new request on a kept-alive connection

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()  # the headers are in: the body has its own timeout
        super().on_headers_complete()

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > MAX_HEADER_BYTES:  # raised through the parser: answered 400
            self._refusal = f"the request line and headers are over {MAX_HEADER_BYTES // 1024} KiB"
            raise HeadersTooLarge

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(SETTINGS.header_timeout_s, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        self._disarm()
        body = error_body("bad_request", self._refusal or f"the HTTP request could not be parsed ({msg})")
        head = (b"content-type: application/json\r\ncontent-length: " + str(len(body)).encode()
                + b"\r\nconnection: close\r\n\r\n")  # fmt: skip
        self.transport.write(STATUS_LINE[400] + head + body)
        self.transport.close()


class BoundedWebSocketProtocol(WebSocketsSansIOProtocol):
    """WebSocket connections whose protocol buffers stay small: a message may be one audio
    frame (uvicorn's default allows 16 MiB), at most 4 wait unread (default 32), and no
    per-message compression (a small compressed message could inflate to the limit)."""

    def __init__(self, config, *args, **kwargs) -> None:  # noqa: ANN001
        config.ws_max_size = SETTINGS.live_max_frame_bytes + 4096  # a frame plus JSON headroom
        config.ws_max_queue = 4
        config.ws_per_message_deflate = False
        super().__init__(config, *args, **kwargs)


def install() -> None:
    from uvicorn import config

    config.HTTP_PROTOCOLS["auto"] = f"{__name__}:GuardedHttpToolsProtocol"
    config.WS_PROTOCOLS["auto"] = f"{__name__}:BoundedWebSocketProtocol"
