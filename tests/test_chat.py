"""roupn chat: its pure parts, whole chats in one process, and the command on a pty."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, TextIO

import anyio
import pexpect
import pytest

import roupn
from roupn.chat import (
    MAX_TEXT_LENGTH,
    MAX_WRONG_CODES,
    ChatExit,
    ChatOptions,
    ChatSession,
    Command,
    CommandError,
    CommandKind,
    Roster,
    clean_text,
    describe_leave,
    format_message,
    format_time,
    name_from_data,
    parse_command,
    parse_name,
    parse_url,
)
from roupn.console import CLEAR_LINE, Console, LineEditor

TIMEOUT = 30

# Pure parts.


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("", Command(CommandKind.EMPTY)),
        ("   ", Command(CommandKind.EMPTY)),
        ("  hello there ", Command(CommandKind.SAY, "hello there")),
        ("/quit", Command(CommandKind.QUIT)),
        ("/EXIT", Command(CommandKind.QUIT)),
        ("/help", Command(CommandKind.HELP)),
        ("/users", Command(CommandKind.USERS)),
        ("/reject", Command(CommandKind.REJECT)),
        ("//etc/hosts is a file", Command(CommandKind.SAY, "/etc/hosts is a file")),
    ],
)
def test_parse_command_cases(line: str, expected: Command) -> None:
    assert parse_command(line) == expected


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/nope", "unknown command /nope: type /help"),
        ("/quit now", "/quit takes no argument"),
        ("x" * (MAX_TEXT_LENGTH + 1), f"over the limit of {MAX_TEXT_LENGTH}"),
    ],
)
def test_parse_command_errors(line: str, message: str) -> None:
    with pytest.raises(CommandError) as info:
        parse_command(line)
    assert message in str(info.value)


def test_parse_command_longest_line() -> None:
    text = "x" * MAX_TEXT_LENGTH
    assert parse_command(text) == Command(CommandKind.SAY, text)


def test_clean_text_neutralizes_terminal_control() -> None:
    assert clean_text("red \x1b[31mtext\x07") == "red \ufffd[31mtext\ufffd"
    assert clean_text("abc\u202edef") == "abcdef"
    assert clean_text("line\nbreak") == "line\ufffdbreak"
    assert clean_text("déjà vu 👋") == "déjà vu 👋"


def test_format_message_layout() -> None:
    assert format_message("09:05", "Bob", "hi all") == "[09:05] Bob: hi all"
    direct = format_message("23:59", "Ada", "psst", direct=True)
    assert direct == "[23:59] Ada (direct): psst"
    assert format_message("10:00", "Eve", "\x1b[2J") == "[10:00] Eve: \ufffd[2J"


def test_format_time_local_hours_minutes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        # 1970-01-02 13:05:59 UTC
        assert format_time((86_400 + 13 * 3600 + 5 * 60 + 59) * 1000) == "13:05"
        monkeypatch.setenv("TZ", "EST+5")
        time.tzset()
        assert format_time((86_400 + 13 * 3600 + 5 * 60) * 1000) == "08:05"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_parse_name_checks() -> None:
    assert parse_name("  Ada Lovelace ") == "Ada Lovelace"
    for bad, message in [
        ("   ", "at least one visible character"),
        ("x" * 33, "at most 32 characters"),
        ("Ada\x1b[2J", "control characters"),
    ]:
        with pytest.raises(ValueError) as info:
            parse_name(bad)
        assert message in str(info.value)


def test_parse_url_checks() -> None:
    assert parse_url("http://127.0.0.1:3000") == "http://127.0.0.1:3000"
    assert parse_url("wss://relay.example/") == "wss://relay.example/"
    with pytest.raises(ValueError) as info:
        parse_url("ftp://127.0.0.1")
    assert "start it with http://" in str(info.value)
    with pytest.raises(ValueError) as info:
        parse_url("http://")
    assert "host name is missing" in str(info.value)


def test_name_from_data_cases() -> None:
    assert name_from_data({"name": "Bob"}) == "Bob"
    assert name_from_data({"name": "  Bob \n Smith "}) == "Bob \ufffd Smith"
    assert name_from_data({"name": "x" * 100}) == "x" * 32
    assert name_from_data({"name": "   "}) is None
    assert name_from_data({"name": 7}) is None
    assert name_from_data(["Bob"]) is None
    assert name_from_data(None) is None


def test_describe_leave_reasons() -> None:
    assert describe_leave("room_closed") == (0, "the room was closed by its creator")
    status, line = describe_leave("kicked")
    assert status == 1
    assert "removed you" in line
    status, line = describe_leave("verification_timeout")
    assert status == 1
    assert "join again" in line
    status, line = describe_leave("closed with code 1006")
    assert status == 1
    assert line == "connection to the relay lost (closed with code 1006)"


def test_roster_prefers_verified_names() -> None:
    roster = Roster()
    roster.remember("aaaaaaaa-1", {"name": "Bob"})
    assert roster.name_of("aaaaaaaa-1", {"name": "Mallory"}) == "Bob"
    assert roster.name_of("bbbbbbbb-2", {"name": "Carol"}) == "Carol"
    assert roster.name_of("bbbbbbbb-2") == "Carol"
    assert roster.name_of("cccccccc-3") == "user cccccc"
    assert roster.label("aaaaaaaa-1") == "Bob (aaaaaa)"
    assert roster.label("cccccccc-3") == "user cccccc"
    assert roster.name_of(None, {"name": "Dan"}) == "Dan"


def test_roster_waiting_queue() -> None:
    roster = Roster()
    assert roster.current is None
    roster.add_waiting("first")
    roster.add_waiting("second")
    roster.add_waiting("first")
    assert roster.waiting == ["first", "second"]
    assert roster.current == "first"
    remaining = [roster.count_wrong_code("first") for _ in range(MAX_WRONG_CODES)]
    assert remaining == list(range(MAX_WRONG_CODES - 1, -1, -1))
    assert roster.stop_waiting("first")
    assert not roster.stop_waiting("first")
    assert roster.current == "second"


# The line editor.


def test_line_editor_lines_and_editing() -> None:
    editor = LineEditor()
    assert editor.feed("helo") == []
    assert editor.buffer == "helo"
    assert editor.feed("\x7flo\tyou") == []
    assert editor.buffer == "hello you"
    assert editor.feed("\n") == ["hello you"]
    assert editor.buffer == ""
    assert editor.feed("one\rtwo\nthr") == ["one", "two"]
    assert editor.buffer == "thr"


def test_line_editor_erase_keys() -> None:
    editor = LineEditor()
    editor.feed("good morning  ")
    editor.feed("\x17")
    assert editor.buffer == "good "
    editor.feed("\x15")
    assert editor.buffer == ""


def test_line_editor_drops_escape_sequences() -> None:
    editor = LineEditor()
    # Up arrow, F1 (ESC O P), Delete (ESC [ 3 ~), Alt-x, then a split sequence.
    editor.feed("a\x1b[Ab\x1bOPc\x1b[3~d\x1bxe\x1b")
    editor.feed("[1;5")
    editor.feed("Cf\x01")
    assert editor.buffer == "abcdef"


def test_line_editor_ctrl_d() -> None:
    editor = LineEditor()
    editor.feed("keep")
    assert editor.feed("\x04") == []
    assert editor.buffer == "keep"
    assert editor.feed("\n\x04ignored\n") == ["keep", None]


# The console.


@pytest.fixture
def devnull() -> Iterator[TextIO]:
    with open(os.devnull, "w", encoding="utf-8") as out:
        yield out


@pytest.fixture
def pipe() -> Iterator[tuple[TextIO, int]]:
    """A pipe: the file to read from and the descriptor to write to."""
    read_fd, write_fd = os.pipe()
    with open(read_fd, encoding="utf-8") as stdin:
        try:
            yield stdin, write_fd
        finally:
            with contextlib.suppress(OSError):
                os.close(write_fd)


@pytest.mark.anyio
async def test_console_reads_piped_lines(
    pipe: tuple[TextIO, int], devnull: TextIO
) -> None:
    stdin, write_fd = pipe
    console = Console(stdin, devnull)
    assert not console.interactive
    os.write(write_fd, b"first\nsecond\r\nth")
    with anyio.fail_after(TIMEOUT):
        assert await console.read_line() == "first"
        assert await console.read_line() == "second"
    # A character split between two reads is decoded whole.
    os.write(write_fd, "ird é".encode()[:-1])
    os.write(write_fd, "ird é".encode()[-1:])
    os.close(write_fd)
    with anyio.fail_after(TIMEOUT):
        assert await console.read_line() == "third é"
        assert await console.read_line() is None
        assert await console.read_line() is None


@pytest.fixture
def input_file(tmp_path: Path) -> Iterator[TextIO]:
    path = tmp_path / "input.txt"
    path.write_text("a line\nlast line without end", encoding="utf-8")
    with path.open(encoding="utf-8") as stdin:
        yield stdin


@pytest.mark.anyio
async def test_console_reads_regular_file(input_file: TextIO, devnull: TextIO) -> None:
    console = Console(input_file, devnull)
    with anyio.fail_after(TIMEOUT):
        lines = [await console.read_line() for _ in range(3)]
    assert lines == ["a line", "last line without end", None]


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, Any]]:
    """A pseudo-terminal: the controlling side's descriptor and the terminal file."""
    controller, terminal_fd = os.openpty()
    with open(terminal_fd, "w", encoding="utf-8") as terminal:
        try:
            yield controller, terminal
        finally:
            os.close(controller)


async def _read_until(fd: int, ending: str, seen: str = "") -> str:
    """Read the terminal output from ``fd`` until it ends with ``ending``."""
    with anyio.fail_after(TIMEOUT):
        while not seen.endswith(ending):
            await anyio.wait_readable(fd)
            seen += os.read(fd, 4096).decode()
    return seen


@pytest.mark.anyio
async def test_console_redraws_typed_line(pty_pair: tuple[int, Any]) -> None:
    controller, terminal = pty_pair
    lines: list[str | None] = []

    async def read_one(console: Console) -> None:
        lines.append(await console.read_line())

    with Console(terminal, terminal) as console:
        assert console.interactive
        await _read_until(controller, f"{CLEAR_LINE}> ")
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(read_one, console)
            os.write(controller, b"hel")
            await _read_until(controller, f"{CLEAR_LINE}> hel")

            console.show("[10:00] Bob: news")
            output = await _read_until(controller, f"{CLEAR_LINE}> hel")
            # The message is on its own line, then the prompt and the typed text.
            assert f"{CLEAR_LINE}[10:00] Bob: news\r\n{CLEAR_LINE}> hel" in output

            console.prompt = "code for Bob> "
            await _read_until(controller, f"{CLEAR_LINE}code for Bob> hel")
            os.write(controller, b"p\r")
        assert lines == ["help"]
        # The kernel does not echo, so only the console draws the typed text.
        output = await _read_until(controller, f"{CLEAR_LINE}code for Bob> ")
        assert "help" not in output


# Whole chats in one process, with a relay on 127.0.0.1.


class ScriptedConsole:
    """A console whose typed lines come from the test and whose output is kept."""

    def __init__(self) -> None:
        self.prompt = "> "
        self.shown: list[str] = []
        self._changed = anyio.Event()
        self._send, self._receive = anyio.create_memory_object_stream[str | None](10)

    def show(self, line: str) -> None:
        self.shown.append(line)
        self._changed.set()

    async def read_line(self) -> str | None:
        return await self._receive.receive()

    async def type(self, line: str | None) -> None:
        await self._send.send(line)

    async def wait_for(self, pattern: str) -> re.Match[str]:
        """Wait until a shown line matches ``pattern``; return the first match."""
        with anyio.move_on_after(TIMEOUT):
            while True:
                for line in self.shown:
                    found = re.search(pattern, line)
                    if found:
                        return found
                self._changed = anyio.Event()
                await self._changed.wait()
        shown = "\n".join(self.shown)
        raise AssertionError(f"no line matched {pattern!r} in:\n{shown}")


@pytest.fixture
async def relay_url() -> AsyncIterator[str]:
    async with roupn.create_server_connector(host="127.0.0.1", port=0) as relay:
        yield relay.url


class Chat:
    """A chat session run in a task, with its console and, once ended, its exit."""

    def __init__(self, url: str, name: str, code: str | None = None) -> None:
        options = ChatOptions(
            server_url=url, name=name, room_code=code, handle_signals=False
        )
        self.console = ScriptedConsole()
        self.session = ChatSession(options, self.console)
        self.result: ChatExit | None = None
        self.done = anyio.Event()

    async def run(self) -> None:
        self.result = await self.session.run()
        self.done.set()

    async def ended(self) -> ChatExit:
        with anyio.fail_after(TIMEOUT):
            await self.done.wait()
        assert self.result is not None
        return self.result


async def _admit_bob(
    tasks: Any, url: str, wrong_codes: int = 0
) -> tuple[Chat, Chat, str]:
    """Start Alice's room and Bob's join; type ``wrong_codes`` wrong codes first."""
    alice = Chat(url, "Alice")
    tasks.start_soon(alice.run)
    room_code = (await alice.console.wait_for(r"room (\w+) created")).group(1)
    bob = Chat(url, "Bob", room_code.lower())
    tasks.start_soon(bob.run)
    code = (await bob.console.wait_for(r"verification code: (\w+)")).group(1)
    await alice.console.wait_for(r"Bob \(\w+\) waits to join")
    assert alice.console.prompt == "code for Bob> "
    for _ in range(wrong_codes):
        await alice.console.type("WRONG" + code[-1])
    return alice, bob, code


@pytest.mark.anyio
@pytest.mark.usefixtures("quick_keys")
async def test_session_whole_chat(relay_url: str) -> None:
    async with anyio.create_task_group() as tasks:
        alice, bob, code = await _admit_bob(tasks, relay_url, wrong_codes=1)
        await alice.console.wait_for(r"wrong code 'WRONG\w' for Bob .*\(2 tries left\)")
        assert alice.console.prompt == "code for Bob> "
        await bob.console.type("too early")
        await bob.console.wait_for("not in the chat yet")

        await alice.console.type(code.lower())
        await alice.console.wait_for(r"Bob \(\w+\) was verified and is in the chat")
        await bob.console.wait_for("the creator verified you: you are in the chat")
        assert alice.console.prompt == "> "

        await bob.console.type("hello from Bob")
        await alice.console.wait_for(r"^\[\d\d:\d\d\] Bob: hello from Bob$")
        await bob.console.wait_for(r"^\[\d\d:\d\d\] Bob: hello from Bob$")
        await alice.console.type("//slash for Bob")
        await bob.console.wait_for(r"^\[\d\d:\d\d\] Alice: /slash for Bob$")
        assert not any("too early" in line for line in alice.console.shown)

        await alice.console.type("/users")
        await alice.console.wait_for(r"Alice \(\w+\): you, creator")
        await alice.console.wait_for(r"Bob \(\w+\): verified")
        await alice.console.type("/help")
        await alice.console.wait_for(r"^/reject +reject the joiner")
        await alice.console.type("/bogus")
        await alice.console.wait_for("unknown command /bogus")

        await bob.console.type(None)
        assert await bob.ended() == ChatExit(0, "you left the room")
        await alice.console.wait_for(r"Bob \(\w+\) left the room")
        await alice.console.type("/quit")
        assert await alice.ended() == ChatExit(0, "you left the room")


@pytest.mark.anyio
@pytest.mark.usefixtures("quick_keys")
async def test_session_wrong_codes_remove_joiner(relay_url: str) -> None:
    async with anyio.create_task_group() as tasks:
        alice, bob, _ = await _admit_bob(tasks, relay_url, MAX_WRONG_CODES)
        await alice.console.wait_for(f"rejected after {MAX_WRONG_CODES} wrong codes")
        result = await bob.ended()
        assert result.status == 1
        assert "removed you from the room" in result.message
        assert alice.console.prompt == "> "
        await alice.console.type(None)
        assert (await alice.ended()).status == 0


@pytest.mark.anyio
@pytest.mark.usefixtures("quick_keys")
async def test_session_reject_and_room_closed(relay_url: str) -> None:
    async with anyio.create_task_group() as tasks:
        alice, bob, code = await _admit_bob(tasks, relay_url)
        await bob.console.type("/reject")
        await bob.console.wait_for("no joiner is waiting")
        await alice.console.type(code)
        await bob.console.wait_for("you are in the chat")
        await alice.console.type("/reject")
        await alice.console.wait_for("no joiner is waiting")

        carol = Chat(relay_url, "Carol", bob.session.options.room_code)
        tasks.start_soon(carol.run)
        await bob.console.wait_for(r"someone is joining")
        await alice.console.wait_for(r"Carol \(\w+\) waits to join")
        await alice.console.type("/reject")
        await alice.console.wait_for(r"Carol \(\w+\) rejected and removed")
        assert (await carol.ended()).status == 1

        await alice.console.type(None)
        assert await bob.ended() == ChatExit(0, "the room was closed by its creator")
        assert (await alice.ended()).status == 0


@pytest.mark.anyio
@pytest.mark.usefixtures("quick_keys")
async def test_session_relay_stops() -> None:
    async with anyio.create_task_group() as tasks:
        async with roupn.create_server_connector(host="127.0.0.1", port=0) as relay:
            alice, bob, code = await _admit_bob(tasks, relay.url)
            await alice.console.type(code)
            await bob.console.wait_for("you are in the chat")
        for chat in (alice, bob):
            result = await chat.ended()
            assert result.status == 1
            assert result.message.startswith("connection to the relay lost (")


@pytest.mark.anyio
@pytest.mark.usefixtures("quick_keys")
async def test_session_room_not_found(relay_url: str) -> None:
    chat = Chat(relay_url, "Bob", " zzzzzz")
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(chat.run)
        result = await chat.ended()
    assert result == ChatExit(
        1, "room ZZZZZZ not found: check the code with its creator"
    )


# The command on a pseudo-terminal, as a user runs it.


@pytest.fixture
def relay_process() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "roupn", "serve", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + TIMEOUT
        found = None
        while found is None and time.monotonic() < deadline:
            found = re.search(r"relay listening on (\S+)", process.stderr.readline())
        assert found is not None, "the relay did not start"
        yield found.group(1), process
    finally:
        process.terminate()
        process.wait(timeout=TIMEOUT)


def spawn_chat(*arguments: str) -> pexpect.spawn:
    child = pexpect.spawn(
        sys.executable,
        ["-m", "roupn", "chat", *arguments],
        encoding="utf-8",
        timeout=TIMEOUT,
        dimensions=(24, 200),
    )
    return child


def wait_exit(child: pexpect.spawn) -> tuple[int | None, str]:
    """Wait for the child to end; return its exit status and its remaining output."""
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus, str(child.before)


def test_command_whole_chat(relay_process: tuple[str, Any]) -> None:
    url, _ = relay_process
    alice = spawn_chat("--url", url, "--name", "Alice")
    alice.expect(r"room (\w+) created")
    room_code = alice.match.group(1)
    bob = spawn_chat(
        "--url", url, "--name", "Bob", "--async-backend", "trio", room_code
    )
    try:
        bob.expect(r"verification code: (\w+) \(read it to Alice, the creator\)")
        code = bob.match.group(1)
        alice.expect(r"Bob \(\w+\) waits to join")

        alice.sendline("WRONG" + code[-1])
        alice.expect(r"wrong code 'WRONG\w' for Bob")
        alice.sendline(code)
        alice.expect(r"Bob \(\w+\) was verified and is in the chat")
        bob.expect("the creator verified you: you are in the chat")

        bob.sendline("hello from Bob")
        alice.expect(r"\[\d\d:\d\d\] Bob: hello from Bob")
        alice.sendline("hi Bob, Alice here")
        bob.expect(r"\[\d\d:\d\d\] Alice: hi Bob, Alice here")

        bob.sendeof()
        status, output = wait_exit(bob)
        assert status == 0
        assert "you left the room" in output
        assert "Traceback" not in output

        alice.expect(r"Bob \(\w+\) left the room")
        alice.sendintr()
        status, output = wait_exit(alice)
        assert status == 0
        assert "you left the room" in output
        assert "Traceback" not in output
    finally:
        alice.close(force=True)
        bob.close(force=True)


def test_command_room_not_found(relay_process: tuple[str, Any]) -> None:
    url, _ = relay_process
    child = spawn_chat("--url", url, "QQQQQQ")
    status, output = wait_exit(child)
    assert status == 1
    assert "roupn chat: room QQQQQQ not found: check the code with its creator" in (
        output
    )
    assert "Traceback" not in output


def test_command_relay_not_reachable() -> None:
    # A bound socket that does not listen refuses connections on its port.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        child = spawn_chat("--url", f"http://127.0.0.1:{port}", "--name", "Ada")
        status, output = wait_exit(child)
    assert status == 1
    assert "roupn chat: cannot create a room: cannot reach" in output
    assert "Traceback" not in output


def test_command_connection_lost(relay_process: tuple[str, Any]) -> None:
    url, relay = relay_process
    alice = spawn_chat("--url", url, "--name", "Alice", "--async-backend", "trio")
    try:
        alice.expect(r"room (\w+) created")
        relay.send_signal(signal.SIGKILL)
        relay.wait(timeout=TIMEOUT)
        status, output = wait_exit(alice)
        assert status == 1
        assert "roupn chat: connection to the relay lost" in output
        assert "Traceback" not in output
    finally:
        alice.close(force=True)
