"""How `ragtune serve` holds connections: the port bound before any model loads, idle connections closed after
a few seconds, and every request given a deadline to arrive in full.

uvicorn times out a keep-alive connection only once a response has gone out, and any byte a client sends cancels
that timer; it has no deadline for a request line, headers or a body. A client that opens a connection and sends
nothing, or sends a request a byte at a time (slowloris), would hold the connection for as long as it likes. So
the server speaks HTTP/1.1 through :class:`TimedH11Protocol`, uvicorn's h11 protocol with one more timer: from the
moment a connection opens (or the previous response ends) the client has ``read_timeout_s`` to send its request,
however it trickles in; only body bytes earn more time, a second per ``body_bytes_per_s`` received.

>>> sockets = bind("127.0.0.1", 8377)  # a ConfigError naming the address if it is taken
>>> uvicorn.Server(server_config(app, "127.0.0.1", 8377)).run(sockets=sockets)
"""

from __future__ import annotations

import asyncio
import errno
import json
import socket
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from ragtune.errors import ConfigError
from ragtune.server.errors import error_body

KEEP_ALIVE_S = 5
"""An idle connection is closed this long after its last response (uvicorn's ``timeout_keep_alive``)."""
READ_TIMEOUT_S = 10.0
"""A client has this long to send a request: request line, headers and body (plus what the body earns)."""
BODY_BYTES_PER_S = 16 * 1024
"""Each this many bytes of body received add a second to the deadline, so a large body sent steadily arrives
whole (512 KB has 42 s in all), while a trickle gains next to nothing."""


class ServeConfig(uvicorn.Config):
    """uvicorn's configuration plus the request deadline that :class:`TimedH11Protocol` reads."""

    def __init__(
        self,
        app: Any,
        *,
        read_timeout_s: float = READ_TIMEOUT_S,
        body_bytes_per_s: int = BODY_BYTES_PER_S,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, **kwargs)
        self.read_timeout_s = read_timeout_s
        self.body_bytes_per_s = body_bytes_per_s


def server_config(
    app: Any,
    host: str,
    port: int,
    *,
    log_level: str = "info",
    keep_alive_s: int = KEEP_ALIVE_S,
    read_timeout_s: float = READ_TIMEOUT_S,
    body_bytes_per_s: int = BODY_BYTES_PER_S,
) -> ServeConfig:
    """The uvicorn configuration `ragtune serve` runs ``app`` with."""
    return ServeConfig(
        app,
        host=host,
        port=port,
        log_level=log_level,
        # h11 whatever else is installed: the deadline below hooks its state machine (httptools has none to read)
        http=TimedH11Protocol,
        timeout_keep_alive=keep_alive_s,
        read_timeout_s=read_timeout_s,
        body_bytes_per_s=body_bytes_per_s,
    )


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on reading each request.

    The deadline starts when the connection opens and again when a response ends. Bytes of a request line or
    headers do not move it, so a trickle cannot keep a connection; body bytes move it by a second per
    ``body_bytes_per_s``, so a large body sent at a fair rate arrives whole. It stops once the request (body
    included) is in; the app then takes as long as it takes. A client that misses it gets a 408 when it had sent
    part of a request (and nothing has been answered yet), or is closed without a word when it had sent nothing,
    as an idle connection is.
    """

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        ours = config if isinstance(config, ServeConfig) else None
        self.read_timeout_s = ours.read_timeout_s if ours else READ_TIMEOUT_S
        self.body_bytes_per_s = ours.body_bytes_per_s if ours else BODY_BYTES_PER_S
        self._deadline: asyncio.TimerHandle | None = None
        self._last_state: object = None  # h11's state of the client when last looked at

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._settle()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._settle()
        if self._deadline is not None and self.conn.their_state is h11.SEND_BODY:
            # a body arriving at a fair rate earns time; the few header bytes that came along count too, harmlessly
            when = self._deadline.when() + len(data) / self.body_bytes_per_s
            self._deadline.cancel()
            self._deadline = self.loop.call_at(when, self._expire)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._settle()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop()
        super().connection_lost(exc)

    def _settle(self) -> None:
        """Start, keep or stop the deadline after whatever just happened on the connection."""
        state = self.conn.their_state
        if self.transport.is_closing():
            self._stop()
        elif state is h11.IDLE:
            # waiting for a request: a new one (the connection just opened, or a response just ended) gets a fresh
            # deadline; a request line still arriving keeps the one it has
            if self._deadline is None or self._last_state is not h11.IDLE:
                self._stop()
                self._deadline = self.loop.call_later(self.read_timeout_s, self._expire)
        elif state is h11.SEND_BODY:
            if self._deadline is None:  # not reached through IDLE; still, a body must not wait for ever
                self._deadline = self.loop.call_later(self.read_timeout_s, self._expire)
        else:
            self._stop()  # the request is in (DONE), or the connection is ending: nothing left to wait for
        self._last_state = state

    def _stop(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        their, ours = self.conn.their_state, self.conn.our_state
        started = their is h11.SEND_BODY or (their is h11.IDLE and bool(self.conn.trailing_data[0]))
        if started and ours in (h11.IDLE, h11.SEND_RESPONSE):
            self.transport.write(_request_timeout(self.read_timeout_s, self.body_bytes_per_s))
        if self.cycle is not None and not self.cycle.response_complete:
            # the app may be waiting for the rest of the body: it reads a disconnect, and what it sends is dropped
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.close()


def _request_timeout(seconds: float, body_bytes_per_s: int) -> bytes:
    message = (
        f"the request did not arrive in time ({seconds:g} s, and 1 s more per {body_bytes_per_s // 1024} KB of body); "
        "send it without pausing"
    )
    body = json.dumps(error_body(408, message, "request_timeout")).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def bind(host: str, port: int) -> list[socket.socket]:
    """Sockets bound to ``host:port``, as uvicorn would bind them (every address the name resolves to), or a
    :class:`ConfigError` naming the address. They listen once the server has started."""
    shown = f"[{host.strip('[]')}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(
            host.strip("[]") or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ConfigError(f"cannot listen on {shown}: {exc.strerror}; give --host an address of this machine") from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # as asyncio binds, one family each
            sock.bind(address)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"cannot listen on {shown}: the address is already in use (another server, perhaps another "
                "`ragtune serve`); stop it, or choose another port with --port or [server] port"
            ) from None
        raise ConfigError(f"cannot listen on {shown}: {exc.strerror}; choose another --host or --port") from None
    return sockets
