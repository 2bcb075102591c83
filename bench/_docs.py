"""Write a benchmark's figures into its marked section of docs/benchmarks.md."""

from __future__ import annotations

import datetime
import fcntl
import os
import platform
import tempfile
from pathlib import Path

from soundscape.docgen import replace_section

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def machine() -> str:
    """One line naming the machine the figures come from."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f", {int(line.split()[1]) / 2**20:.0f} GiB"
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores{memory}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}; {datetime.date.today().isoformat()}"
    )


def write_section(marker: str, body: str) -> None:
    """Replace the text between <!-- marker:begin --> and <!-- marker:end -->."""
    body = f"Machine: {machine()}\n\n{body.strip()}"
    # Benchmarks may finish at the same moment: one read-modify-write at a time.
    with open(Path(tempfile.gettempdir()) / "soundscape-benchmarks-md.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        text = DOC.read_text(encoding="utf-8")
        if f"<!-- {marker}:begin -->" not in text:
            text += f"\n<!-- {marker}:begin -->\n<!-- {marker}:end -->\n"
        DOC.write_text(replace_section(text, marker, body), encoding="utf-8")
