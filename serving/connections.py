"""The HTTP connection itself: how long a client may take to send its request headers,
and what uvicorn answers to a request it cannot parse.

uvicorn (h11) starts its keep-alive timer only after a response, so a connection that
never finishes its headers stays open: 1,000 slow-header connections were all still open
after 75 s. This protocol closes a connection whose request headers haven't all arrived
within `SER_HEADER_TIMEOUT_S` (10 s) of its first byte (or of its opening), and answers unparseable
requests in the API's error shape instead of uvicorn's plain text. WebSocket connections
(/live) get small protocol buffers. `install()` makes both uvicorn's "auto" protocols;
BentoML's workers resolve them after importing the service.
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from serving.errors import error_body
from serving.settings import SETTINGS


class GuardedH11Protocol(H11Protocol):
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._header_timer is None and (self.cycle is None or self.cycle.response_complete):
            self._arm()  # a new request starts on a kept-alive connection
        super().data_received(data)
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm()  # its headers are in: the body has its own timeout

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._disarm()  # the connection is a WebSocket now, with its own idle limit
        super().handle_websocket_upgrade(event)

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
        body = error_body("bad_request", f"the HTTP request could not be parsed ({msg})")
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]  # fmt: skip
        for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"), h11.Data(data=body),
                      h11.EndOfMessage()):  # fmt: skip
            self.transport.write(self.conn.send(event))
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

    config.HTTP_PROTOCOLS["auto"] = f"{__name__}:GuardedH11Protocol"
    config.WS_PROTOCOLS["auto"] = f"{__name__}:BoundedWebSocketProtocol"
