"""Child processes that talk in JSON lines: the relay and the load generator."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

__all__ = ["ChildError", "ChildProcess", "resident_memory"]

# The folder that contains the benchmarks package, so children can import it.
SOURCE_ROOT = Path(__file__).resolve().parents[1]

# Seconds a child has to exit after its standard input closes, and after SIGTERM.
STOP_TIMEOUT = 5.0

# Characters of a failed child's standard error quoted in the error.
STDERR_TAIL = 2000


class ChildError(RuntimeError):
    """A child process failed, exited early or did not report in time."""


class ChildProcess:
    """``python -m MODULE ARGS`` with JSON lines on standard output.

    Use it as a context manager: leaving the block closes the child's standard
    input, then terminates and at last kills it if it has not exited. With
    ``terminate`` set, it sends SIGTERM at once instead of waiting first.
    """

    def __init__(self, module: str, *args: str, terminate: bool = False) -> None:
        self.module = module
        self.terminate = terminate
        environment = os.environ.copy()
        paths = [str(SOURCE_ROOT), environment.get("PYTHONPATH", "")]
        environment["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        # Closed in stop(), which the context manager calls.
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=environment,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.process.pid

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", errors="replace")
        return text[-STDERR_TAIL:].strip() or "(no output on standard error)"

    def read(self, timeout: float) -> dict[str, Any]:
        """Return the next JSON line of the child as an object.

        Raises:
            ChildError: the child exited or sent nothing within ``timeout`` seconds.
        """
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise ChildError(
                f"{self.module} sent nothing for {timeout:.0f} s; its standard "
                f"error:\n{self._stderr_tail()}"
            ) from None
        if line is None:
            self.process.wait(timeout=STOP_TIMEOUT)
            raise ChildError(
                f"{self.module} exited with status {self.process.returncode}; its "
                f"standard error:\n{self._stderr_tail()}"
            )
        message: dict[str, Any] = json.loads(line)
        return message

    def read_event(self, event: str, timeout: float) -> dict[str, Any]:
        """Return the next line, which must report ``event``.

        Raises:
            ChildError: the child failed, timed out or reported another event.
        """
        message = self.read(timeout)
        if message.get("event") != event:
            raise ChildError(f"{self.module} sent {message!r}, expected {event!r}")
        return message

    def write(self, line: str) -> None:
        """Send one line to the child's standard input."""
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def stop(self) -> None:
        """Close the child's input and wait for it to exit, stopping it if stuck.

        The child gets SIGTERM after ``STOP_TIMEOUT`` seconds, or at once with
        ``terminate`` set, and SIGKILL after another ``STOP_TIMEOUT`` seconds.
        """
        if self.process.stdin is not None and not self.process.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()
        try:
            if self.terminate:
                self.process.terminate()
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        # The reader thread sees the end of output once the child has exited.
        self._reader.join(timeout=STOP_TIMEOUT)
        if self.process.stdout is not None and not self._reader.is_alive():
            self.process.stdout.close()
        self._stderr.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def resident_memory(pid: int) -> int | None:
    """Return the resident set size of a process in bytes, or None off Linux."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024  # reported in kB
    return None
