"""``roupn chat``: a terminal chat in an end-to-end encrypted room.

The creator of a room admits each joiner by typing the verification code that the
joiner reads out from its own screen. A wrong code is rejected and asked for again,
and after :data:`MAX_WRONG_CODES` wrong codes the joiner is removed from the room.
Lines typed by verified members are sent as room messages
``{"text": ..., "name": ...}``.

The parts without I/O (:func:`parse_command`, :func:`format_message`,
:func:`describe_leave`, :class:`Roster`) are separate from :class:`ChatSession`,
which drives a :class:`~roupn.client.ClientConnector` and a console.
"""

from __future__ import annotations

import enum
import getpass
import logging
import signal
import sys
import time
import unicodedata
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
import anyio.abc

from .client import ClientConnector, create_client_connector
from .errors import (
    ConnectionClosedError,
    RoomFullError,
    RoomNotFoundError,
    RoupnError,
)
from .messages import ConnectionState
from .session import Message
from .settings import Settings

__all__ = [
    "ChatExit",
    "ChatOptions",
    "ChatSession",
    "Command",
    "CommandError",
    "CommandKind",
    "Roster",
    "describe_leave",
    "format_message",
    "parse_command",
    "parse_name",
    "parse_url",
    "run_chat",
]

logger = logging.getLogger(__name__)

MAX_NAME_LENGTH = 32
MAX_TEXT_LENGTH = 2000
MAX_WRONG_CODES = 3
SHORT_ID_LENGTH = 6
RELAY_SCHEMES = ("http", "https", "ws", "wss")

# Bidirectional overrides and isolates can make a line read differently from what
# was sent, so they are dropped along with the control characters.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

HELP_LINES = (
    "/help      show this help",
    "/users     list the room's members",
    "/reject    reject the joiner whose code is being asked for (creator only)",
    "/quit      leave the room (Ctrl-D and Ctrl-C leave too)",
    "//text     send a line that starts with /",
    "While a joiner waits, the creator's lines are taken as its verification code.",
)


# Commands typed by the user.


class CommandKind(enum.Enum):
    """The kind of a typed line: a text to send, or a command."""

    SAY = "say"
    EMPTY = "empty"
    HELP = "help"
    USERS = "users"
    REJECT = "reject"
    QUIT = "quit"


COMMANDS = {
    "help": CommandKind.HELP,
    "users": CommandKind.USERS,
    "reject": CommandKind.REJECT,
    "quit": CommandKind.QUIT,
    "exit": CommandKind.QUIT,
}


@dataclass(frozen=True, slots=True)
class Command:
    """A parsed input line: its kind and, for ``SAY``, the text."""

    kind: CommandKind
    text: str = ""


class CommandError(ValueError):
    """A typed line is an unknown command or a message that cannot be sent."""


def parse_command(line: str) -> Command:
    """Parse one typed line into a command or a text to send.

    Raises:
        CommandError: the line names an unknown command, or is too long to send.
    """
    text = line.strip()
    if not text:
        return Command(CommandKind.EMPTY)
    if text.startswith("//"):
        text = text[1:]
    elif text.startswith("/"):
        name, _, rest = text[1:].partition(" ")
        kind = COMMANDS.get(name.lower())
        if kind is None:
            raise CommandError(f"unknown command /{name}: type /help for the commands")
        if rest.strip():
            raise CommandError(f"/{name} takes no argument, but got {rest.strip()!r}")
        return Command(kind)
    if len(text) > MAX_TEXT_LENGTH:
        raise CommandError(
            f"the line has {len(text)} characters, over the limit of "
            f"{MAX_TEXT_LENGTH}: send it in several lines"
        )
    return Command(CommandKind.SAY, text)


# Formatting.


def clean_text(text: str) -> str:
    """Replace control characters so that another member cannot drive the terminal.

    Bidirectional controls are dropped.
    """
    kept = []
    for char in text:
        if char in _BIDI_CONTROLS:
            continue
        kept.append("\ufffd" if unicodedata.category(char) == "Cc" else char)
    return "".join(kept)


def parse_name(text: str) -> str:
    """Check a display name given on the command line and return it stripped.

    Raises:
        ValueError: the name is empty, too long or has control characters.
    """
    name = text.strip()
    if not name:
        raise ValueError("invalid name: give at least one visible character")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(
            f"invalid name {name!r}: use at most {MAX_NAME_LENGTH} characters"
        )
    if clean_text(name) != name:
        raise ValueError(f"invalid name {name!r}: remove the control characters")
    return name


def parse_url(text: str) -> str:
    """Check a relay URL given on the command line and return it.

    Raises:
        ValueError: the scheme is not http, https, ws or wss, the host is
            missing, or the port is invalid.
    """
    split = urllib.parse.urlsplit(text.strip())
    if split.scheme.lower() not in RELAY_SCHEMES:
        raise ValueError(
            f"invalid relay URL {text!r}: start it with http://, https://, ws:// "
            "or wss://, such as http://127.0.0.1:3000"
        )
    if not split.hostname:
        raise ValueError(f"invalid relay URL {text!r}: the host name is missing")
    try:
        _ = split.port  # reading the port checks it
    except ValueError:
        raise ValueError(
            f"invalid relay URL {text!r}: the port must be a number from 0 to 65535"
        ) from None
    return text.strip()


def without_password(url: str) -> str:
    """Return ``url`` with the password of its user part, if any, masked."""
    split = urllib.parse.urlsplit(url)
    if split.password is None:
        return url
    host = split.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(
        split._replace(netloc=f"{split.username}:***@{host}")
    )


def parse_room_code(text: str) -> str:
    """Check a room code given on the command line and return it in capitals.

    Raises:
        ValueError: the code is empty or has characters other than letters and digits.
    """
    code = text.strip().upper()
    if not code or not code.isascii() or not code.isalnum():
        raise ValueError(
            f"invalid room code {text!r}: a room code is letters and digits, "
            "such as the six characters the room's creator saw"
        )
    return code


def default_name() -> str:
    """Return the login name, or ``guest`` when it cannot be found."""
    try:
        return parse_name(getpass.getuser())
    except (OSError, KeyError, ValueError):
        return "guest"


def name_from_data(data: Any) -> str | None:
    """Return the display name in a member's public data or message, if usable."""
    name = data.get("name") if isinstance(data, dict) else None
    if not isinstance(name, str):
        return None
    name = " ".join(clean_text(name).split())[:MAX_NAME_LENGTH]
    return name or None


def format_time(timestamp_ms: float) -> str:
    """Format a time in milliseconds since the epoch as local ``HH:MM``."""
    return time.strftime("%H:%M", time.localtime(timestamp_ms / 1000))


def format_message(clock: str, name: str, text: str, *, direct: bool = False) -> str:
    """Format a chat line as ``[HH:MM] name: text``."""
    marker = " (direct)" if direct else ""
    return f"[{clock}] {name}{marker}: {clean_text(text)}"


def describe_leave(reason: str) -> tuple[int, str]:
    """Return the exit status and the line to show when the relay ended the session.

    ``reason`` is the close reason of the room socket.
    """
    if reason == "room_closed":
        return 0, "the room was closed by its creator"
    if reason == "kicked":
        return 1, "the room's creator removed you from the room"
    if reason == "verification_timeout":
        return 1, "the creator did not verify you in time: join again to get a new code"
    if reason == "idle_timeout":
        return 1, "the relay closed the connection because nothing was sent for long"
    return 1, f"connection to the relay lost ({reason})"


def short_id(user_id: str) -> str:
    """Return the start of a user id, enough to tell members apart on screen."""
    return user_id[:SHORT_ID_LENGTH]


# Room members.


@dataclass(slots=True)
class Roster:
    """The members' names and the joiners waiting for the creator to type a code.

    Names from the key exchange (``public_data``) win over names that messages
    claim, because only the first passed through verification.
    """

    verified_names: dict[str, str] = field(default_factory=dict)
    claimed_names: dict[str, str] = field(default_factory=dict)
    waiting: list[str] = field(default_factory=list)
    wrong_codes: dict[str, int] = field(default_factory=dict)

    def remember(self, user_id: str, public_data: Any) -> None:
        """Store the name a member sent in its key exchange."""
        name = name_from_data(public_data)
        if name is not None:
            self.verified_names[user_id] = name

    def name_of(self, user_id: str | None, message: Any = None) -> str:
        """Return the name to show for a member, learning one a message claims."""
        if user_id is None:
            return name_from_data(message) or "unknown sender"
        if user_id in self.verified_names:
            return self.verified_names[user_id]
        claimed = name_from_data(message)
        if claimed is not None:
            self.claimed_names[user_id] = claimed
        if user_id in self.claimed_names:
            return self.claimed_names[user_id]
        return f"user {short_id(user_id)}"

    def chat_name(self, user_id: str | None, message: Any, own_name: str) -> str:
        """Return the sender name to show on a chat line.

        A name that only the message claims, or that this user or another member
        also goes by, comes with the start of the sender's id, so that no member
        can pass for another one.
        """
        name = self.name_of(user_id, message)
        if user_id is None:
            return name
        names = {**self.claimed_names, **self.verified_names}
        shared = name == own_name or any(
            other != user_id and other_name == name
            for other, other_name in names.items()
        )
        if user_id in self.verified_names and not shared:
            return name
        return self.label(user_id)

    def label(self, user_id: str) -> str:
        """Return a member's name with the start of its id, for state lines."""
        name = self.name_of(user_id)
        if name.endswith(short_id(user_id)):
            return name
        return f"{name} ({short_id(user_id)})"

    @property
    def current(self) -> str | None:
        """The joiner whose code the creator types next."""
        return self.waiting[0] if self.waiting else None

    def add_waiting(self, user_id: str) -> None:
        """Queue a joiner whose verification code the creator must type."""
        if user_id not in self.waiting:
            self.waiting.append(user_id)
            self.wrong_codes[user_id] = 0

    def stop_waiting(self, user_id: str) -> bool:
        """Take a joiner off the queue and return whether it was waiting."""
        self.wrong_codes.pop(user_id, None)
        if user_id in self.waiting:
            self.waiting.remove(user_id)
            return True
        return False

    def count_wrong_code(self, user_id: str) -> int:
        """Count a wrong code typed for a joiner and return how many tries remain."""
        self.wrong_codes[user_id] = self.wrong_codes.get(user_id, 0) + 1
        return max(MAX_WRONG_CODES - self.wrong_codes[user_id], 0)


# The session.


class ChatConsole(Protocol):
    """The terminal of a chat, such as :class:`roupn.console.Console`."""

    prompt: str

    def show(self, line: str) -> None:
        """Print a line above the prompt."""

    async def read_line(self) -> str | None:
        """Return the next typed line, or None at the end of the input."""


@dataclass(frozen=True, slots=True)
class ChatOptions:
    """The relay, display name and room of one ``roupn chat``.

    ``room_code`` is None to create a room, or the code of a room to join.
    """

    server_url: str
    name: str
    room_code: str | None = None
    settings: Settings = field(default_factory=Settings)
    handle_signals: bool = True


@dataclass(frozen=True, slots=True)
class ChatExit:
    """The end of a chat: the exit status and the last line to show."""

    status: int
    message: str


class ChatSession:
    """One chat: a client in one room, a console, and the lines between them."""

    def __init__(
        self,
        options: ChatOptions,
        console: ChatConsole,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.options = options
        self.console = console
        self.roster = Roster()
        self._clock = clock
        self._client: ClientConnector | None = None
        self._finished = anyio.Event()
        self._result = ChatExit(0, "you left the room")
        self._leaving = False

    def say(self, line: str) -> None:
        """Show a state line.

        Control characters are replaced because error messages and close reasons
        may contain text from the relay.
        """
        self.console.show(f"* {clean_text(line)}")

    def finish(self, status: int, message: str) -> None:
        """End the chat with an exit status, unless it already ended."""
        if not self._finished.is_set():
            self._result = ChatExit(status, clean_text(message))
            self._leaving = True
            self._finished.set()

    async def run(self) -> ChatExit:
        """Create or join the room and chat until the user leaves or the room ends."""
        try:
            client = create_client_connector(
                server_url=self.options.server_url, settings=self.options.settings
            )
        except (RoupnError, ValueError) as exc:
            return ChatExit(1, f"cannot start the client: {exc}")
        self._client = client
        self._listen(client)
        async with client, anyio.create_task_group() as tasks:
            if self.options.handle_signals:
                tasks.start_soon(self._stop_on_signal)
            tasks.start_soon(self._enter_and_read, client)
            await self._finished.wait()
            tasks.cancel_scope.cancel()
        return self._result

    async def _stop_on_signal(self) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                self.finish(0, "you left the room")
                return

    async def _enter_and_read(self, client: ClientConnector) -> None:
        if await self._enter(client):
            await self._read_input(client)

    async def _enter(self, client: ClientConnector) -> bool:
        """Create or join the room, or end the chat and return False on failure."""
        public_data = {"name": self.options.name}
        code = self.options.room_code
        try:
            if code is None:
                code = await client.create_room(
                    public_data=public_data, verify_public_data=self._check_data
                )
            else:
                code = code.strip().upper()
                await client.join_room(
                    code, public_data=public_data, verify_public_data=self._check_data
                )
        except RoomNotFoundError:
            self.finish(1, f"room {code} not found: check the code with its creator")
        except RoomFullError:
            self.finish(1, f"room {code} is full: ask its creator to make room")
        except ConnectionClosedError as exc:
            action = "create a room" if code is None else f"join room {code}"
            self.finish(1, f"cannot {action}: {exc.reason or exc}")
        except (RoupnError, ValueError) as exc:
            action = "create a room" if code is None else f"join room {code}"
            self.finish(1, f"cannot {action}: {exc}")
        return not self._finished.is_set()

    def _check_data(self, request: dict[str, Any]) -> bool:
        self.roster.remember(request["userId"], request["data"])
        return True

    # Typed lines.

    async def _read_input(self, client: ClientConnector) -> None:
        while True:
            line = await self.console.read_line()
            if line is None:
                self.finish(0, "you left the room")
                return
            try:
                command = parse_command(line)
            except CommandError as exc:
                self.say(str(exc))
                continue
            try:
                await self.handle(client, command)
            except RoupnError as exc:
                self.say(f"failed: {exc}")

    async def handle(self, client: ClientConnector, command: Command) -> None:
        """Carry out one typed command."""
        if command.kind is CommandKind.QUIT:
            self.finish(0, "you left the room")
        elif command.kind is CommandKind.HELP:
            for line in HELP_LINES:
                self.console.show(line)
        elif command.kind is CommandKind.USERS:
            self._list_users(client)
        elif command.kind is CommandKind.REJECT:
            await self._reject(client)
        elif command.kind is CommandKind.SAY:
            joiner = self.roster.current if client.is_creator else None
            if joiner is not None:
                await self._check_code(client, joiner, command.text)
            else:
                await self._send(client, command.text)

    async def _send(self, client: ClientConnector, text: str) -> None:
        if client.state is not ConnectionState.CONNECTED:
            self.say("not in the chat yet: wait until the creator verifies you")
            return
        await client.message_room({"text": text, "name": self.options.name})
        clock = format_time(self._clock() * 1000)
        self.console.show(format_message(clock, self.options.name, text))

    async def _check_code(
        self, client: ClientConnector, joiner: str, code: str
    ) -> None:
        label = self.roster.label(joiner)
        if await client.verify_user(joiner, code):
            self.roster.stop_waiting(joiner)
            self.say(f"code accepted for {label}")
            self._update_prompt()
            return
        left = self.roster.count_wrong_code(joiner)
        if left:
            self.say(
                f"wrong code {code!r} for {label}: it does not match their screen. "
                f"Type it again ({left} {'try' if left == 1 else 'tries'} left) "
                "or /reject"
            )
            return
        self.roster.stop_waiting(joiner)
        await client.kick_user(joiner)
        self.say(f"{label} rejected after {MAX_WRONG_CODES} wrong codes and removed")
        self._update_prompt()

    async def _reject(self, client: ClientConnector) -> None:
        joiner = self.roster.current if client.is_creator else None
        if joiner is None:
            self.say("no joiner is waiting for verification")
            return
        self.roster.stop_waiting(joiner)
        await client.kick_user(joiner)
        self.say(f"{self.roster.label(joiner)} rejected and removed from the room")
        self._update_prompt()

    def _list_users(self, client: ClientConnector) -> None:
        verified = client.verified_users
        for user_id in client.users:
            notes = []
            if user_id == client.user_id:
                notes.append("you")
            if user_id == client.creator_id:
                notes.append("creator")
            if user_id in self.roster.waiting:
                notes.append("waiting for your code")
            elif user_id in verified:
                notes.append("verified")
            self.console.show(f"  {self.roster.label(user_id)}: {', '.join(notes)}")

    def _update_prompt(self) -> None:
        joiner = self.roster.current
        if joiner is None:
            self.console.prompt = "> "
        else:
            self.console.prompt = f"code for {self.roster.label(joiner)}> "

    # Client events.

    def _listen(self, client: ClientConnector) -> None:
        client.add_listener("on_connection", self._on_connection)
        client.add_listener("on_error", self._on_error)
        client.add_listener("on_message", self._on_message)
        client.add_listener("on_room_leave", self._on_room_leave)
        client.add_listener("on_user_join", self._on_user_join)
        client.add_listener("on_user_leave", self._on_user_leave)
        client.add_listener("on_user_verified", self._on_user_verified)
        client.add_listener("on_user_verification_code", self._on_code)

    def _on_connection(self, state: ConnectionState) -> None:
        client = self._client
        assert client is not None
        if client.user_id is not None:
            self.roster.remember(client.user_id, {"name": self.options.name})
        if state is ConnectionState.CONNECTING:
            url = without_password(self.options.server_url)
            self.say(f"connecting to the relay at {url}")
        elif state is ConnectionState.PENDING_VERIFICATION:
            self.say(
                f"joined room {client.room_code}, exchanging keys with its creator"
            )
        elif state is ConnectionState.CONNECTED and client.is_creator:
            self.say(
                f"room {client.room_code} created: give this code to the people you "
                "invite (/help lists the commands)"
            )
        elif state is ConnectionState.CONNECTED:
            self.say("the creator verified you: you are in the chat")

    def _on_error(self, error: Exception) -> None:
        # The room leave event that follows a lost connection reports it.
        if not isinstance(error, ConnectionClosedError):
            self.say(f"warning: {error}")

    def _on_message(self, message: Message) -> None:
        text = message.data.get("text")
        if not isinstance(text, str):
            logger.debug("a message without text was ignored")
            return
        name = self.roster.chat_name(message.sender, message.data, self.options.name)
        line = format_message(
            format_time(message.adjusted), name, text, direct=message.direct
        )
        self.console.show(line)

    def _on_room_leave(self, info: dict[str, Any]) -> None:
        if not self._leaving:
            self.finish(*describe_leave(str(info.get("reason", ""))))

    def _on_user_join(self, user_id: str) -> None:
        client = self._client
        if client is not None and client.is_creator:
            self.say(f"a joiner connected ({short_id(user_id)}), exchanging keys")
        else:
            self.say(f"someone is joining ({short_id(user_id)})")

    def _on_user_leave(self, user_id: str) -> None:
        label = self.roster.label(user_id)
        client = self._client
        if self.roster.stop_waiting(user_id):
            self.say(f"{label} left before being verified")
            self._update_prompt()
        elif client is not None and user_id == client.creator_id:
            self.say(f"{label}, the creator, left the room")
        else:
            self.say(f"{label} left the room")

    def _on_user_verified(self, user_id: str) -> None:
        client = self._client
        if client is not None and user_id != client.user_id:
            self.say(f"{self.roster.label(user_id)} was verified and is in the chat")

    def _on_code(self, event: dict[str, Any]) -> None:
        client = self._client
        assert client is not None
        user_id, code = event["userId"], event["code"]
        label = self.roster.label(user_id)
        if client.is_creator:
            self.roster.add_waiting(user_id)
            self.say(
                f"{label} waits to join: ask them for the verification code on "
                "their screen and type it here, or /reject"
            )
            self._update_prompt()
        else:
            creator = self.roster.name_of(user_id)
            self.say(f"verification code: {code} (read it to {creator}, the creator)")


async def run_chat(options: ChatOptions, console: ChatConsole) -> ChatExit:
    """Run one chat until the user leaves or the room ends."""
    return await ChatSession(options, console).run()


def run_chat_command(options: ChatOptions, backend: str = "asyncio") -> int:
    """Run ``roupn chat`` on the terminal and return its exit status."""
    from .console import Console

    if sys.platform == "win32":
        print(
            "roupn chat: not supported on Windows: run it on Linux or macOS",
            file=sys.stderr,
        )
        return 1
    try:
        with Console() as console:
            result = anyio.run(run_chat, options, console, backend=backend)
    except KeyboardInterrupt:
        # Ctrl-C before the signal handler was set, while the client started.
        result = ChatExit(0, "stopped")
    if result.status == 0:
        print(result.message)
    else:
        print(f"roupn chat: {result.message}", file=sys.stderr)
    return result.status
