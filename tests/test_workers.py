"""roupn serve --workers: several relay processes on one port, as a user runs them."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from roupn.cli import main
from roupn.workers import check_worker_options

TIMEOUT = 20

# Runs the command line with the shared-backplane check turned off: these tests
# check processes and the shared port, not rooms that span workers.
UNCHECKED_MAIN = (
    "import sys, roupn.workers as w; "
    "w.check_worker_options = lambda *args, **options: None; "
    "from roupn.cli import main; sys.exit(main(sys.argv[1:]))"
)

linux_only = pytest.mark.skipif(
    sys.platform != "linux", reason="--workers needs Linux SO_REUSEPORT"
)


class Relay:
    """A ``roupn serve`` process whose log goes to a file."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process = process
        self.log = log

    def wait_for_log(self, pattern: str) -> re.Match[str]:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            found = re.search(pattern, self.log.read_text())
            if found is not None:
                return found
            assert self.process.poll() is None, self.log.read_text()
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} in the log:\n{self.log.read_text()}")

    def stop(self, number: int = signal.SIGTERM) -> int:
        self.process.send_signal(number)
        return self.process.wait(timeout=TIMEOUT)


def start_relay(tmp_path: Path, *argv: str, checked: bool = False) -> Relay:
    log = tmp_path / "relay.log"
    entry = ["-m", "roupn"] if checked else ["-c", UNCHECKED_MAIN]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, *entry, "serve", "--port", "0", *argv],
            stdout=output,
            stderr=output,
            stdin=subprocess.DEVNULL,
        )
    return Relay(process, log)


@pytest.fixture
def relays() -> Iterator[list[Relay]]:
    started: list[Relay] = []
    yield started
    for relay in started:
        if relay.process.poll() is None:
            relay.process.kill()
            relay.process.wait(timeout=TIMEOUT)


def health_pids(url: str, wanted: int, exclude: set[int] = frozenset()) -> set[int]:
    """Request /healthz on new connections until ``wanted`` pids responded."""
    pids: set[int] = set()
    deadline = time.monotonic() + TIMEOUT
    while len(pids - exclude) < wanted:
        assert time.monotonic() < deadline, f"only pids {pids} answered"
        try:
            response = httpx.get(f"{url}/healthz", timeout=TIMEOUT)
        except httpx.TransportError:
            time.sleep(0.05)
            continue
        if response.status_code == 200:
            pids.add(response.json()["pid"])
    return pids - exclude


def is_running(pid: int) -> bool:
    """Return whether ``pid`` runs; a zombie that no one reaped yet does not."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    # The state follows the command name, which is in parentheses.
    return status.rpartition(")")[2].split()[0] != "Z"


def wait_until_gone(pids: set[int]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while any(is_running(pid) for pid in pids):
        assert time.monotonic() < deadline, f"still running: {pids}"
        time.sleep(0.05)


def worker_url(relay: Relay) -> str:
    found = relay.wait_for_log(r"starting \d+ relay workers on (http://\S+)")
    return found.group(1)


# Option checks.


def test_workers_need_shared_backplane(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["serve", "--workers", "2"])
    assert info.value.code == 2
    error = capsys.readouterr().err
    assert "needs a shared backplane" in error
    assert "--workers 1" in error


def test_worker_option_checks() -> None:
    assert check_worker_options(1, "memory") is None
    assert check_worker_options(4, "redis", platform="linux") is None
    message = check_worker_options(2, "redis", platform="darwin")
    assert message is not None
    assert "only supported on Linux" in message
    assert "'darwin'" in message


def test_workers_reject_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["serve", "--workers", "0"])
    assert info.value.code == 2
    assert "use 1 or more" in capsys.readouterr().err


# Worker processes.


@linux_only
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_workers_share_port(backend: str, tmp_path: Path, relays: list[Relay]) -> None:
    relay = start_relay(tmp_path, "--workers", "2", "--async-backend", backend)
    relays.append(relay)
    url = worker_url(relay)
    pids = health_pids(url, 2)
    assert relay.process.pid not in pids
    for _ in range(4):
        assert httpx.get(f"{url}/create-room", timeout=TIMEOUT).status_code == 200

    assert relay.stop() == 0
    wait_until_gone(pids)
    log = relay.log.read_text()
    assert "received SIGTERM; stopping 2 workers" in log
    assert log.count("stopped with status 0") == 2


@linux_only
def test_worker_restarted_after_kill(tmp_path: Path, relays: list[Relay]) -> None:
    relay = start_relay(tmp_path, "--workers", "2")
    relays.append(relay)
    url = worker_url(relay)
    first = health_pids(url, 2)
    killed = min(first)
    os.kill(killed, signal.SIGKILL)

    replacement = health_pids(url, 1, exclude=first)
    assert len(replacement) == 1
    assert not is_running(killed)
    relay.wait_for_log(rf"pid {killed}\) exited with status -9; restarting")
    assert relay.stop() == 0
    wait_until_gone(first | replacement)


@linux_only
def test_workers_stop_on_ctrl_c(tmp_path: Path, relays: list[Relay]) -> None:
    relay = start_relay(tmp_path, "--workers", "2")
    relays.append(relay)
    pids = health_pids(worker_url(relay), 2)
    assert relay.stop(signal.SIGINT) == 130
    wait_until_gone(pids)
    assert "received SIGINT; stopping 2 workers" in relay.log.read_text()


@linux_only
def test_workers_stop_with_supervisor(tmp_path: Path, relays: list[Relay]) -> None:
    relay = start_relay(tmp_path, "--workers", "2", "--async-backend", "trio")
    relays.append(relay)
    pids = health_pids(worker_url(relay), 2)
    relay.process.kill()
    relay.process.wait(timeout=TIMEOUT)
    wait_until_gone(pids)
    assert relay.log.read_text().count("the supervising process exited") == 2


@linux_only
def test_workers_report_taken_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = ["serve", "--workers", "2", "--port", str(port)]
        process = subprocess.run(
            [sys.executable, "-c", UNCHECKED_MAIN, *argv],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    assert process.returncode == 1
    assert "roupn:" in process.stderr
    assert "in use" in process.stderr


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_serve_sigterm_returns_503_first(
    backend: str, tmp_path: Path, relays: list[Relay]
) -> None:
    relay = start_relay(
        tmp_path, "--shutdown-delay", "2", "--async-backend", backend, checked=True
    )
    relays.append(relay)
    url = relay.wait_for_log(r"relay listening on (http://\S+)").group(1)
    assert httpx.get(f"{url}/healthz", timeout=TIMEOUT).status_code == 200

    relay.process.send_signal(signal.SIGTERM)
    relay.wait_for_log("the health endpoint now returns 503")
    response = httpx.get(f"{url}/healthz", timeout=TIMEOUT)
    assert response.status_code == 503
    assert response.json()["status"] == "shutting_down"
    assert relay.process.wait(timeout=TIMEOUT) == 0


@linux_only
def test_workers_own_metrics_ports(tmp_path: Path, relays: list[Relay]) -> None:
    relay = start_relay(tmp_path, "--workers", "2", "--metrics-port", "0")
    relays.append(relay)
    url = worker_url(relay)
    health_pids(url, 2)
    metrics_urls = re.findall(
        r"metrics and health on (http://\S+)", relay.log.read_text()
    )
    assert len(metrics_urls) == 2

    requests = 6
    for _ in range(requests):
        assert httpx.get(f"{url}/create-room", timeout=TIMEOUT).status_code == 200
    assert httpx.get(f"{url}/metrics", timeout=TIMEOUT).status_code == 404
    created = 0.0
    pids = set()
    for metrics_url in metrics_urls:
        pids.add(httpx.get(f"{metrics_url}/healthz", timeout=TIMEOUT).json()["pid"])
        text = httpx.get(f"{metrics_url}/metrics", timeout=TIMEOUT).text
        found = re.search(r"^roupn_rooms_created_total (\S+)$", text, re.MULTILINE)
        assert found is not None
        created += float(found.group(1))
    assert len(pids) == 2
    assert created == requests
    assert relay.stop() == 0


def test_serve_metrics_required_but_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("roupn.metrics.metrics_available", lambda: False)
    assert main(["serve", "--port", "0", "--metrics"]) == 1
    assert "pip install 'roupn[metrics]'" in capsys.readouterr().err


def test_workers_reject_metrics_ports_past_65535(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("roupn.workers.check_worker_options", lambda *args: None)
    with pytest.raises(SystemExit) as info:
        main(["serve", "--workers", "3", "--metrics-port", "65534"])
    assert info.value.code == 2
    assert "invalid --metrics-port 65534" in capsys.readouterr().err
