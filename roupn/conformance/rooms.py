"""A whole room on the memory transport, run with the backend under test."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from ..changes import copy_json
from ..client import create_client_connector
from ..errors import RoupnError
from ..messages import ConnectionState
from ..plugins import BackendKind, get_registry
from ..server import create_server_connector
from ..settings import Settings
from ..synchronizer import create_client_synchronizer
from ..testing import EventRecorder

__all__ = ["registered_name", "run_room", "run_shared_document"]

TIMEOUT = 60


def registered_name(kind: BackendKind, backend: Any) -> str:
    """Return the name ``backend`` is registered under, or skip the test.

    A room chooses its backends by name, so only a backend registered through the
    ``roupn`` entry point group can run in one.
    """
    name = backend.name
    registry = get_registry()
    if name not in registry.names(kind):
        pytest.skip(
            f"no {kind.value} backend {name!r} is registered: register it through "
            "the 'roupn' entry point group to run it in a room"
        )
    try:
        registered = registry.load(kind, name)
    except RoupnError as exc:
        pytest.skip(
            f"the registered {kind.value} backend {name!r} fails to load: {exc}"
        )
    if type(registered) is not type(backend):
        pytest.skip(
            f"the {kind.value} backend registered as {name!r} is a "
            f"{type(registered).__name__}, not the {type(backend).__name__} under test"
        )
    return str(name)


def quick_cipher_suite() -> str:
    """Return ``nacl`` where PyNaCl is installed, for fast keys, else the default."""
    nacl = get_registry().backends.get(BackendKind.CIPHER_SUITE, {}).get("nacl")
    return "nacl" if nacl is not None and nacl.usable else Settings().cipher_suite


async def run_room(settings: Settings, host: str = "conformance") -> None:
    """Create a room, admit a joiner, and exchange room and direct messages.

    The relay runs in this process on ``host`` and a free port.
    """
    with anyio.fail_after(TIMEOUT):
        async with create_server_connector(
            host=host, port=0, settings=settings
        ) as relay:
            alice = create_client_connector(server_url=relay.url, settings=settings)
            bob = create_client_connector(server_url=relay.url, settings=settings)
            async with alice, bob:
                alice_events = EventRecorder(alice, TIMEOUT)
                bob_events = EventRecorder(bob, TIMEOUT)
                code = await alice.create_room(public_data={"name": "Alice"})
                await bob.join_room(code, public_data={"name": "Bob"})
                (shown,) = await bob_events.wait_for("on_user_verification_code")
                # With a suite that commits to keys, the creator's code comes last.
                await alice_events.wait_for("on_user_verification_code")
                assert bob.user_id is not None
                assert alice.user_id is not None
                assert await alice.verify_user(bob.user_id, shown["code"])
                await bob_events.wait_for(
                    "on_connection", lambda state: state is ConnectionState.CONNECTED
                )

                sent = {"text": "h\u00e9llo \U0001f600", "numbers": [1, 2.5, None]}
                await alice.message_room(sent)
                (message,) = await bob_events.wait_for("on_message")
                assert message.data["text"] == sent["text"]
                assert message.data["numbers"] == sent["numbers"]
                assert not message.direct

                await bob.message_user(alice.user_id, {"text": "direct"})
                (message,) = await alice_events.wait_for("on_message")
                assert message.data["text"] == "direct"
                assert message.direct
                assert alice_events.of("on_error") == []
                assert bob_events.of("on_error") == []


async def run_shared_document(settings: Settings) -> None:
    """Edit a shared document on two synchronizers and check that they agree."""
    with anyio.fail_after(TIMEOUT):
        async with create_server_connector(
            host="conformance", port=0, settings=settings
        ) as relay:
            options = {"server_url": relay.url, "settings": settings}
            start = {"todos": [{"text": "buy milk", "done": False}], "title": "list"}
            alice = create_client_synchronizer(options, None, copy_json(start))
            bob = create_client_synchronizer(options, None, {})
            async with alice, bob:
                alice_events = EventRecorder(alice, TIMEOUT)
                bob_events = EventRecorder(bob, TIMEOUT)
                code = await alice.create_room()
                await bob.join_room(code)
                (shown,) = await bob_events.wait_for("on_user_verification_code")
                # With a suite that commits to keys, the creator's code comes last.
                await alice_events.wait_for("on_user_verification_code")
                assert bob.user_id is not None
                assert await alice.verify_user(bob.user_id, shown["code"])
                await bob_events.wait_for("on_state_change")
                assert bob.public_state == start

                bob.public_state["todos"].append({"text": "walk dog", "done": False})
                bob.public_state["todos"][0]["done"] = True
                await bob.send_update()
                await alice_events.wait_for("on_state_change")
                assert alice.public_state == bob.public_state

                # Members order updates by the sender's time in milliseconds, then
                # by sender id, so an update made in the same millisecond as the one
                # it builds on may be ordered before it. The pause keeps this
                # test's updates in the order they were made.
                await anyio.sleep(0.01)
                seen = len(bob_events.of("on_state_change"))
                del alice.public_state["title"]
                alice.public_state["todos"].pop(0)
                await alice.send_update()
                await bob_events.wait_for_count("on_state_change", seen + 1)
                assert bob.public_state == alice.public_state
                assert bob.public_state == {
                    "todos": [{"text": "walk dog", "done": False}]
                }
