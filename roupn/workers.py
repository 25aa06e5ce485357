"""Several relay processes on one port, and the signals that stop a relay.

``roupn serve --workers N`` runs a supervising process that starts N worker
processes. Each worker is a whole relay that listens on the same port with
``SO_REUSEPORT``, so that Linux spreads new connections over them. The supervisor
restarts a worker that exits, and stops them all on SIGTERM or Ctrl-C. Each
worker reads its standard input, a pipe from the supervisor, and stops when the
pipe closes, so workers also stop when the supervisor is killed.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence

import anyio
import anyio.abc

from .server import ServerConnector

__all__ = [
    "LOCAL_BACKPLANE",
    "Supervisor",
    "check_worker_options",
    "reserve_port",
    "serve_until_stopped",
    "worker_command",
]

logger = logging.getLogger(__name__)

# The backplane that keeps rooms in the memory of one process.
LOCAL_BACKPLANE = "memory"

# Seconds between a worker's exit and its restart.
RESTART_DELAY = 1.0

# After more exits than this within the window, the supervisor stops every
# worker, because one that keeps exiting is probably failing at start.
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0

# Seconds a worker gets to stop after SIGTERM, on top of its shutdown delay,
# before the supervisor kills it.
STOP_TIMEOUT = 10.0


def check_worker_options(
    workers: int, backplane: str, platform: str = sys.platform
) -> str | None:
    """Return why ``workers`` processes cannot serve with ``backplane``, or None."""
    if workers <= 1:
        return None
    if backplane == LOCAL_BACKPLANE:
        return (
            f"--workers {workers} needs a shared backplane: with the "
            f"{LOCAL_BACKPLANE!r} backplane each worker keeps its own rooms, so a "
            "join that reaches another worker finds no room. Choose a shared "
            "backplane such as --backplane redis --redis-url URL, or use --workers 1"
        )
    if platform != "linux":
        return (
            f"--workers {workers} is only supported on Linux, where SO_REUSEPORT "
            f"spreads connections over the workers; this system is {platform!r}. "
            "Run one relay per port behind a load balancer instead"
        )
    return None


def reserve_port(host: str, port: int) -> socket.socket:
    """Bind and return a ``SO_REUSEPORT`` socket that reserves the workers' port.

    The socket never listens, so it takes no connections, but it keeps the port
    while workers restart. Port 0 picks a free port, which the socket then names.

    Raises:
        OSError: the port is taken by a socket without ``SO_REUSEPORT``, or the
            host does not resolve.
    """
    family, kind, protocol, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    reserved = socket.socket(family, kind, protocol)
    try:
        reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        reserved.bind(address)
    except OSError:
        reserved.close()
        raise
    return reserved


def worker_command(
    argv: Sequence[str], worker_id: int, port: int, metrics_port: int | None = None
) -> list[str]:
    """Return the command line of one worker: the same options, one process.

    The last occurrence of an option wins, so the appended ``--port`` replaces
    a port of 0 with the port the supervisor reserved. Worker N serves metrics
    on ``metrics_port`` plus N, or on a free port if ``metrics_port`` is 0.
    """
    command = [sys.executable, "-m", "roupn", *argv, "--port", str(port)]
    if metrics_port:
        command += ["--metrics-port", str(metrics_port + worker_id)]
    return [*command, "--worker-id", str(worker_id)]


class Supervisor:
    """Starts worker processes, restarts those that exit, and stops them all.

    Args:
        command: returns the command line of the worker with this number.
        workers: how many workers to run.
        stop_timeout: seconds a worker gets to exit after SIGTERM before it is
            killed.
    """

    def __init__(
        self,
        command: Callable[[int], list[str]],
        workers: int,
        *,
        stop_timeout: float = STOP_TIMEOUT,
    ) -> None:
        self._command = command
        self.workers = workers
        self.stop_timeout = stop_timeout
        self._processes: dict[int, anyio.abc.Process] = {}
        self._restarts: deque[float] = deque()
        self._stopping = False
        self.exit_status = 0

    async def run(self) -> int:
        """Run the workers until SIGTERM, SIGINT or too many restarts.

        Returns the exit status: 0 after SIGTERM, 130 after SIGINT, 1 when
        workers kept exiting.
        """
        self._stop_requested = anyio.Event()
        self._process_exited = anyio.Event()
        async with anyio.create_task_group() as signals_group:
            signals_group.start_soon(self._watch_signals)
            async with anyio.create_task_group() as workers_group:
                for worker_id in range(self.workers):
                    workers_group.start_soon(self._keep_running, worker_id)
                await self._stop_requested.wait()
                await self._stop_all()
            signals_group.cancel_scope.cancel()
        return self.exit_status

    async def _watch_signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for number in signals:
                logger.info(
                    "received %s; stopping %d workers",
                    signal.Signals(number).name,
                    len(self._processes),
                )
                if number == signal.SIGINT:
                    self.exit_status = 130
                self._stop_requested.set()
                return

    async def _keep_running(self, worker_id: int) -> None:
        while not self._stopping:
            process = await anyio.open_process(
                self._command(worker_id),
                stdin=subprocess.PIPE,
                stdout=None,
                stderr=None,
                # Ctrl-C then reaches only the supervisor, which stops the
                # workers in order.
                start_new_session=True,
            )
            async with process:
                self._processes[worker_id] = process
                if self._stopping:
                    process.terminate()
                logger.info("worker %d started (pid %d)", worker_id, process.pid)
                status = await process.wait()
                del self._processes[worker_id]
                self._process_exited.set()
            if self._stopping:
                logger.info(
                    "worker %d (pid %d) stopped with status %d",
                    worker_id,
                    process.pid,
                    status,
                )
                return
            if not self._may_restart():
                logger.error(
                    "worker %d (pid %d) exited with status %d, and %d exits in "
                    "%g s are over the maximum of %d, so every worker stops; "
                    "read the workers' log lines above for the cause",
                    worker_id,
                    process.pid,
                    status,
                    len(self._restarts),
                    RESTART_WINDOW,
                    MAX_RESTARTS,
                )
                self.exit_status = 1
                self._stop_requested.set()
                return
            logger.warning(
                "worker %d (pid %d) exited with status %d; restarting it in %g s",
                worker_id,
                process.pid,
                status,
                RESTART_DELAY,
            )
            await anyio.sleep(RESTART_DELAY)

    def _may_restart(self) -> bool:
        """Count one restart, and return False when the window already has too many."""
        now = time.monotonic()
        self._restarts.append(now)
        while self._restarts and self._restarts[0] <= now - RESTART_WINDOW:
            self._restarts.popleft()
        return len(self._restarts) <= MAX_RESTARTS

    async def _stop_all(self) -> None:
        self._stopping = True
        for process in list(self._processes.values()):
            process.terminate()
        with anyio.move_on_after(self.stop_timeout):
            while self._processes:
                self._process_exited = anyio.Event()
                await self._process_exited.wait()
        for worker_id, process in list(self._processes.items()):
            logger.warning(
                "worker %d (pid %d) did not stop within %g s; killing it",
                worker_id,
                process.pid,
                self.stop_timeout,
            )
            process.kill()


async def serve_until_stopped(
    server: ServerConnector, *, shutdown_delay: float, watch_parent: bool
) -> None:
    """Serve until SIGTERM or, for a worker, until its supervisor exits.

    After SIGTERM the health endpoint returns 503 for ``shutdown_delay``
    seconds while the relay keeps serving, so load balancers can stop sending
    new clients. Ctrl-C still raises ``KeyboardInterrupt`` at once.
    """
    async with anyio.create_task_group() as group:
        if watch_parent:
            group.start_soon(_stop_when_parent_exits, group.cancel_scope)
        if sys.platform != "win32":
            with anyio.open_signal_receiver(signal.SIGTERM) as signals:
                async for _ in signals:
                    break
            server.begin_shutdown()
            await anyio.sleep(shutdown_delay)
            group.cancel_scope.cancel()
        else:
            await server.serve_forever()


async def _stop_when_parent_exits(scope: anyio.CancelScope) -> None:
    """Cancel ``scope`` once standard input, a pipe from the supervisor, closes."""
    descriptor = sys.stdin.fileno()
    while True:
        await anyio.wait_readable(descriptor)
        if not os.read(descriptor, 4096):
            break
    logger.warning("the supervising process exited; stopping this worker")
    scope.cancel()
