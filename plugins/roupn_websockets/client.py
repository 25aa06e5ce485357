"""The client side: WebSocket connections and plain GET requests to a relay."""

from __future__ import annotations

import logging
import ssl
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import anyio.abc
import httpx
from anyio.abc import SocketAttribute
from websockets.client import ClientProtocol
from websockets.exceptions import InvalidStatus, InvalidURI
from websockets.protocol import Event
from websockets.uri import WebSocketURI, parse_uri

from roupn.errors import ConnectionClosedError
from roupn.interfaces import HttpResponse

from .connection import READ_SIZE, STREAM_ERRORS, WebsocketConnection, format_address

__all__ = ["ClientOptions", "connect", "http_get", "rejection_reason"]

logger = logging.getLogger(__name__)

WEBSOCKET_SCHEMES = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}
HTTP_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}

# Characters of a rejection's response body kept in the error's reason.
MAX_REJECTION_TEXT = 200


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """Limits and timeouts of client connections, with times in seconds."""

    max_size: int | None
    open_timeout: float
    close_timeout: float
    ssl_context: ssl.SSLContext | None = None


def rejection_reason(status: int, body: bytes) -> str:
    """Describe a rejected upgrade, with the start of the response body."""
    text = " ".join(body.decode("utf-8", errors="replace").split())
    reason = f"upgrade rejected with HTTP {status}"
    if text:
        reason += f": {text[:MAX_REJECTION_TEXT]}"
    return reason


def describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


# WebSocket connections.


@asynccontextmanager
async def connect(
    url: str, options: ClientOptions
) -> AsyncIterator[WebsocketConnection]:
    """Open a WebSocket to ``url`` and close it with 1000 on exit.

    Raises:
        ValueError: ``url`` is not a ws, wss, http or https URL.
        ConnectionClosedError: the relay could not be reached, did not complete
            the handshake in time, or rejected the upgrade (the HTTP status is in
            the reason).
    """
    uri = websocket_uri(url)
    connection = await open_connection(uri, url, options)
    try:
        yield connection
    finally:
        with anyio.move_on_after(options.close_timeout, shield=True):
            await connection.close(1000)
        await connection.abort()


def websocket_uri(url: str) -> WebSocketURI:
    """Parse a relay URL, mapping http to ws and https to wss.

    Raises:
        ValueError: the scheme is not ws, wss, http or https, or the URL is invalid.
    """
    split = urllib.parse.urlsplit(url)
    scheme = WEBSOCKET_SCHEMES.get(split.scheme.lower())
    if scheme is None:
        raise ValueError(
            f"invalid relay URL {url!r}: the scheme must be ws, wss, http or https"
        )
    try:
        return parse_uri(urllib.parse.urlunsplit(split._replace(scheme=scheme)))
    except InvalidURI as exc:
        raise ValueError(f"invalid relay URL {url!r}: {exc}") from None


async def open_connection(
    uri: WebSocketURI, url: str, options: ClientOptions
) -> WebsocketConnection:
    """Connect over TCP (and TLS for wss), then run the opening handshake."""
    stream: anyio.abc.ByteStream
    try:
        with anyio.fail_after(options.open_timeout):
            if uri.secure:
                # The WebSocket closing handshake ends the session, so TLS needs none.
                stream = await anyio.connect_tcp(
                    uri.host,
                    uri.port,
                    tls=True,
                    ssl_context=options.ssl_context,
                    tls_hostname=uri.host,
                    tls_standard_compatible=False,
                )
            else:
                stream = await anyio.connect_tcp(uri.host, uri.port)
    except TimeoutError:
        raise ConnectionClosedError(
            1006, f"cannot reach {url}: no connection within {options.open_timeout} s"
        ) from None
    except STREAM_ERRORS as exc:
        raise ConnectionClosedError(
            1006, f"cannot reach {url}: {describe(exc)}"
        ) from exc

    try:
        return await handshake(stream, uri, url, options)
    except BaseException:
        await anyio.aclose_forcefully(stream)
        raise


async def handshake(
    stream: anyio.abc.ByteStream, uri: WebSocketURI, url: str, options: ClientOptions
) -> WebsocketConnection:
    """Send the upgrade request and check the response.

    Raises:
        ConnectionClosedError: the handshake failed, timed out or was rejected.
    """
    protocol = ClientProtocol(uri, max_size=options.max_size)
    # The protocol's debug lines would show message payloads.
    protocol.debug = False
    protocol.send_request(protocol.connect())
    try:
        with anyio.fail_after(options.open_timeout):
            for chunk in protocol.data_to_send():
                await stream.send(chunk)
            events = await read_response(stream, protocol)
    except TimeoutError:
        raise ConnectionClosedError(
            1006,
            f"cannot open {url}: no handshake response within {options.open_timeout} s",
        ) from None
    except STREAM_ERRORS as exc:
        raise ConnectionClosedError(
            1006, f"cannot open {url}: {describe(exc)}"
        ) from exc

    error = protocol.handshake_exc
    if isinstance(error, InvalidStatus):
        response = error.response
        logger.info("%s rejected the upgrade with HTTP %d", url, response.status_code)
        reason = rejection_reason(response.status_code, bytes(response.body))
        raise ConnectionClosedError(1006, reason)
    if error is not None:
        cause = f": {error.__cause__}" if error.__cause__ else ""
        raise ConnectionClosedError(
            1006, f"cannot open {url}: invalid handshake response: {error}{cause}"
        )

    remote = format_address(stream.extra(SocketAttribute.remote_address, ""))
    connection = WebsocketConnection(
        stream, protocol, remote, close_timeout=options.close_timeout
    )
    # Frames that arrived together with the 101 response.
    connection.handle_events(events[1:])
    await connection.flush()
    return connection


async def read_response(
    stream: anyio.abc.ByteStream, protocol: ClientProtocol
) -> list[Event]:
    """Read until the protocol parses the handshake response or fails."""
    while True:
        try:
            data = await stream.receive(READ_SIZE)
        except STREAM_ERRORS:
            protocol.receive_eof()
        else:
            protocol.receive_data(data)
        events = protocol.events_received()
        if events or protocol.handshake_exc is not None:
            return events


# Plain HTTP requests.


async def http_get(url: str, options: ClientOptions) -> HttpResponse:
    """Make a GET request with httpx; ws and wss URLs map to http and https.

    Proxy settings from the environment are ignored, as :func:`connect` ignores
    them too. The open timeout bounds the whole request, because httpx applies
    its timeout to each read and write, which a relay that sends its response
    one byte at a time would never reach.

    Raises:
        ValueError: the scheme is not http, https, ws or wss.
        ConnectionClosedError: the relay could not be reached or sent no complete
            response within the open timeout.
    """
    split = urllib.parse.urlsplit(url)
    scheme = HTTP_SCHEMES.get(split.scheme.lower())
    if scheme is None:
        raise ValueError(
            f"invalid relay URL {url!r}: the scheme must be http, https, ws or wss"
        )
    http_url = urllib.parse.urlunsplit(split._replace(scheme=scheme))
    verify: ssl.SSLContext | bool = options.ssl_context or True
    try:
        with anyio.fail_after(options.open_timeout):
            async with httpx.AsyncClient(
                verify=verify, timeout=options.open_timeout, trust_env=False
            ) as client:
                response = await client.get(http_url)
    except TimeoutError:
        raise ConnectionClosedError(
            1006, f"cannot reach {url}: no response within {options.open_timeout} s"
        ) from None
    except httpx.TransportError as exc:
        raise ConnectionClosedError(
            1006, f"cannot reach {url}: {describe(exc)}"
        ) from exc

    headers = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in response.headers.raw
    ]
    return HttpResponse(response.status_code, response.content, headers)
