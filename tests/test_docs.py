"""Run every code example in the READMEs and docs/*.md, so the docs stay true.

The convention for fenced code blocks in those files:

- Every fenced block names its language. Blocks in ``python`` are complete programs:
  each runs in a fresh Python process, from an empty folder, and must exit with
  status 0 within ``SNIPPET_TIMEOUT`` seconds. Use ``console`` for shell commands,
  ``text`` for output, and ``toml``, ``json`` or ``javascript`` for excerpts; those
  are not run.
- A program that needs a relay either starts its own in the same process
  (``roupn.create_server_connector(port=0)``, then ``relay.url``), or connects to
  ``http://127.0.0.1:3000``, the address ``roupn serve`` listens on by default. For
  the latter, this test runs ``roupn serve`` with default settings on a free port
  of 127.0.0.1, with the per-address limits turned off, and puts its URL in place
  of ``http://127.0.0.1:3000`` in the program before running it.
- A program must finish by itself: no ``anyio.sleep_forever()``.
- A program that imports a module that is not installed, or chooses a backend by
  name (``serializer="cbor"``) that is not registered or not usable here, is
  skipped with the reason. roupn's CI installs every backend, so none is skipped
  there.
- docs/writing-plugins.md walks through contrib/roupn-cbor: its ``toml`` blocks must
  match that plugin's pyproject.toml, and its ``text`` blocks that quote code (they
  hold a ``def``) must be found word for word in the plugin's module.

Relative links between pages must point to files that exist.

The pages are README.md, docs/*.md and contrib/*/README.md. New pages there are
found by their names, so their examples run too.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib.util
import inspect
import os
import re
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from roupn import (
    BackendKind,
    ClientConnector,
    ClientSynchronizer,
    ServerConnector,
    Settings,
    get_registry,
)
from roupn.cli import _build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "contrib").glob("*/README.md")),
]

DEFAULT_RELAY_URL = "http://127.0.0.1:3000"
SNIPPET_TIMEOUT = 120
RELAY_START_TIMEOUT = 30

# An opening fence: three or more backticks or tildes, then the info string.
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


@dataclass(frozen=True)
class Block:
    """A fenced code block of a Markdown page."""

    page: Path
    line: int
    language: str
    code: str

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def fenced_blocks(page: Path) -> list[Block]:
    """Return the fenced code blocks of a page, with the line each opens on."""
    blocks: list[Block] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence = opening["fence"]
        language = opening["info"].strip().split(" ")[0]
        body: list[str] = []
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            body.append(lines[end])
            end += 1
        if end == len(lines):
            raise AssertionError(
                f"{page.relative_to(ROOT)}:{index + 1}: code block is never closed"
            )
        blocks.append(Block(page, index + 1, language, "\n".join(body) + "\n"))
        index = end + 1
    return blocks


ALL_BLOCKS = [block for page in PAGES for block in fenced_blocks(page)]
PYTHON_BLOCKS = [block for block in ALL_BLOCKS if block.language == "python"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_listening(url: str, relay: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + RELAY_START_TIMEOUT
    while time.monotonic() < deadline:
        if relay.poll() is not None:
            raise AssertionError(f"roupn serve exited with status {relay.returncode}")
        try:
            with urllib.request.urlopen(url + "/", timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"roupn serve did not listen on {url} in time")


BACKEND_CHOICE = re.compile(
    r"\b(?P<kind>transport|cipher_suite|serializer|diff_strategy)="
    r"[\"'](?P<name>[\w-]+)[\"']"
)
KINDS = {
    "transport": BackendKind.TRANSPORT,
    "cipher_suite": BackendKind.CIPHER_SUITE,
    "serializer": BackendKind.SERIALIZER,
    "diff_strategy": BackendKind.DIFF_STRATEGY,
}


def missing_requirement(code: str) -> str | None:
    """Return why a program cannot run here, or None if it can.

    It cannot when it imports a top-level module that is not installed, or
    chooses a backend by name that is not registered or not usable.
    """
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules = [node.module]
        else:
            continue
        for module in modules:
            top = module.partition(".")[0]
            if importlib.util.find_spec(top) is None:
                return f"the module {top!r} is not installed"
    registry = get_registry()
    for choice in BACKEND_CHOICE.finditer(code):
        kind = KINDS[choice["kind"]]
        name = choice["name"]
        if name not in registry.names(kind):
            return f"no {kind.value} backend {name!r} is registered"
        if not registry.get(kind, name).usable:
            return f"the {kind.value} backend {name!r} is not usable here"
    return None


@pytest.fixture(scope="module")
def relay_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Run ``roupn serve`` with default settings and yield its URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("relay") / "relay.log"
    with log.open("wb") as output:
        relay = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "roupn",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                # Every example connects from 127.0.0.1, so limits per address
                # would count them all together.
                "--max-connections-per-address",
                "0",
                "--room-creations-per-minute",
                "0",
                "--join-attempts-per-minute",
                "0",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_listening(url, relay)
        yield url
    finally:
        relay.terminate()
        try:
            relay.wait(timeout=10)
        except subprocess.TimeoutExpired:
            relay.kill()
            relay.wait()


def test_pages_found() -> None:
    names = {page.name for page in PAGES}
    assert "README.md" in names
    assert "quickstart.md" in names
    assert PYTHON_BLOCKS, "no python code blocks found"


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=lambda block: block.name)
def test_block_names_language(block: Block) -> None:
    assert block.language, (
        f"{block.name}: name the block's language after the fence: python for a "
        "program that runs, console for shell commands, text for output"
    )


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=lambda block: block.name)
def test_python_block_runs(
    block: Block, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    assert "sleep_forever" not in block.code, (
        f"{block.name}: an example must finish by itself"
    )
    missing = missing_requirement(block.code)
    if missing is not None:
        pytest.skip(f"{block.name}: {missing}")
    code = block.code
    if DEFAULT_RELAY_URL in code:
        url: str = request.getfixturevalue("relay_url")
        code = code.replace(DEFAULT_RELAY_URL, url)
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        finished = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=SNIPPET_TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"{block.name}: still running after {SNIPPET_TIMEOUT} s; "
            f"output so far:\n{exc.stdout!r}\n{exc.stderr!r}"
        ) from None
    assert finished.returncode == 0, (
        f"{block.name} exited with status {finished.returncode}\n"
        f"--- stdout\n{finished.stdout}\n--- stderr\n{finished.stderr}"
    )


def contains(whole: Any, part: Any) -> bool:
    """Whether every key and value of ``part`` is in ``whole``, recursively."""
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(
            key in whole and contains(whole[key], value) for key, value in part.items()
        )
    return bool(whole == part)


PLUGIN_PAGE = ROOT / "docs" / "writing-plugins.md"
PLUGIN_PYPROJECT = ROOT / "contrib" / "roupn-cbor" / "pyproject.toml"
PLUGIN_MODULE = ROOT / "contrib" / "roupn-cbor" / "roupn_cbor" / "__init__.py"
TOML_BLOCKS = [
    block
    for block in ALL_BLOCKS
    if block.page == PLUGIN_PAGE and block.language == "toml"
]


@pytest.mark.parametrize("block", TOML_BLOCKS, ids=lambda block: block.name)
def test_plugin_page_toml_matches_contrib(block: Block) -> None:
    excerpt = tomllib.loads(block.code)
    pyproject = tomllib.loads(PLUGIN_PYPROJECT.read_text(encoding="utf-8"))
    assert contains(pyproject, excerpt), (
        f"{block.name}: the excerpt differs from {PLUGIN_PYPROJECT.relative_to(ROOT)}"
    )


# docs/configuration.md against the code.

CONFIGURATION = ROOT / "docs" / "configuration.md"


def documented_table(heading: str) -> dict[str, str]:
    """Return the first two cells of each row of the table under ``## heading``.

    Backticks around a cell are removed.
    """
    lines = CONFIGURATION.read_text(encoding="utf-8").splitlines()
    start = lines.index(f"## {heading}")
    rows: dict[str, str] = {}
    in_table = False
    for line in lines[start + 1 :]:
        if line.startswith("## "):
            break
        if not line.startswith("|"):
            if in_table:
                break
            continue
        in_table = True
        cells = [cell.strip().strip("`") for cell in line.strip("|").split("|")]
        rows[cells[0]] = cells[1]
    # The header row and the separator row.
    rows = {name: default for name, default in list(rows.items())[2:]}
    assert rows, f"no table under '## {heading}' in {CONFIGURATION.name}"
    return rows


def python_defaults(function: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Return the keyword parameters of ``function`` and their defaults."""
    parameters = inspect.signature(function).parameters.values()
    return {
        parameter.name: parameter.default
        for parameter in parameters
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
        and parameter.name not in skip
    }


def check_python_table(heading: str, defaults: dict[str, Any]) -> None:
    documented = documented_table(heading)
    assert sorted(documented) == sorted(defaults), (
        f"options under '## {heading}' in {CONFIGURATION.name} differ from the code"
    )
    for name, default in defaults.items():
        text = documented[name]
        if callable(default):
            assert text == f"{default.__module__}.{default.__qualname__}", name
            continue
        value = ast.literal_eval(text)
        assert value == default, f"{name}: documented {text}, the code has {default!r}"
        assert type(value) is type(default), (
            f"{name}: documented {text}, the code has {default!r}"
        )


def test_configuration_settings() -> None:
    defaults = {field.name: field.default for field in dataclasses.fields(Settings)}
    check_python_table("Settings", defaults)


def test_configuration_relay_options() -> None:
    check_python_table("Relay options", python_defaults(ServerConnector.__init__))


def test_configuration_client_options() -> None:
    check_python_table("Client options", python_defaults(ClientConnector.__init__))


def test_configuration_synchronizer_options() -> None:
    defaults = python_defaults(
        ClientSynchronizer.__init__, skip=("public_state", "private_state")
    )
    check_python_table("Synchronizer options", defaults)


def serve_flags() -> dict[str, Any]:
    """Return each long flag of ``roupn serve`` and its default."""
    parser = _build_parser()
    (commands,) = [
        action
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
    ]
    serve = commands.choices["serve"]
    flags: dict[str, Any] = {}
    for action in serve._actions:
        long_flags = [flag for flag in action.option_strings if flag.startswith("--")]
        if long_flags and long_flags[0] != "--help":
            flags[long_flags[0]] = action.default
    return flags


def test_configuration_serve_flags() -> None:
    documented = documented_table("roupn serve")
    flags = serve_flags()
    assert sorted(documented) == sorted(flags), (
        f"flags under '## roupn serve' in {CONFIGURATION.name} differ from the code"
    )
    for flag, default in flags.items():
        assert documented[flag] == str(default), (
            f"{flag}: documented {documented[flag]}, the code has {default!r}"
        )


QUOTED_CODE_BLOCKS = [
    block
    for block in ALL_BLOCKS
    if block.page == PLUGIN_PAGE and block.language == "text" and "def " in block.code
]


@pytest.mark.parametrize("block", QUOTED_CODE_BLOCKS, ids=lambda block: block.name)
def test_plugin_page_quotes_contrib_code(block: Block) -> None:
    source = PLUGIN_MODULE.read_text(encoding="utf-8")
    assert block.code in source, (
        f"{block.name}: the quoted code is not in {PLUGIN_MODULE.relative_to(ROOT)}"
    )


# Links between pages.

LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    # Code blocks and code spans hold no links, only code that may look like one.
    text = re.sub(r"^(`{3,}|~{3,}).*?^\1", "", text, flags=re.M | re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    for link in LINK.finditer(text):
        target = link["target"]
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.partition("#")[0]).resolve()
        assert path.exists(), f"{page.relative_to(ROOT)}: link to missing {target}"
