"""Conformance tests for transports: a real relay, sockets, messages, close codes."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import pytest

from ..errors import ConnectionClosedError
from ..interfaces import Connection, HttpRequest, HttpResponse, Transport
from ..plugins import BackendKind
from ..settings import Settings
from .rooms import quick_cipher_suite, registered_name, run_room

__all__ = ["EchoApplication", "TransportConformance", "serving"]

HOST = "127.0.0.1"

# Upper bound in seconds for one test's waits, so a bug fails instead of hanging.
TIMEOUT = 15


class EchoApplication:
    """Echoes each message back on its socket, except on these paths.

    ``/close`` closes at once with 1008, ``/burst`` sends three messages and closes
    with 1000, ``/crash`` raises, and ``/forbidden`` is rejected with 403.
    """

    def __init__(self) -> None:
        self.requests: list[HttpRequest] = []
        self.socket_requests: list[HttpRequest] = []
        self.closed: list[ConnectionClosedError] = []
        self.socket_ended = anyio.Event()

    async def handle_http(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        if request.path == "/crash":
            raise RuntimeError("handle_http fails on purpose")
        body = json.dumps({"path": request.path, "query": request.query}).encode()
        headers = [("Content-Type", "application/json"), ("X-Echo", "yes")]
        return HttpResponse(200, body, headers)

    def check_upgrade(self, request: HttpRequest) -> HttpResponse | None:
        if request.path == "/forbidden":
            return HttpResponse(403, b"room is closed")
        return None

    async def handle_socket(self, request: HttpRequest, connection: Connection) -> None:
        self.socket_requests.append(request)
        try:
            await self._serve(request, connection)
        finally:
            self.socket_ended.set()

    async def _serve(self, request: HttpRequest, connection: Connection) -> None:
        if request.path == "/close":
            await connection.close(1008, "room_not_found")
            return
        if request.path == "/burst":
            for number in range(3):
                await connection.send(f"message {number}")
            await connection.close(1000, "done")
            return
        if request.path == "/crash":
            raise RuntimeError("handle_socket fails on purpose")
        while True:
            try:
                message = await connection.receive()
            except ConnectionClosedError as exc:
                self.closed.append(exc)
                return
            await connection.send(message)


@asynccontextmanager
async def serving(
    transport: Transport, application: EchoApplication, host: str = HOST
) -> AsyncIterator[str]:
    """Run a relay in the background on a free port and yield its base URL."""
    async with anyio.create_task_group() as task_group:
        url: str = await task_group.start(transport.serve, application, host, 0)
        yield url
        task_group.cancel_scope.cancel()


def host_and_port(url: str) -> tuple[str, int]:
    """Return the host and port of a base URL that names both."""
    split = urllib.parse.urlsplit(url)
    assert split.hostname is not None, f"no host in {url!r}"
    assert split.port is not None, f"no port in {url!r}"
    return split.hostname, split.port


@pytest.mark.anyio
class TransportConformance:
    """Tests for a :class:`~roupn.interfaces.Transport`, client and server side.

    Provide a ``transport`` fixture that returns the transport to test. Each test
    serves an echo application with it on a free port of 127.0.0.1 and connects
    to that with the same transport, on asyncio and on trio.
    """

    @pytest.fixture(params=["asyncio", "trio"])
    def anyio_backend(self, request: pytest.FixtureRequest) -> str:
        return str(request.param)

    @pytest.fixture
    def transport(self) -> Transport:
        raise NotImplementedError(
            "define a 'transport' fixture in your subclass of TransportConformance"
        )

    # Serving and HTTP requests.

    async def test_serve_reports_bound_port(self, transport: Transport) -> None:
        with anyio.fail_after(TIMEOUT):
            async with serving(transport, EchoApplication()) as url:
                host, port = host_and_port(url)
        assert host == HOST
        assert port != 0

    async def test_serve_on_used_port_raises(self, transport: Transport) -> None:
        with anyio.fail_after(TIMEOUT):
            async with serving(transport, EchoApplication()) as url:
                _host, port = host_and_port(url)
                with pytest.raises(OSError):
                    await transport.serve(EchoApplication(), HOST, port)

    async def test_http_get_returns_app_response(self, transport: Transport) -> None:
        application = EchoApplication()
        with anyio.fail_after(TIMEOUT):
            async with serving(transport, application) as url:
                response = await transport.http_get(url + "/info?room=a&room=b&empty=")

        assert response.status == 200
        assert json.loads(response.body) == {
            "path": "/info",
            "query": {"room": "b", "empty": ""},
        }
        headers = {name.lower(): value for name, value in response.headers}
        assert headers.get("x-echo") == "yes"
        assert headers.get("content-type") == "application/json"
        assert len(application.requests) == 1
        assert application.requests[0].method == "GET"
        assert application.requests[0].remote_address != ""

    async def test_http_get_handler_error_gives_500(self, transport: Transport) -> None:
        with anyio.fail_after(TIMEOUT):
            async with serving(transport, EchoApplication()) as url:
                failed = await transport.http_get(url + "/crash")
                working = await transport.http_get(url + "/after")
        assert failed.status == 500
        assert working.status == 200

    # Sockets.

    async def test_echo_text_and_binary(self, transport: Transport) -> None:
        application = EchoApplication()
        messages: list[str | bytes] = [
            "hello",
            b"\x00\xff binary",
            "",
            b"",
            "h\u00e9llo \u2713",
            "x" * 100_000,
            bytes(range(256)) * 400,
        ]
        with anyio.fail_after(TIMEOUT):
            async with (
                serving(transport, application) as url,
                transport.connect(url + "/echo?room=r1") as connection,
            ):
                for message in messages:
                    await connection.send(message)
                    echoed = await connection.receive()
                    assert type(echoed) is type(message)
                    assert echoed == message

        request = application.socket_requests[0]
        assert request.path == "/echo"
        assert request.query == {"room": "r1"}
        assert request.header("upgrade") == "websocket"

    async def test_rejected_upgrade_raises(self, transport: Transport) -> None:
        application = EchoApplication()
        with anyio.fail_after(TIMEOUT):
            async with serving(transport, application) as url:
                with pytest.raises(ConnectionClosedError) as caught:
                    async with transport.connect(url + "/forbidden"):
                        pass
        assert "403" in caught.value.reason
        assert application.socket_requests == []

    async def test_connect_rejects_unknown_scheme(self, transport: Transport) -> None:
        with pytest.raises(ValueError, match="ftp://"):
            async with transport.connect("ftp://127.0.0.1:1/"):
                pass

    async def test_many_concurrent_connections(self, transport: Transport) -> None:
        application = EchoApplication()
        echoed: dict[int, list[str | bytes]] = {}

        async def client(url: str, number: int) -> None:
            async with transport.connect(f"{url}/echo?client={number}") as connection:
                replies: list[str | bytes] = []
                for index in range(5):
                    await connection.send(f"{number}:{index}")
                    replies.append(await connection.receive())
                await connection.send(number.to_bytes(2, "big"))
                replies.append(await connection.receive())
                echoed[number] = replies

        with anyio.fail_after(TIMEOUT * 2):
            async with (
                serving(transport, application) as url,
                anyio.create_task_group() as task_group,
            ):
                for number in range(50):
                    task_group.start_soon(client, url, number)

        assert sorted(echoed) == list(range(50))
        for number, replies in echoed.items():
            expected = [f"{number}:{index}" for index in range(5)]
            assert replies == [*expected, number.to_bytes(2, "big")]
        assert len(application.socket_requests) == 50

    # Close codes.

    async def test_server_close_reaches_client(self, transport: Transport) -> None:
        with anyio.fail_after(TIMEOUT):
            async with (
                serving(transport, EchoApplication()) as url,
                transport.connect(url + "/close") as connection,
            ):
                with pytest.raises(ConnectionClosedError) as caught:
                    await connection.receive()
                with pytest.raises(ConnectionClosedError):
                    await connection.send("too late")
        assert caught.value.code == 1008
        assert caught.value.reason == "room_not_found"

    async def test_client_close_reaches_server(self, transport: Transport) -> None:
        application = EchoApplication()
        with anyio.fail_after(TIMEOUT):
            async with (
                serving(transport, application) as url,
                transport.connect(url + "/echo") as connection,
            ):
                await connection.send("ping")
                assert await connection.receive() == "ping"
                await connection.close(4000, "leaving")
                with pytest.raises(ConnectionClosedError) as caught:
                    await connection.receive()
                with pytest.raises(ConnectionClosedError):
                    await connection.send("too late")
                await application.socket_ended.wait()

        assert caught.value.code == 4000
        assert len(application.closed) == 1
        assert application.closed[0].code == 4000
        assert application.closed[0].reason == "leaving"

    async def test_messages_before_close_arrive(self, transport: Transport) -> None:
        received: list[str | bytes] = []
        with anyio.fail_after(TIMEOUT):
            async with (
                serving(transport, EchoApplication()) as url,
                transport.connect(url + "/burst") as connection,
            ):
                await anyio.sleep(0.2)
                with pytest.raises(ConnectionClosedError) as caught:
                    while True:
                        received.append(await connection.receive())
        assert received == ["message 0", "message 1", "message 2"]
        assert caught.value.code == 1000
        assert caught.value.reason == "done"

    async def test_handler_error_closes_1011(self, transport: Transport) -> None:
        with anyio.fail_after(TIMEOUT):
            async with (
                serving(transport, EchoApplication()) as url,
                transport.connect(url + "/crash") as connection,
            ):
                with pytest.raises(ConnectionClosedError) as caught:
                    await connection.receive()
                # The relay keeps serving after the failure.
                async with transport.connect(url + "/echo") as connection:
                    await connection.send("still there")
                    assert await connection.receive() == "still there"
        assert caught.value.code == 1011

    async def test_relay_shutdown_closes_1001(self, transport: Transport) -> None:
        relay_scope = anyio.CancelScope()

        async def run_relay(*, task_status: anyio.abc.TaskStatus[str]) -> None:
            with relay_scope:
                await transport.serve(
                    EchoApplication(), HOST, 0, task_status=task_status
                )

        with anyio.fail_after(TIMEOUT):
            async with anyio.create_task_group() as task_group:
                url: str = await task_group.start(run_relay)
                async with transport.connect(url + "/echo") as connection:
                    await connection.send("ping")
                    assert await connection.receive() == "ping"
                    relay_scope.cancel()
                    with pytest.raises(ConnectionClosedError) as caught:
                        await connection.receive()

            with pytest.raises(ConnectionClosedError) as unreachable:
                async with transport.connect(url + "/echo"):
                    pass
            with pytest.raises(ConnectionClosedError):
                await transport.http_get(url + "/info")

        assert caught.value.code == 1001
        assert unreachable.value.code == 1006

    async def test_close_wakes_pending_receive(self, transport: Transport) -> None:
        with anyio.fail_after(TIMEOUT):
            async with (
                serving(transport, EchoApplication()) as url,
                transport.connect(url + "/echo") as connection,
            ):
                errors: list[ConnectionClosedError] = []

                async def wait_for_message() -> None:
                    try:
                        await connection.receive()
                    except ConnectionClosedError as exc:
                        errors.append(exc)

                async with anyio.create_task_group() as task_group:
                    task_group.start_soon(wait_for_message)
                    await anyio.sleep(0.1)
                    await connection.close(4003, "stop waiting")
        assert len(errors) == 1
        assert errors[0].code == 4003

    async def test_close_rejects_invalid_code(self, transport: Transport) -> None:
        with anyio.fail_after(TIMEOUT):
            async with (
                serving(transport, EchoApplication()) as url,
                transport.connect(url + "/echo") as connection,
            ):
                with pytest.raises(ValueError, match="close code 1006"):
                    await connection.close(1006)
                with pytest.raises(ValueError, match="close reason"):
                    await connection.close(1000, "x" * 124)
                await connection.send("still open")
                assert await connection.receive() == "still open"

    # In a room.

    async def test_room_end_to_end(self, transport: Transport) -> None:
        # Skipped unless the transport is registered under its name.
        name = registered_name(BackendKind.TRANSPORT, transport)
        settings = Settings(transport=name, cipher_suite=quick_cipher_suite())
        await run_room(settings, host=HOST)
