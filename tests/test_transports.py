"""The memory and websockets transports, on asyncio and trio.

The websockets transport runs on real sockets on 127.0.0.1, and a few tests also
check it against the ``websockets`` library's own client and server.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from roupn_memory import MemoryTransport
from roupn_websockets import WebsocketsTransport
from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

import roupn
from roupn.conformance import TransportConformance
from roupn.conformance.transports import EchoApplication as ConformanceEchoApplication
from roupn.conformance.transports import host_and_port, serving
from roupn.errors import ConnectionClosedError
from roupn.interfaces import Connection, HttpRequest, Transport
from roupn.plugins import BackendKind

pytestmark = pytest.mark.anyio

HOST = "127.0.0.1"

# Upper bound in seconds for one test's waits, so a bug fails instead of hanging.
TIMEOUT = 15


class EchoApplication(ConformanceEchoApplication):
    """The conformance tests' echo application, plus ``/flood``.

    ``/flood`` sends until the client stops reading and then closes with 1008.
    """

    def __init__(self) -> None:
        super().__init__()
        self.close_seconds: float | None = None

    async def _serve(self, request: HttpRequest, connection: Connection) -> None:
        if request.path == "/flood":
            await self._flood(connection)
            return
        await super()._serve(request, connection)

    async def _flood(self, connection: Connection) -> None:
        async def send_forever() -> None:
            try:
                while True:
                    await connection.send(b"x" * 65536)
            except ConnectionClosedError as exc:
                self.closed.append(exc)

        async with anyio.create_task_group() as task_group:
            task_group.start_soon(send_forever)
            # Long enough for the client's buffers to fill up.
            await anyio.sleep(0.5)
            started = time.monotonic()
            await connection.close(1008, "too slow")
            self.close_seconds = time.monotonic() - started


@pytest.fixture(params=["memory", "websockets"])
def transport_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make_transport(name: str, **options: Any) -> Transport:
    if name == "memory":
        options.pop("close_timeout", None)
        return MemoryTransport(**options)
    options.setdefault("close_timeout", 2.0)
    return WebsocketsTransport(**options)


def websocket_url(url: str) -> str:
    return "ws" + url.removeprefix("http")


async def read_until_eof(stream: anyio.abc.ByteStream) -> bytes:
    chunks = []
    while True:
        try:
            chunks.append(await stream.receive())
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return b"".join(chunks)


async def raw_exchange(url: str, data: bytes) -> bytes:
    """Send raw bytes to a relay and return everything it sends back."""
    host, port = host_and_port(url)
    async with await anyio.connect_tcp(host, port) as stream:
        await stream.send(data)
        return await read_until_eof(stream)


# Behaviour shared by both transports: the conformance tests, then options that
# the Transport interface does not name.


class TestMemoryTransport(TransportConformance):
    @pytest.fixture
    def transport(self) -> Transport:
        return make_transport("memory")


class TestWebsocketsTransport(TransportConformance):
    @pytest.fixture
    def transport(self) -> Transport:
        return make_transport("websockets")


async def test_registry_loads_transport(transport_name: str) -> None:
    transport = roupn.get_registry().load(BackendKind.TRANSPORT, transport_name)
    assert transport.name == transport_name
    expected = MemoryTransport if transport_name == "memory" else WebsocketsTransport
    assert isinstance(transport, expected)


async def test_oversized_message_closes_1009(transport_name: str) -> None:
    application = EchoApplication()
    transport = make_transport(transport_name, max_size=1024)
    with anyio.fail_after(TIMEOUT):
        async with (
            serving(transport, application) as url,
            transport.connect(url + "/echo") as connection,
        ):
            await connection.send(b"x" * 1024)
            assert await connection.receive() == b"x" * 1024
            await connection.send(b"x" * 1025)
            with pytest.raises(ConnectionClosedError) as caught:
                await connection.receive()
            await application.socket_ended.wait()

    assert caught.value.code == 1009
    assert application.closed[0].code == 1009


async def test_close_ends_send_to_stalled_peer(transport_name: str) -> None:
    application = EchoApplication()
    transport = make_transport(transport_name, close_timeout=0.5)
    with anyio.fail_after(TIMEOUT):
        async with (
            serving(transport, application) as url,
            transport.connect(url + "/flood"),
        ):
            # This client reads nothing, so the relay's sends stall.
            await application.socket_ended.wait()

    assert len(application.closed) == 1
    assert application.close_seconds is not None
    assert application.close_seconds < 3


def ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_available(), reason="no IPv6 loopback address")
async def test_ipv6_url_has_brackets(transport_name: str) -> None:
    transport = make_transport(transport_name)
    with anyio.fail_after(TIMEOUT):
        async with serving(transport, EchoApplication(), host="::1") as url:
            assert "://[::1]:" in url
            response = await transport.http_get(url + "/v6")
            async with transport.connect(url + "/echo") as connection:
                await connection.send("over IPv6")
                assert await connection.receive() == "over IPv6"
    assert response.status == 200


# The websockets transport: raw clients, timeouts, TLS and interoperability.


async def test_malformed_request_gets_400() -> None:
    application = EchoApplication()
    transport = make_transport("websockets")
    with anyio.fail_after(TIMEOUT):
        async with serving(transport, application) as url:
            garbage = await raw_exchange(url, b"NOT AN HTTP REQUEST\r\n\r\n")
            with_body = await raw_exchange(
                url,
                b"POST /info HTTP/1.1\r\nHost: relay\r\nContent-Length: 5\r\n\r\nhello",
            )
            # The relay reads only part of this body before it responds.
            large_body = await raw_exchange(
                url,
                b"POST /info HTTP/1.1\r\nHost: relay\r\nContent-Length: 500000\r\n\r\n"
                + b"x" * 500_000,
            )
            bad_version = await raw_exchange(url, b"GET / HTTP/2.0\r\n\r\n")
            long_target = await raw_exchange(
                url, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n"
            )
            response = await transport.http_get(url + "/after")

    assert garbage.startswith(b"HTTP/1.1 400 ")
    assert with_body.startswith(b"HTTP/1.1 400 ")
    assert large_body.startswith(b"HTTP/1.1 400 ")
    assert bad_version.startswith(b"HTTP/1.1 400 ")
    assert long_target.startswith(b"HTTP/1.1 414 ")
    assert response.status == 200
    assert [request.path for request in application.requests] == ["/after"]


async def test_plain_response_has_framing_headers() -> None:
    transport = make_transport("websockets")
    with anyio.fail_after(TIMEOUT):
        async with serving(transport, EchoApplication()) as url:
            raw = await raw_exchange(
                url, b"GET /raw?a=1 HTTP/1.1\r\nHost: relay\r\n\r\n"
            )
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    assert lines[0] == "HTTP/1.1 200 OK"
    assert headers["content-length"] == str(len(body))
    assert headers["connection"] == "close"
    assert json.loads(body) == {"path": "/raw", "query": {"a": "1"}}


async def test_head_response_has_no_body() -> None:
    transport = make_transport("websockets")
    with anyio.fail_after(TIMEOUT):
        async with serving(transport, EchoApplication()) as url:
            raw = await raw_exchange(url, b"HEAD /raw HTTP/1.1\r\nHost: relay\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    assert lines[0] == "HTTP/1.1 200 OK"
    assert int(headers["content-length"]) > 0
    assert body == b""


async def test_incomplete_request_is_dropped() -> None:
    transport = make_transport("websockets", request_timeout=0.3)
    with anyio.fail_after(TIMEOUT):
        async with serving(transport, EchoApplication()) as url:
            started = time.monotonic()
            answer = await raw_exchange(url, b"GET /slow HTTP/1.1\r\nHost: rel")
            elapsed = time.monotonic() - started
            response = await transport.http_get(url + "/after")
    assert answer == b""
    assert 0.2 < elapsed < 5
    assert response.status == 200


async def test_unreachable_relay_raises_1006() -> None:
    transport = make_transport("websockets", open_timeout=5.0)
    with socket.socket() as placeholder:
        placeholder.bind((HOST, 0))
        port = placeholder.getsockname()[1]
    # Nothing listens on the port once the placeholder socket is closed.
    url = f"http://{HOST}:{port}"
    with anyio.fail_after(TIMEOUT):
        with pytest.raises(ConnectionClosedError) as connect_error:
            async with transport.connect(url):
                pass
        with pytest.raises(ConnectionClosedError) as get_error:
            await transport.http_get(url)
    assert connect_error.value.code == 1006
    assert "cannot reach" in connect_error.value.reason
    assert get_error.value.code == 1006


async def test_join_with_bad_url_scheme_raises() -> None:
    with anyio.fail_after(TIMEOUT):
        async with roupn.create_client_connector(
            server_url="ftp://127.0.0.1:1"
        ) as client:
            with pytest.raises(ValueError, match="ftp"):
                await client.join_room("ABCDEF")
            assert client.state is roupn.ConnectionState.DISCONNECTED


async def test_frame_sent_with_request_is_kept() -> None:
    transport = make_transport("websockets")
    with anyio.fail_after(TIMEOUT):
        async with serving(transport, EchoApplication()) as url:
            uri = parse_uri(websocket_url(url) + "/echo")
            client = ClientProtocol(uri)
            client.send_request(client.connect())
            # A second protocol, already open, makes the frame bytes.
            early = ClientProtocol(uri, state=State.OPEN)
            early.send_text(b"early")
            host, port = host_and_port(url)
            async with await anyio.connect_tcp(host, port) as stream:
                await stream.send(
                    b"".join(client.data_to_send() + early.data_to_send())
                )
                events: list[Any] = []
                while not any(isinstance(event, Frame) for event in events):
                    client.receive_data(await stream.receive())
                    events += client.events_received()

    assert isinstance(events[0], Response)
    assert events[0].status_code == 101
    frames = [event for event in events if isinstance(event, Frame)]
    assert frames[0].opcode is Opcode.TEXT
    assert frames[0].data == b"early"


async def test_close_without_reply_times_out() -> None:
    transport = make_transport("websockets", close_timeout=0.3)
    with anyio.fail_after(TIMEOUT):
        async with serving(transport, EchoApplication()) as url:
            client = ClientProtocol(parse_uri(websocket_url(url) + "/close"))
            client.send_request(client.connect())
            host, port = host_and_port(url)
            async with await anyio.connect_tcp(host, port) as stream:
                await stream.send(b"".join(client.data_to_send()))
                started = time.monotonic()
                # This client never replies to the close frame nor closes its side.
                client.receive_data(await read_until_eof(stream))
                elapsed = time.monotonic() - started

    frames = [event for event in client.events_received() if isinstance(event, Frame)]
    assert len(frames) == 1
    assert frames[0].opcode is Opcode.CLOSE
    assert Close.parse(frames[0].data) == Close(1008, "room_not_found")
    assert 0.2 < elapsed < 5


def make_tls_contexts(folder: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """Return server and client TLS contexts for a self-signed 127.0.0.1 cert."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "roupn test relay")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )

    certificate_pem = certificate.public_bytes(serialization.Encoding.PEM)
    certificate_file = folder / "relay.pem"
    key_file = folder / "relay.key"
    certificate_file.write_bytes(certificate_pem)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )

    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(certificate_file, key_file)
    client_context = ssl.create_default_context(cadata=certificate_pem.decode())
    return server_context, client_context


async def test_tls_relay(tmp_path: Path) -> None:
    server_context, client_context = make_tls_contexts(tmp_path)
    transport = make_transport(
        "websockets", ssl_context=client_context, server_ssl_context=server_context
    )
    with anyio.fail_after(TIMEOUT):
        async with serving(transport, EchoApplication()) as url:
            assert url.startswith("https://")
            response = await transport.http_get(url + "/secure")
            async with transport.connect(url + "/echo") as connection:
                await connection.send("over TLS")
                assert await connection.receive() == "over TLS"
            async with transport.connect(url + "/close") as connection:
                with pytest.raises(ConnectionClosedError) as caught:
                    await connection.receive()
            # A client that does not trust the certificate cannot connect.
            untrusting = make_transport("websockets")
            with pytest.raises(ConnectionClosedError):
                async with untrusting.connect(url + "/echo"):
                    pass
    assert response.status == 200
    assert caught.value.code == 1008


async def test_websockets_library_client(anyio_backend: str) -> None:
    application = EchoApplication()
    transport = make_transport("websockets")
    with anyio.fail_after(TIMEOUT):
        async with serving(transport, application) as url:
            target = websocket_url(url) + "/echo"
            if anyio_backend == "asyncio":
                from websockets.asyncio.client import connect as asyncio_connect

                async with asyncio_connect(target, proxy=None) as websocket:
                    latency = await (await websocket.ping())
                    assert latency >= 0
                    await websocket.send("text")
                    assert await websocket.recv() == "text"
                    await websocket.send(b"binary")
                    assert await websocket.recv() == b"binary"
                    await websocket.close(4001, "done")
            else:
                from websockets.trio.client import connect as trio_connect

                async with trio_connect(target, proxy=None) as websocket:
                    pong = await websocket.ping()
                    await pong.wait()
                    await websocket.send("text")
                    assert await websocket.recv() == "text"
                    await websocket.send(b"binary")
                    assert await websocket.recv() == b"binary"
                    await websocket.aclose(4001, "done")
            await application.socket_ended.wait()

    assert application.closed[0].code == 4001
    assert application.closed[0].reason == "done"


async def test_websockets_library_server(anyio_backend: str) -> None:
    transport = make_transport("websockets")

    async def handler(websocket: Any) -> None:
        message = await websocket.recv()
        # Keepalive pings go out meanwhile, and a ping without a pong closes with 1011.
        await anyio.sleep(0.5)
        await websocket.send(message)
        if anyio_backend == "asyncio":
            await websocket.close(4002, "bye")
        else:
            await websocket.aclose(4002, "bye")

    async def exchange(port: int) -> ConnectionClosedError:
        async with transport.connect(f"http://{HOST}:{port}/") as connection:
            await connection.send("round trip")
            assert await connection.receive() == "round trip"
            with pytest.raises(ConnectionClosedError) as caught:
                await connection.receive()
        return caught.value

    options: dict[str, Any] = {"ping_interval": 0.05, "ping_timeout": 0.3}
    with anyio.fail_after(TIMEOUT):
        if anyio_backend == "asyncio":
            from websockets.asyncio.server import serve as asyncio_serve

            async with asyncio_serve(handler, HOST, 0, **options) as server:
                closed = await exchange(server.sockets[0].getsockname()[1])
        else:
            import trio
            from websockets.trio.server import serve as trio_serve

            async with trio.open_nursery() as nursery:
                listeners = await trio.open_tcp_listeners(0, host=HOST)
                port = listeners[0].socket.getsockname()[1]
                server = await nursery.start(
                    lambda task_status: trio_serve(
                        handler, listeners=listeners, task_status=task_status, **options
                    )
                )
                closed = await exchange(port)
                await server.aclose()
    assert closed.code == 4002
    assert closed.reason == "bye"
