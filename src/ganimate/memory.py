"""Memory a command will need, estimated before it allocates, so that a size that cannot fit (`--n`, `--grid`,
`--scale`, `--samples`, `--g-width` ...) is refused with its estimate in one line instead of swapping the machine
to a halt or dying with a traceback.

Estimates are deliberately rough (they count the big arrays, not Python's overhead); a command is refused only
when its estimate exceeds what the machine reports as available.
"""

from __future__ import annotations

import os
from pathlib import Path

from ganimate.errors import GanimateError


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_available() -> int | None:
    """What a cgroup v2 memory limit leaves (containers), or None without a limit."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text())
    except (OSError, ValueError):
        return None


def available_bytes(device: str = "cpu") -> int | None:
    """Bytes free for new allocations on `device` (host memory for cpu/mps), or None when unknown."""
    if str(device).startswith("cuda"):
        import torch

        try:
            return torch.cuda.mem_get_info(torch.device(device))[0]
        except (RuntimeError, AssertionError, ValueError):
            return None
    found = [b for b in (_meminfo_available(), _cgroup_available()) if b is not None]
    return min(found) if found else None


def fmt_bytes(n: float) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n / 2**10:,.1f} KiB"


def check_fits(nbytes: float, what: str, fix: str, device: str = "cpu") -> None:
    """A one-line GanimateError when `what` needs an estimated `nbytes` and `device` has less available.

    `fix` says which option to lower, e.g. "use a smaller --n".
    """
    free = available_bytes(device)
    if free is not None and nbytes > free:
        where = "GPU memory" if str(device).startswith("cuda") else "memory"
        raise GanimateError(f"{what} needs about {fmt_bytes(nbytes)} of {where} but only {fmt_bytes(free)} is "
                            f"available: {fix}")
