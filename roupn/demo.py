"""``roupn demo``: a relay and two clients in one process, every step printed."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

from .messages import ConnectionState
from .server import create_server_connector
from .session import Message
from .settings import Settings
from .synchronizer import ClientSynchronizer, create_client_synchronizer
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
        forwarded: list[str] = []
        relay.add_listener(
            "on_room_message", lambda code, user, frame: forwarded.append(frame)
        )
        options = {"server_url": relay.url, "settings": settings}
        alice = create_client_synchronizer(
            options, None, {"todos": [{"text": "buy milk", "done": False}]}
        )
        bob = create_client_synchronizer(options, None, {})
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
            await bob_events.wait_for("on_state_change")
            _show_state(step, "Bob received Alice's full sync", bob)

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

            bob.public_state["todos"].append({"text": "walk the dog", "done": False})
            await bob.send_update()
            step("Bob added a to-do and sent the change as an encrypted state update")
            await alice_events.wait_for("on_state_change")
            _show_state(step, "Alice applied it", alice)

            alice.public_state["todos"][0]["done"] = True
            await alice.send_update()
            step("Alice ticked 'buy milk'")
            await bob_events.wait_for_count("on_state_change", 2)
            _show_state(step, "Bob applied it", bob)

            room = relay.get_room(room_code)
            assert room is not None
            texts = ["Welcome, Bob!", "A direct note, only for you.", "walk the dog"]
            readable = [t for t in texts if any(_readable(t, f) for f in forwarded)]
            step(
                f"the relay forwarded {len(forwarded)} frames among {len(room.users)} "
                f"users; message texts readable in them: {readable or 'none'}"
            )

            await alice.close_room()
            await bob_events.wait_for(
                "on_connection", lambda s: s is ConnectionState.DISCONNECTED
            )
            step("Alice closed the room; Bob was disconnected")
    step("done")


def _readable(text: str, frame: str) -> bool:
    """Check whether ``text`` appears in a frame or its base64 segments decoded once."""
    if text in frame:
        return True
    for segment in frame.split("|"):
        try:
            decoded = base64.b64decode(segment.partition(":")[2], validate=True)
        except ValueError:
            continue
        if text.encode() in decoded:
            return True
    return False


def _show_state(
    step: Callable[[str], None], what: str, client: ClientSynchronizer
) -> None:
    state = json.dumps(client.public_state, ensure_ascii=False)
    step(f"{what}; shared state: {state}")


def _show(step: Callable[[str], None], who: str, message: Message) -> None:
    kind = "direct message" if message.direct else "room message"
    text = message.data.get("text")
    step(f"{who} decrypted a {kind}: {text!r} (delay {message.delay} ms)")
