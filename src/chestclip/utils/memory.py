"""Resident memory of a process, current and peak, from Linux's ``/proc`` (what a benchmark or
test of a server's memory bound reads; nothing else in the package depends on it)."""

from __future__ import annotations

from pathlib import Path


def resident_bytes(pid: int) -> tuple[int, int]:
    """(current, peak) resident set size of process ``pid`` in bytes (``VmRSS``, ``VmHWM``).
    Raises OSError where there is no ``/proc`` (not Linux)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024  # reported in kB
    return fields["VmRSS"], fields["VmHWM"]


def reset_peak(pid: int) -> None:
    """Set process ``pid``'s peak resident size back to its current one (Linux ≥ 4.0)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
