"""Formatting of figures, progress lines, tables and the machine description."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from .results import Measurement, Recommendation, Table
from .timing import Stats

__all__ = [
    "describe_machine",
    "format_bytes",
    "format_rate",
    "format_seconds",
    "format_size",
    "render_recommendations",
    "render_table",
    "seconds_cell",
    "summarize",
]


# Figures.


def format_seconds(seconds: float) -> str:
    """Format a duration with a unit that leaves one to three integer digits."""
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    if seconds >= 1e-6:
        return f"{seconds * 1e6:.3g} µs"
    return f"{seconds * 1e9:.3g} ns"


def format_rate(per_second: float, unit: str = "/s") -> str:
    """Format a rate with a k or M multiplier, such as ``12.3 k/s``."""
    for factor, prefix in ((1e6, "M"), (1e3, "k")):
        if per_second >= factor:
            return f"{per_second / factor:.3g} {prefix}{unit}"
    return f"{per_second:.3g} {unit}"


def format_size(size: int) -> str:
    """Format a message size in binary units: ``64 B``, ``1 KiB``, ``1 MiB``."""
    for factor, unit in ((2**20, "MiB"), (2**10, "KiB")):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} B"


def format_bytes(count: float) -> str:
    """Format a byte count with thousands separators."""
    return f"{count:,.0f} B"


def seconds_cell(stats: Stats) -> str:
    """Format a median time with its interquartile range."""
    return (
        f"{format_seconds(stats.median)} "
        f"({format_seconds(stats.q1)}-{format_seconds(stats.q3)})"
    )


def summarize(measurement: Measurement, label: str) -> str:
    """Return a progress line: ``[family] label: median (IQR q1-q3)``."""
    stats = measurement.stats
    if measurement.unit == "s":
        figure = (
            f"median {format_seconds(stats.median)} (IQR "
            f"{format_seconds(stats.q1)}-{format_seconds(stats.q3)}, "
            f"{stats.count} samples)"
        )
    else:
        unit = measurement.unit
        figure = (
            f"median {format_rate(stats.median, unit)} (IQR "
            f"{format_rate(stats.q1, unit)}-{format_rate(stats.q3, unit)}, "
            f"{stats.count} samples)"
        )
    return f"[{measurement.family}] {label}: {figure}"


# Tables.


def render_table(table: Table) -> str:
    """Render a table as aligned plain text, with its notes under it."""
    rows = [table.columns, *table.rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(table.columns))]
    lines = [table.title, ""]
    for number, row in enumerate(rows):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    lines.extend(f"  {note}" for note in table.notes)
    return "\n".join(lines)


def render_recommendations(recommendations: list[Recommendation]) -> str:
    """Render the advice, one backend per purpose with its reason."""
    lines = ["Recommended backends for this machine", ""]
    if not recommendations:
        lines.append("  none: no family that recommends a backend was run")
    for advice in recommendations:
        lines.append(f"- {advice.purpose}: {advice.backend}")
        lines.append(f"    {advice.reason}")
    return "\n".join(lines)


# The machine.


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or "unknown"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Hardware", "cpu model"):
            return value.strip()
    return platform.processor() or "unknown"


def describe_machine() -> dict[str, Any]:
    """Return the CPU, core count, Python and OS of this machine."""
    affinity = getattr(os, "sched_getaffinity", None)
    usable = len(affinity(0)) if affinity is not None else os.cpu_count()
    return {
        "cpu_model": _cpu_model(),
        "cpus": os.cpu_count(),
        "usable_cpus": usable,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "system": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
    }
