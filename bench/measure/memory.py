"""Peak memory of one variant in its worker: resident set on the CPU, allocator peaks on a GPU.

On Linux, writing 5 to /proc/self/clear_refs resets the process's high-water mark (VmHWM), so
the peak can be read per variant rather than per process lifetime. Where that is not allowed the
peak is unknown (NaN), never a guess.
"""
from __future__ import annotations

import math
from pathlib import Path


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


class PeakMemory:
    """reset() before the work, extra_bytes() after: peak minus what was resident at reset."""

    def __init__(self, device: str = "cpu", gpu_peak=None):
        self.device = device
        self.gpu_peak = gpu_peak  # (reset() -> baseline, read() -> peak) from the backend, for cuda
        self.baseline: float = math.nan
        self.resettable = True

    def reset(self) -> None:
        if self.device == "cuda" and self.gpu_peak is not None:
            self.baseline = self.gpu_peak[0]()
            return
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            self.resettable = False
        rss = _status_kib("VmRSS")
        self.baseline = math.nan if rss is None else 1024.0 * rss

    def extra_bytes(self) -> float:
        if self.device == "cuda" and self.gpu_peak is not None:
            peak = self.gpu_peak[1]()
        else:
            hwm = _status_kib("VmHWM")
            peak = math.nan if hwm is None or not self.resettable else 1024.0 * hwm
        return max(peak - self.baseline, 0.0) if math.isfinite(peak) and math.isfinite(self.baseline) else math.nan
