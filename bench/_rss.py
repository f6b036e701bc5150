"""Peak resident memory of this process, for the benchmarks' child processes.

``getrusage(RUSAGE_SELF).ru_maxrss`` is wrong in a child started by a large parent:
Linux starts the child's high-water mark at the parent's resident size when it
is spawned (vfork + exec), so a child of a 900 MB parent "peaks" at 900 MB even
if it never uses 20. ``VmHWM`` in ``/proc/self/status`` is the high-water mark
of the child's own memory since its ``exec``.
"""

from __future__ import annotations

import resource
from pathlib import Path


def peak_rss_mb() -> float:
    """Peak RSS of this process since it started (MB): VmHWM, else ru_maxrss."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
