"""The relay as an ASGI application under real uvicorn and hypercorn servers.

Each server runs in its own thread with its own event loop on 127.0.0.1, and the
clients run on the test's backend, asyncio or trio.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import fastapi
import hypercorn.asyncio
import hypercorn.config
import hypercorn.trio
import pytest
import trio
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount
from test_attacks import close_of, control, control_of, room_frame
from test_end_to_end import admit

import roupn
from roupn import Settings
from roupn.asgi import AsgiMessage, RelayApp, create_app
from roupn.asgi_connection import make_request, remote_address, route_path
from roupn.errors import ConnectionClosedError
from roupn.interfaces import Connection
from roupn.testing import EventRecorder

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("quick_keys")]

TIMEOUT = 20
SETTINGS = Settings(transport="websockets")


def bound_socket() -> socket.socket:
    """Return a TCP socket bound to a free port on 127.0.0.1."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


async def wait_until(test: Callable[[], bool], description: str) -> None:
    """Poll ``test``, which reads state that a server thread changes."""
    with anyio.move_on_after(TIMEOUT):
        while not test():  # noqa: ASYNC110 - no event crosses the threads
            await anyio.sleep(0.02)
    assert test(), f"timed out waiting for {description}"


@asynccontextmanager
async def run_uvicorn(app: Any, **options: Any) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn in a thread; yield its base URL."""
    sock = bound_socket()
    port = sock.getsockname()[1]
    # log_config=None leaves the test process's logging alone, and the plain
    # asyncio loop keeps uvicorn from installing uvloop where it is present.
    defaults = {"lifespan": "on", "log_config": None, "loop": "asyncio"}
    config = uvicorn.Config(app, **{**defaults, **options})
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True
    )
    thread.start()
    try:
        await wait_until(
            lambda: server.started or not thread.is_alive(), "uvicorn to start"
        )
        assert server.started, "uvicorn did not start; see the log above"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await anyio.to_thread.run_sync(thread.join, TIMEOUT)
        sock.close()
    assert not thread.is_alive(), "uvicorn did not stop"


@asynccontextmanager
async def run_hypercorn(app: Any, worker: str) -> AsyncIterator[str]:
    """Serve ``app`` with hypercorn's asyncio or trio worker in a thread."""
    sock = bound_socket()
    port = sock.getsockname()[1]
    config = hypercorn.config.Config()
    # hypercorn closes the descriptor when it stops.
    config.bind = [f"fd://{sock.detach()}"]
    config.loglevel = "WARNING"
    started = threading.Event()
    stop = threading.Event()

    async def wait_for_stop() -> None:
        await anyio.to_thread.run_sync(stop.wait)

    def run() -> None:
        if worker == "trio":

            async def main() -> None:
                async with trio.open_nursery() as nursery:
                    await nursery.start(
                        lambda task_status: hypercorn.trio.serve(
                            app,
                            config,
                            shutdown_trigger=wait_for_stop,
                            task_status=task_status,
                        )
                    )
                    started.set()

            trio.run(main)
        else:

            async def main() -> None:
                task = asyncio.ensure_future(
                    hypercorn.asyncio.serve(app, config, shutdown_trigger=wait_for_stop)
                )
                while not started.is_set() and not task.done():
                    # hypercorn's asyncio worker reports no start, so poll the port.
                    try:
                        _, writer = await asyncio.open_connection("127.0.0.1", port)
                    except OSError:
                        await asyncio.sleep(0.05)
                        continue
                    writer.close()
                    started.set()
                await task

            asyncio.run(main())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        await wait_until(
            lambda: started.is_set() or not thread.is_alive(), "hypercorn to start"
        )
        assert started.is_set(), "hypercorn did not start; see the log above"
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        await anyio.to_thread.run_sync(thread.join, TIMEOUT)
    assert not thread.is_alive(), "hypercorn did not stop"


async def check_session(base_url: str, settings: Settings = SETTINGS) -> str:
    """Create, join, verify and exchange room and direct messages; return the code."""
    alice = roupn.create_client_connector(server_url=base_url, settings=settings)
    bob = roupn.create_client_connector(server_url=base_url, settings=settings)
    async with alice, bob:
        alice_events = EventRecorder(alice, TIMEOUT)
        bob_events = EventRecorder(bob, TIMEOUT)
        code = await alice.create_room()
        await bob.join_room(code)
        await admit(alice, alice_events, bob, bob_events)
        assert alice.user_id is not None and bob.user_id is not None

        await alice.message_room({"text": "to the room ✓"})
        (message,) = await bob_events.wait_for("on_message")
        assert message.data["text"] == "to the room ✓"
        assert message.sender == alice.user_id
        assert not message.direct

        await bob.message_user(alice.user_id, {"text": "bob to alice"})
        (message,) = await alice_events.wait_for("on_message", lambda m: m.direct)
        assert message.data["text"] == "bob to alice"
        assert message.sender == bob.user_id

        await alice.message_user(bob.user_id, {"text": "alice to bob"})
        (message,) = await bob_events.wait_for("on_message", lambda m: m.direct)
        assert message.data["text"] == "alice to bob"

        await alice.close_room()
        await bob_events.wait_for("on_room_leave")
    return code


async def join_raw(stack: AsyncExitStack, url: str) -> tuple[Connection, str]:
    """Open a raw socket that joins a room; return it and its user id."""
    socket = await stack.enter_async_context(SETTINGS.load_transport().connect(url))
    with anyio.fail_after(TIMEOUT):
        joined = control_of(await socket.receive())
    assert joined["type"] == "_RJ"
    return socket, str(joined["userId"])


async def raw_http(base_url: str, head: str) -> bytes:
    """Send one hand-written HTTP/1.1 request and return the response.

    Reading stops after the headers of a 101 response, after the body that
    ``content-length`` announces, or at the end of the stream.
    """
    port = int(base_url.rsplit(":", 1)[1].split("/", 1)[0])
    response = b""
    with anyio.fail_after(TIMEOUT):
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(head.replace("\n", "\r\n").encode() + b"\r\n")
            while not response_complete(response):
                try:
                    response += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    break
    return response


def response_complete(response: bytes) -> bool:
    head, separator, body = response.partition(b"\r\n\r\n")
    if not separator:
        return False
    if head.startswith(b"HTTP/1.1 101 "):
        return True
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return False


def upgrade_request(path: str, origin: str | None = None) -> str:
    head = (
        f"GET {path} HTTP/1.1\n"
        "Host: 127.0.0.1\nUpgrade: websocket\nConnection: Upgrade\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\nSec-WebSocket-Version: 13\n"
    )
    if origin is not None:
        head += f"Origin: {origin}\n"
    return head


def status_and_body(response: bytes) -> tuple[int, bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@asynccontextmanager
async def relay_under_uvicorn(
    **options: Any,
) -> AsyncIterator[tuple[RelayApp, str]]:
    app = create_app(settings=SETTINGS, **options)
    async with run_uvicorn(app) as url:
        yield app, url


# Conversions from the ASGI scope.


@pytest.mark.parametrize(
    ("path", "root_path", "expected"),
    [
        ("/create-room", "", "/create-room"),
        ("/roupn/create-room", "/roupn", "/create-room"),
        ("/roupn", "/roupn", "/"),
        # A proxy that strips the prefix before the request reaches the server.
        ("/create-room", "/roupn", "/create-room"),
        # A longer path segment with the same start is not below the prefix.
        ("/roupnx/create-room", "/roupn", "/roupnx/create-room"),
    ],
)
def test_route_path(path: str, root_path: str, expected: str) -> None:
    assert route_path({"path": path, "root_path": root_path}) == expected


@pytest.mark.parametrize(
    ("client", "expected"),
    [
        (("127.0.0.1", 5000), "127.0.0.1:5000"),
        (("::1", 5000), "[::1]:5000"),
        (None, "unknown"),
    ],
)
def test_remote_address(client: tuple[str, int] | None, expected: str) -> None:
    assert remote_address({"client": client}) == expected


def test_make_request_query_and_headers() -> None:
    request = make_request(
        {
            "type": "websocket",
            "path": "/join-room",
            "query_string": b"code=ABC%20D&creator=&code=XYZ",
            "headers": [(b"origin", b"https://a.example")],
            "client": ("10.0.0.1", 1234),
        }
    )
    assert request.method == "GET"
    assert request.path == "/join-room"
    assert request.query == {"code": "XYZ", "creator": ""}
    assert request.header("Origin") == "https://a.example"
    assert request.remote_address == "10.0.0.1:1234"


@pytest.mark.parametrize("option", ["host", "port", "listen"])
def test_create_app_rejects_listener_options(option: str) -> None:
    with pytest.raises(TypeError, match=option):
        create_app(None, **{option: 1})


def test_create_app_rejects_listening_connector() -> None:
    with pytest.raises(ValueError, match="listen=False"):
        create_app(roupn.create_server_connector(port=0))


def test_create_app_rejects_connector_and_options() -> None:
    connector = roupn.create_server_connector(listen=False)
    with pytest.raises(TypeError, match="max_rooms"):
        create_app(connector, max_rooms=3)


def test_create_app_unknown_option() -> None:
    with pytest.raises(TypeError, match="max_romos"):
        create_app(max_romos=3)


async def test_lifespan_entered_once() -> None:
    app = create_app()
    async with app.lifespan():
        assert app.running
        with pytest.raises(RuntimeError, match="already running"):
            async with app.lifespan():
                pass
    assert not app.running


# Whole sessions under real servers.


@pytest.mark.parametrize("ws", ["websockets-sansio", "wsproto"])
async def test_session_under_uvicorn(ws: str) -> None:
    app = create_app(settings=SETTINGS)
    joins: list[str] = []
    app.connector.add_listener("on_user_join", lambda code, user: joins.append(user))
    async with run_uvicorn(app, ws=ws) as url:
        code = await check_session(url)
        assert len(joins) == 2
        assert code not in app.connector.get_room_codes()
    assert not app.running


async def test_native_profile_binary_frames() -> None:
    settings = Settings.native(transport="websockets")
    app = create_app(settings=settings)
    assert app.connector.state.binary
    async with run_uvicorn(app) as url:
        await check_session(url, settings)


async def test_mounted_in_starlette() -> None:
    relay = create_app(settings=SETTINGS)
    host = Starlette(
        routes=[Mount("/roupn", app=relay)],
        lifespan=relay.lifespan,
    )
    async with run_uvicorn(host) as url:
        assert relay.running
        await check_session(url + "/roupn")

        # The relay's routes exist only below the mount point.
        response = await raw_http(url, "GET /create-room HTTP/1.1\nHost: x\n")
        status, _ = status_and_body(response)
        assert status == 404
        response = await raw_http(url, "GET /roupn/create-room HTTP/1.1\nHost: x\n")
        status, body = status_and_body(response)
        assert status == 200
        assert "roomCode" in json.loads(body)
    assert not relay.running


async def test_mounted_in_fastapi_with_own_lifespan() -> None:
    relay = create_app(settings=SETTINGS)
    host_started: list[bool] = []

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        async with relay.lifespan():
            host_started.append(True)
            yield

    host = fastapi.FastAPI(lifespan=lifespan)

    @host.get("/hello")
    def hello() -> dict[str, str]:
        return {"hello": "world"}

    host.mount("/relay/v1", relay)
    async with run_uvicorn(host) as url:
        assert host_started == [True]
        await check_session(url + "/relay/v1")
        response = await raw_http(url, "GET /hello HTTP/1.1\nHost: x\n")
        assert status_and_body(response) == (200, b'{"hello":"world"}')


@pytest.mark.parametrize("worker", ["asyncio", "trio"])
async def test_session_under_hypercorn(worker: str) -> None:
    app = create_app(settings=SETTINGS)
    async with run_hypercorn(app, worker) as url:
        await check_session(url)
        assert app.running

        # hypercorn sends the relay's own rejection of an upgrade, body included.
        response = await raw_http(url, upgrade_request("/nowhere"))
        status, body = status_and_body(response)
        assert status == 404
        assert json.loads(body) == {"error": "no endpoint at /nowhere"}
    assert not app.running


async def test_without_lifespan_rejects_requests() -> None:
    app = create_app(settings=SETTINGS)
    async with run_uvicorn(app, lifespan="off") as url:
        response = await raw_http(url, "GET /create-room HTTP/1.1\nHost: x\n")
        status, body = status_and_body(response)
        assert status == 503
        assert "lifespan" in json.loads(body)["error"]

        response = await raw_http(url, upgrade_request("/join-room?code=ABCDEF"))
        status, body = status_and_body(response)
        assert status == 503
        assert "lifespan" in json.loads(body)["error"]
        assert app.connector.get_room_count() == 0


# Disconnects, limits and refusals, checked against roupn serve where they match.


async def test_client_disconnect_leaves_room() -> None:
    leaves: list[tuple[str, str]] = []
    async with relay_under_uvicorn(
        on_user_leave=lambda code, user: leaves.append((code, user))
    ) as (app, url):
        ticket = app.connector.create_room()
        code = ticket.room_code
        async with AsyncExitStack() as stack:
            _, creator_id = await join_raw(
                stack, f"{url}/join-room?code={code}&creator={ticket.creator_secret}"
            )
            async with AsyncExitStack() as joiner_stack:
                joiner, joiner_id = await join_raw(
                    joiner_stack, f"{url}/join-room?code={code}"
                )
                room = app.connector.get_room(code)
                assert room is not None
                assert room.users == (creator_id, joiner_id)
                # Drop the socket without a closing handshake.
                await joiner.abort()  # type: ignore[attr-defined]
            await wait_until(lambda: (code, joiner_id) in leaves, "the leave")
            room = app.connector.get_room(code)
            assert room is not None
            assert room.users == (creator_id,)


@asynccontextmanager
async def both_relays(**options: Any) -> AsyncIterator[list[tuple[str, Any]]]:
    """Run ``roupn serve``'s connector and the ASGI app with the same options."""
    async with (
        roupn.create_server_connector(
            host="127.0.0.1", port=0, settings=SETTINGS, **options
        ) as served,
        relay_under_uvicorn(**options) as (app, url),
    ):
        yield [(str(served.url), served), (url, app.connector)]


async def test_oversized_frames_closed_1009() -> None:
    async with both_relays(max_frame_size=10_000) as relays:
        for url, connector in relays:
            ticket = connector.create_room()
            code = ticket.room_code
            async with AsyncExitStack() as stack:
                creator, _ = await join_raw(
                    stack,
                    f"{url}/join-room?code={code}&creator={ticket.creator_secret}",
                )
                joiner, _ = await join_raw(stack, f"{url}/join-room?code={code}")
                await joiner.send(room_frame(20_000))
                closed = await close_of(joiner)
                assert closed.code == 1009, url
                assert closed.reason == "frame_too_big", url

                # A message over the 1 MiB message limit is refused before routing.
                await creator.send(room_frame(2**20))
                closed = await close_of(creator)
                assert closed.code == 1009, url
                if connector is relays[1][1]:
                    assert closed.reason.endswith("over the limit of 1048576 bytes"), (
                        closed.reason
                    )
            await check_session(url)


async def test_stalled_reader_disconnected() -> None:
    """The ASGI server's send waits for a slow client, so the relay's queue fills."""
    buffer_limit = 16 * 32_000
    leaves: list[str] = []
    async with relay_under_uvicorn(
        max_send_buffer=buffer_limit,
        on_user_leave=lambda code, user: leaves.append(user),
    ) as (app, url):
        ticket = app.connector.create_room()
        code = ticket.room_code
        async with AsyncExitStack() as stack:
            creator, _ = await join_raw(
                stack, f"{url}/join-room?code={code}&creator={ticket.creator_secret}"
            )
            flooder, flooder_id = await join_raw(stack, f"{url}/join-room?code={code}")
            stalled, stalled_id = await join_raw(stack, f"{url}/join-room?code={code}")
            for user_id in (flooder_id, stalled_id):
                await creator.send(control({"type": "_UV", "userId": user_id}))

            async def read_all(socket: Connection) -> None:
                while True:
                    await socket.receive()

            with anyio.fail_after(TIMEOUT):
                async with anyio.create_task_group() as group:
                    group.start_soon(read_all, creator)
                    group.start_soon(read_all, flooder)
                    for number in range(2000):
                        if stalled_id in leaves:
                            break
                        await flooder.send(room_frame(32_000))
                        if number % 4 == 0:
                            # Paced so that the members that read keep up.
                            await anyio.sleep(0.01)
                    group.cancel_scope.cancel()

            assert stalled_id in leaves
            room = app.connector.get_room(code)
            assert room is not None
            assert stalled_id not in room.users
            assert flooder_id in room.users
            closed = await close_of(stalled)
            assert closed.code == 1013
            assert closed.reason == "too_slow"


async def test_binary_frame_on_text_relay_closed_1003() -> None:
    async with relay_under_uvicorn() as (app, url):
        ticket = app.connector.create_room()
        async with AsyncExitStack() as stack:
            creator, _ = await join_raw(
                stack,
                f"{url}/join-room?code={ticket.room_code}"
                f"&creator={ticket.creator_secret}",
            )
            await creator.send(b"\x00binary")
            closed = await close_of(creator)
            assert closed.code == 1003
            assert closed.reason == "text_frames_only"


async def test_disallowed_origin_rejected_like_serve() -> None:
    async with both_relays(allowed_origins=["https://good.example"]) as relays:
        responses: list[dict[str, tuple[int, bytes]]] = []
        for url, connector in relays:
            code = connector.create_room().room_code
            join = upgrade_request(f"/join-room?code={code}", "https://evil.example")
            create = (
                "GET /create-room HTTP/1.1\nHost: x\nOrigin: https://evil.example\n"
            )
            good = "GET /create-room HTTP/1.1\nHost: x\nOrigin: https://good.example\n"
            responses.append(
                {
                    "join": status_and_body(await raw_http(url, join)),
                    "create": status_and_body(await raw_http(url, create)),
                }
            )
            response = await raw_http(url, good)
            assert status_and_body(response)[0] == 200
            assert b"access-control-allow-origin: https://good.example" in (
                response.lower()
            )
            good_join = upgrade_request(
                f"/join-room?code={code}", "https://good.example"
            )
            response = await raw_http(url, good_join)
            assert status_and_body(response)[0] == 101
        served, asgi = responses
        assert served["join"][0] == 403
        assert served["create"][0] == 403
        assert asgi == served


async def test_limits_use_client_address() -> None:
    async with relay_under_uvicorn(
        max_connections_per_address=1, room_creations_per_minute=2
    ) as (app, url):
        ticket = app.connector.create_room()
        code = ticket.room_code
        async with AsyncExitStack() as stack:
            await join_raw(
                stack, f"{url}/join-room?code={code}&creator={ticket.creator_secret}"
            )
            extra = await stack.enter_async_context(
                SETTINGS.load_transport().connect(f"{url}/join-room?code={code}")
            )
            closed = await close_of(extra)
            assert closed.code == 1013

        statuses = []
        for _ in range(3):
            response = await raw_http(url, "GET /create-room HTTP/1.1\nHost: x\n")
            statuses.append(status_and_body(response)[0])
        assert statuses == [200, 200, 429]


async def test_unknown_path_rejected() -> None:
    async with relay_under_uvicorn() as (_, url):
        response = await raw_http(url, "GET /nowhere HTTP/1.1\nHost: x\n")
        status, body = status_and_body(response)
        assert status == 404
        assert json.loads(body) == {"error": "no endpoint at /nowhere"}

        with pytest.raises(ConnectionClosedError, match="404"):
            async with SETTINGS.load_transport().connect(f"{url}/nowhere"):
                pass


async def test_leaving_lifespan_closes_sockets_1001() -> None:
    """Leaving lifespan() closes the room sockets, as stopping roupn serve does.

    uvicorn and hypercorn close their sockets themselves before the lifespan
    ends, so this drives the application through its ASGI interface directly.
    """
    app = create_app(settings=SETTINGS)
    to_app, app_receive = anyio.create_memory_object_stream[AsgiMessage](10)
    app_send, from_app = anyio.create_memory_object_stream[AsgiMessage](10)
    async with (
        to_app,
        app_receive,
        app_send,
        from_app,
        anyio.create_task_group() as group,
    ):
        async with app.lifespan():
            ticket = app.connector.create_room()
            query = f"code={ticket.room_code}&creator={ticket.creator_secret}"
            scope: dict[str, Any] = {
                "type": "websocket",
                "path": "/join-room",
                "root_path": "",
                "query_string": query.encode(),
                "headers": [],
                "client": ("127.0.0.1", 4000),
            }
            group.start_soon(app, scope, app_receive.receive, app_send.send)
            await to_app.send({"type": "websocket.connect"})
            with anyio.fail_after(TIMEOUT):
                accepted = await from_app.receive()
                joined = await from_app.receive()
            assert accepted == {"type": "websocket.accept"}
            assert control_of(joined["text"])["type"] == "_RJ"

        with anyio.fail_after(TIMEOUT):
            closed = await from_app.receive()
        assert closed == {
            "type": "websocket.close",
            "code": 1001,
            "reason": "relay shutting down",
        }
    assert app.connector.get_room_count() == 0


@pytest.mark.parametrize("extension", [True, False])
async def test_rejection_without_response_extension(extension: bool) -> None:
    """Servers without the HTTP response extension get a close, which means 403."""
    app = create_app(settings=SETTINGS)
    scope: dict[str, Any] = {
        "type": "websocket",
        "path": "/join-room",
        "query_string": b"code=ABCDEF",
        "headers": [],
        "client": ("127.0.0.1", 4000),
        "extensions": {"websocket.http.response": {}} if extension else {},
    }
    sent: list[AsgiMessage] = []

    async def receive() -> AsgiMessage:
        return {"type": "websocket.connect"}

    async def send(message: AsgiMessage) -> None:
        sent.append(message)

    # Without a lifespan, the relay rejects every socket.
    await app(scope, receive, send)
    if extension:
        assert [message["type"] for message in sent] == [
            "websocket.http.response.start",
            "websocket.http.response.body",
        ]
        assert sent[0]["status"] == 503
        assert "lifespan" in json.loads(sent[1]["body"])["error"]
    else:
        assert sent == [{"type": "websocket.close", "code": 1008}]


async def test_asgi_lifespan_protocol() -> None:
    app = create_app(settings=SETTINGS)
    to_app, app_receive = anyio.create_memory_object_stream[AsgiMessage](1)
    app_send, from_app = anyio.create_memory_object_stream[AsgiMessage](1)
    scope: dict[str, Any] = {"type": "lifespan", "asgi": {"version": "3.0"}}
    async with (
        to_app,
        app_receive,
        app_send,
        from_app,
        anyio.create_task_group() as group,
    ):
        group.start_soon(app, scope, app_receive.receive, app_send.send)
        with anyio.fail_after(TIMEOUT):
            await to_app.send({"type": "lifespan.startup"})
            assert await from_app.receive() == {"type": "lifespan.startup.complete"}
            assert app.running
            await to_app.send({"type": "lifespan.shutdown"})
            assert await from_app.receive() == {"type": "lifespan.shutdown.complete"}
    assert not app.running


async def test_unknown_scope_type_raises() -> None:
    app = create_app(settings=SETTINGS)

    async def receive() -> AsgiMessage:
        raise AssertionError("not called")

    async def send(message: AsgiMessage) -> None:
        raise AssertionError("not called")

    with pytest.raises(ValueError, match="'webtransport'"):
        await app({"type": "webtransport"}, receive, send)
