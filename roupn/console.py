"""Terminal input and output for ``roupn chat``, keeping the typed line readable.

On a terminal the console turns off the kernel's echo and line editing and edits the
line itself (:class:`LineEditor`). A line printed while the user types then appears
above the prompt, and the half-typed line is drawn again below it. Reading waits
with :func:`anyio.wait_readable` instead of blocking the event loop, on asyncio and
trio alike. Piped or redirected input is read line by line without a prompt.
"""

from __future__ import annotations

import codecs
import enum
import os
import shutil
import sys
from collections import deque
from types import TracebackType
from typing import Any, TextIO

import anyio

__all__ = ["Console", "LineEditor"]

READ_SIZE = 4096

# Terminal control sequences (ECMA-48): go to the start of the line, erase it.
CLEAR_LINE = "\r\x1b[K"

BACKSPACE_KEYS = ("\x7f", "\b")
ERASE_LINE_KEY = "\x15"  # Ctrl-U
ERASE_WORD_KEY = "\x17"  # Ctrl-W
END_OF_INPUT_KEY = "\x04"  # Ctrl-D
ESCAPE = "\x1b"


class _Escape(enum.Enum):
    """The position of the editor inside an escape sequence sent by a special key."""

    NONE = enum.auto()
    STARTED = enum.auto()  # after ESC
    CONTROL = enum.auto()  # after ESC [, until a final byte
    SINGLE_SHIFT = enum.auto()  # after ESC O, one more character


class LineEditor:
    """The line being typed: characters in, finished lines out, with no I/O.

    Enter finishes a line, Backspace deletes a character, Ctrl-U the whole line and
    Ctrl-W the last word, and Ctrl-D on an empty line ends the input. Escape
    sequences of special keys (arrows, function keys) and other control characters
    are dropped, so they never reach a message.
    """

    def __init__(self) -> None:
        self.buffer = ""
        self._escape = _Escape.NONE

    def feed(self, text: str) -> list[str | None]:
        """Apply typed characters and return each finished line, then None at Ctrl-D.

        Characters after a Ctrl-D that ends the input are dropped.
        """
        finished: list[str | None] = []
        for char in text:
            if self._skip_escape(char):
                continue
            if char in "\r\n":
                finished.append(self.buffer)
                self.buffer = ""
            elif char in BACKSPACE_KEYS:
                self.buffer = self.buffer[:-1]
            elif char == ERASE_LINE_KEY:
                self.buffer = ""
            elif char == ERASE_WORD_KEY:
                kept = self.buffer.rstrip(" ")
                self.buffer = kept[: kept.rfind(" ") + 1]
            elif char == END_OF_INPUT_KEY:
                if not self.buffer:
                    finished.append(None)
                    return finished
            elif char == "\t":
                self.buffer += " "
            elif char == ESCAPE:
                self._escape = _Escape.STARTED
            elif char.isprintable():
                self.buffer += char
        return finished

    def _skip_escape(self, char: str) -> bool:
        """Return whether ``char`` is part of an escape sequence, and advance in it."""
        if self._escape is _Escape.NONE:
            return False
        if self._escape is _Escape.STARTED:
            if char == "[":
                self._escape = _Escape.CONTROL
            elif char == "O":
                self._escape = _Escape.SINGLE_SHIFT
            else:
                self._escape = _Escape.NONE
        elif self._escape is _Escape.SINGLE_SHIFT or "\x40" <= char <= "\x7e":
            self._escape = _Escape.NONE
        return True


class Console:
    """The chat's terminal: shows lines above a prompt and reads typed lines.

    Use it as a context manager: on a terminal, entering turns off echo and the
    kernel's line editing, and leaving restores the saved terminal settings.

    Args:
        stdin: the input file; only its file descriptor is used.
        stdout: where lines and the prompt are written.
        interactive: draw a prompt and edit lines; by default, when both ``stdin``
            and ``stdout`` are terminals.
    """

    def __init__(
        self,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        *,
        interactive: bool | None = None,
    ) -> None:
        self._fd = (stdin or sys.stdin).fileno()
        self._out = stdout or sys.stdout
        if interactive is None:
            interactive = os.isatty(self._fd) and self._out.isatty()
        self.interactive = interactive
        self._prompt = "> "
        self._editor = LineEditor()
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._lines: deque[str | None] = deque()
        self._partial = ""
        self._ended = False
        self._pollable = True
        self._saved_mode: list[Any] | None = None

    def __enter__(self) -> Console:
        if self.interactive:
            import termios

            self._saved_mode = termios.tcgetattr(self._fd)
            mode = termios.tcgetattr(self._fd)
            # Keep ISIG, so Ctrl-C still sends SIGINT, and the output settings.
            mode[3] &= ~(termios.ECHO | termios.ICANON)
            mode[6][termios.VMIN] = 1
            mode[6][termios.VTIME] = 0
            termios.tcsetattr(self._fd, termios.TCSADRAIN, mode)
            self._draw()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._saved_mode is not None:
            import termios

            self._write(CLEAR_LINE)
            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved_mode)
            self._saved_mode = None

    # Output.

    @property
    def prompt(self) -> str:
        """The text shown before the line being typed."""
        return self._prompt

    @prompt.setter
    def prompt(self, prompt: str) -> None:
        self._prompt = prompt
        if self.interactive:
            self._draw()

    def show(self, line: str) -> None:
        """Print ``line`` on a line of its own, above the prompt and typed text."""
        if self.interactive:
            self._write(f"{CLEAR_LINE}{line}\n")
            self._draw()
        else:
            self._write(f"{line}\n")

    def _draw(self) -> None:
        """Draw the prompt and the end of the typed text that fits on one row."""
        # NOTE: this counts characters, not terminal cells, so a line of wide
        # characters (such as CJK) can wrap, and then the redraw leaves a stale row.
        columns = shutil.get_terminal_size().columns
        room = max(columns - len(self._prompt) - 1, 1)
        self._write(f"{CLEAR_LINE}{self._prompt}{self._editor.buffer[-room:]}")

    def _write(self, text: str) -> None:
        # NOTE: writes block, so a terminal whose output is paused (Ctrl-S) stalls
        # the event loop once the terminal's buffer is full.
        self._out.write(text)
        self._out.flush()

    # Input.

    async def read_line(self) -> str | None:
        """Wait for the next typed line, without its line ending, or None at the end."""
        while not self._lines:
            if self._ended:
                return None
            data = await self._read()
            if not data:
                self._end_input()
            elif self.interactive:
                self._lines.extend(self._editor.feed(self._decoder.decode(data)))
                self._draw()
            else:
                self._split(self._decoder.decode(data))
        line = self._lines.popleft()
        if line is None:
            self._ended = True
        return line

    async def _read(self) -> bytes:
        if self._pollable:
            try:
                await anyio.wait_readable(self._fd)
            except OSError:
                # epoll rejects regular files and /dev/null (EPERM), but reading
                # them returns at once.
                self._pollable = False
        return os.read(self._fd, READ_SIZE)

    def _split(self, text: str) -> None:
        *lines, self._partial = (self._partial + text).split("\n")
        self._lines.extend(line.removesuffix("\r") for line in lines)

    def _end_input(self) -> None:
        rest = self._decoder.decode(b"", final=True)
        if self.interactive:
            self._lines.extend(self._editor.feed(rest))
        else:
            self._split(rest)
            if self._partial:
                self._lines.append(self._partial)
                self._partial = ""
        self._lines.append(None)
