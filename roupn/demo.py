"""``roupn demo``: a relay and two clients in one process, every step printed."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .client import create_client_connector
from .messages import ConnectionState
from .server import create_server_connector
from .session import Message
from .settings import Settings
from .testing import EventRecorder

__all__ = ["run_demo"]

STEP_TIMEOUT = 60.0


async def run_demo(settings: Settings | None = None) -> None:
    """Run a relay and two clients, Alice and Bob, through a whole room session."""
    settings = settings or Settings()
    started = time.perf_counter()

    def step(text: str) -> None:
        print(f"[{time.perf_counter() - started:5.2f}s] {text}", flush=True)

    async with create_server_connector(
        host="127.0.0.1", port=0, settings=settings
    ) as relay:
        step(f"relay listening on {relay.url}")
        alice = create_client_connector(server_url=relay.url, settings=settings)
        bob = create_client_connector(server_url=relay.url, settings=settings)
        async with alice, bob:
            alice_events, bob_events = (
                EventRecorder(alice, STEP_TIMEOUT),
                EventRecorder(bob, STEP_TIMEOUT),
            )
            step("Alice and Bob generate their keys in worker threads")

            room_code = await alice.create_room(public_data={"name": "Alice"})
            step(f"Alice created room {room_code} and is its creator")

            def check_name(request: dict[str, Any]) -> bool:
                name = request["data"].get("name") if request["data"] else None
                step(
                    f"  public data of {request['userId'][:8]} shows the name {name!r}"
                )
                return isinstance(name, str)

            await bob.join_room(
                room_code, public_data={"name": "Bob"}, verify_public_data=check_name
            )
            step(f"Bob joined room {room_code}; he waits for Alice to verify him")

            (bob_code_event,) = await bob_events.wait_for("on_user_verification_code")
            bob_code = bob_code_event["code"]
            step(
                f"Bob's screen shows the code {bob_code}; he reads it to Alice by phone"
            )
            (alice_code_event,) = await alice_events.wait_for(
                "on_user_verification_code"
            )
            assert bob.user_id is not None
            step(f"Alice's screen shows {alice_code_event['code']} for Bob")

            wrong = "A" * len(bob_code) if bob_code != "A" * len(bob_code) else "B" * 6
            matched = await alice.verify_user(bob.user_id, wrong)
            step(f"Alice types a wrong code {wrong}: accepted={matched}")
            matched = await alice.verify_user(bob.user_id, bob_code)
            step(f"Alice types {bob_code}: accepted={matched}")

            await bob_events.wait_for(
                "on_connection", lambda s: s is ConnectionState.CONNECTED
            )
            step("Bob received the room key and is CONNECTED")

            await alice.message_room({"text": "Welcome, Bob!"})
            (message,) = await bob_events.wait_for("on_message")
            _show(step, "Bob", message)

            await bob.message_room({"text": "Thanks Alice, this relay cannot read us."})
            (message,) = await alice_events.wait_for("on_message")
            _show(step, "Alice", message)

            assert alice.user_id is not None
            await bob.message_user(
                alice.user_id, {"text": "A direct note, only for you."}
            )
            (message,) = await alice_events.wait_for("on_message", lambda m: m.direct)
            _show(step, "Alice", message)

            room = relay.get_room(room_code)
            assert room is not None
            step(f"the relay sees {len(room.users)} users and no plaintext")

            await alice.close_room()
            await bob_events.wait_for(
                "on_connection", lambda s: s is ConnectionState.DISCONNECTED
            )
            step("Alice closed the room; Bob was disconnected")
    step("done")


def _show(step: Callable[[str], None], who: str, message: Message) -> None:
    kind = "direct message" if message.direct else "room message"
    text = message.data.get("text")
    step(f"{who} decrypted a {kind}: {text!r} (delay {message.delay} ms)")
