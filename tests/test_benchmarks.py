"""The benchmark runner in its smallest mode: every family runs and reports sanely.

These tests check that results exist and make sense, never how fast anything is.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from benchmarks import runner
from roupn.cli import main as roupn_main
from roupn.plugins import BackendKind, get_registry

FAMILIES = ("diff", "cipher", "serializer", "relay", "backplane")
PEERS = ("jsonpatch", "dictdiffer", "deepdiff")


@pytest.fixture(scope="module")
def smoke_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[int, str, dict[str, Any]]:
    """Run every family once in smoke mode; return the status, output and JSON."""
    path = tmp_path_factory.mktemp("bench") / "results.json"
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        status = runner.main(["--smoke", "--json", str(path)])
    return status, output.getvalue(), json.loads(path.read_text(encoding="utf-8"))


def measurements(report: dict[str, Any], family: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = report["results"][family]["measurements"]
    return found


def usable(kind: BackendKind) -> list[str]:
    registry = get_registry()
    return [name for name in registry.names(kind) if registry.get(kind, name).usable]


def test_smoke_run_succeeds(smoke_run: tuple[int, str, dict[str, Any]]) -> None:
    status, _, report = smoke_run
    assert report["failures"] == {}
    assert status == 0
    assert report["mode"] == "smoke"
    assert list(report["results"]) == list(FAMILIES)


def test_output_has_tables_and_advice(
    smoke_run: tuple[int, str, dict[str, Any]],
) -> None:
    _, output, report = smoke_run
    for family in FAMILIES:
        assert f"== {family}" in output
        if not report["results"][family]["measurements"]:
            continue  # skipped, like the backplane family without Redis
        assert f"\n{family}: " in output  # the family's table title
        assert f"[{family}] " in output  # its progress lines
    assert "Recommended backends for this machine" in output


def test_samples_are_positive(smoke_run: tuple[int, str, dict[str, Any]]) -> None:
    _, _, report = smoke_run
    for family in ("diff", "cipher", "serializer"):
        for measurement in measurements(report, family):
            assert measurement["samples"], measurement["benchmark"]
            assert min(measurement["samples"]) > 0, measurement["benchmark"]
            assert measurement["stats"]["median"] > 0, measurement["benchmark"]


def test_every_cipher_suite_measured(
    smoke_run: tuple[int, str, dict[str, Any]],
) -> None:
    _, _, report = smoke_run
    found = measurements(report, "cipher")
    for suite in usable(BackendKind.CIPHER_SUITE):
        benchmarks = {m["benchmark"] for m in found if m["backend"] == suite}
        assert benchmarks == {
            "room seal",
            "room open",
            "direct seal",
            "direct open",
            "identity generation",
            "join handshake",
        }, suite
        for measurement in found:
            if measurement["backend"] == suite and "size" in measurement["params"]:
                assert measurement["values"]["per_s"] > 0
                assert measurement["values"]["mb_per_s"] > 0


def test_webcrypto_has_primitive_ratio(
    smoke_run: tuple[int, str, dict[str, Any]],
) -> None:
    _, _, report = smoke_run
    seals = [
        m
        for m in measurements(report, "cipher")
        if m["backend"] == "webcrypto" and m["benchmark"] == "room seal"
    ]
    assert sorted(m["params"]["size"] for m in seals) == [64, 1024, 65536, 1048576]
    for measurement in seals:
        assert measurement["params"]["primitive"].startswith("AES-256-GCM")
        assert measurement["values"]["ratio"] > 0


def test_frames_larger_than_plaintext(
    smoke_run: tuple[int, str, dict[str, Any]],
) -> None:
    _, _, report = smoke_run
    found = measurements(report, "serializer")
    assert {m["backend"] for m in found} == set(usable(BackendKind.SERIALIZER))
    for measurement in found:
        values = measurement["values"]
        assert values["encoded_bytes"] > 0
        assert values["text_frame_bytes"] > values["encoded_bytes"]
        assert values["frame_bytes"] > values["encoded_bytes"]


def test_relay_delivers_every_sender_count(
    smoke_run: tuple[int, str, dict[str, Any]],
) -> None:
    _, _, report = smoke_run
    floods = [
        m for m in measurements(report, "relay") if m["benchmark"] == "deliveries"
    ]
    separate = [m for m in floods if m["params"]["setup"] == "separate processes"]
    assert sorted(m["params"]["senders"] for m in separate) == [1, 4, 16]
    in_process = {m["backend"] for m in floods if m["params"]["setup"] == "one process"}
    assert in_process == set(usable(BackendKind.TRANSPORT))
    for measurement in floods:
        values = measurement["values"]
        assert measurement["stats"]["median"] > 0
        assert values["delivered"] > 0
        assert 0 < values["p50"] <= values["p99"]


def test_relay_fanout_measured(smoke_run: tuple[int, str, dict[str, Any]]) -> None:
    _, output, report = smoke_run
    fanouts = {
        m["backend"]: m
        for m in measurements(report, "relay")
        if m["benchmark"] == "fan-out"
    }
    assert set(fanouts) == {"roupn", "websockets broadcast()"}
    for measurement in fanouts.values():
        assert measurement["stats"]["median"] > 0
        assert measurement["values"]["delivered"] > 0
        assert measurement["params"]["senders"] == 4
        assert measurement["params"]["receivers"] == 15
    assert "\nrelay fan-out: " in output


def test_relay_memory_measured(smoke_run: tuple[int, str, dict[str, Any]]) -> None:
    _, _, report = smoke_run
    if not Path("/proc/self/status").exists():
        pytest.skip("the relay's memory is read from /proc, which is missing here")
    memory = [
        m
        for m in measurements(report, "relay")
        if m["benchmark"] == "memory per idle socket"
    ]
    assert len(memory) == 1
    assert memory[0]["params"]["sockets"] > 0
    assert memory[0]["values"]["final_rss"] > 0


def test_diff_peers_measured_or_skipped(
    smoke_run: tuple[int, str, dict[str, Any]],
) -> None:
    _, _, report = smoke_run
    methods = {m["backend"] for m in measurements(report, "diff")}
    assert {"snapshot", "tracked"} <= methods
    skipped = {s["subject"] for s in report["results"]["diff"]["skipped"]}
    for peer in PEERS:
        if importlib.util.find_spec(peer) is None:
            assert peer in skipped
        else:
            assert peer in methods


def test_recommendations_name_backends(
    smoke_run: tuple[int, str, dict[str, Any]],
) -> None:
    _, _, report = smoke_run
    purposes = {r["purpose"] for r in report["recommendations"]}
    assert "cipher suite for room messages" in purposes
    assert "diff strategy for large documents" in purposes
    assert "relay transport" in purposes
    assert any(purpose.startswith("serializer") for purpose in purposes)
    for advice in report["recommendations"]:
        assert advice["backend"]
        assert advice["reason"]


def test_cli_bench_forwards_arguments(tmp_path: Path) -> None:
    path = tmp_path / "serializer.json"
    with contextlib.redirect_stdout(io.StringIO()):
        status = roupn_main(
            ["bench", "--smoke", "--only", "serializer", "--json", str(path)]
        )
    assert status == 0
    report = json.loads(path.read_text(encoding="utf-8"))
    assert list(report["results"]) == ["serializer"]
    assert report["command"].startswith("roupn bench")


def test_cli_bench_rejects_unknown_family(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        roupn_main(["bench", "--only", "cipher,nothing"])
    assert raised.value.code == 2
    assert "unknown family 'nothing'" in capsys.readouterr().err


def test_cli_bench_without_checkout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def missing(name: str) -> None:
        raise ModuleNotFoundError(f"No module named {name!r}", name="benchmarks")

    monkeypatch.setattr("roupn.cli.importlib.import_module", missing)
    assert roupn_main(["bench", "--smoke"]) == 1
    assert "benchmarks package was not found" in capsys.readouterr().err


def test_backplane_measured_or_skipped(
    smoke_run: tuple[int, str, dict[str, Any]],
) -> None:
    _, _, report = smoke_run
    found = measurements(report, "backplane")
    if not found:
        (skip,) = report["results"]["backplane"]["skipped"]
        assert "Redis" in skip["reason"]
        if os.environ.get("ROUPN_REQUIRE_REDIS"):
            pytest.fail(f"the backplane benchmark was skipped: {skip['reason']}")
        return
    runs = sorted((m["params"]["setup"], m["params"]["senders"]) for m in found)
    assert runs == [
        (setup, senders)
        for setup in ("memory, 1 process", "redis, 1 process", "redis, 2 processes")
        for senders in (1, 4)
    ]
    for measurement in found:
        assert measurement["family"] == "backplane"
        assert measurement["values"]["delivered"] > 0
        assert 0 < measurement["values"]["p50"] <= measurement["values"]["p99"]
