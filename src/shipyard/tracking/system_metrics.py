"""CPU, memory and (where present) GPU use of a run, sampled in the background.

Started by ``start_run(..., system_metrics=True)``: a daemon thread samples
every ``interval`` seconds and logs stepped metrics (step = sample number)
under ``system/``:

- ``system/cpu_utilization_percentage``: the machine's CPU use;
- ``system/process_cpu_percentage``: this process's CPU use (100 = one core);
- ``system/memory_usage_percentage`` and ``system/memory_usage_megabytes``;
- ``system/process_rss_megabytes``: this process's resident memory;
- ``system/gpu_<i>_utilization_percentage`` and ``system/gpu_<i>_memory_usage_megabytes``
  when NVIDIA's management library (``pynvml``) is installed and sees a GPU.

The run's end takes one last sample and stops the thread.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.tracking.runs import ActiveRun

__all__ = ["SystemMetrics", "sample"]

_MB = 1024 * 1024


class SystemMetrics:
    """Samples system use into ``run`` every ``interval`` seconds until :meth:`stop`."""

    def __init__(self, run: ActiveRun, *, interval: float = 10.0) -> None:
        if interval <= 0:
            from shipyard.errors import InvalidInputError

            raise InvalidInputError(
                f"system_metrics_interval={interval!r}: expected a positive number of seconds."
            )
        self.run = run
        self.interval = interval
        self.samples = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._gpus = _open_gpus()

    def start(self) -> None:
        import psutil

        psutil.cpu_percent(None)  # the first call only primes the counter
        self._process = psutil.Process()
        self._process.cpu_percent(None)
        self._thread = threading.Thread(
            target=self._loop, name="shipyard-system-metrics", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout=self.interval + 5)
        self._sample()  # the last figures, however short the run

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        self.run.log_metrics(sample(self._process, self._gpus), step=self.samples)
        self.samples += 1


def sample(process: Any, gpus: list[Any] | None = None) -> dict[str, float]:
    """One sample of the machine and ``process`` (a ``psutil.Process``)."""
    import psutil

    memory = psutil.virtual_memory()
    figures = {
        "system/cpu_utilization_percentage": psutil.cpu_percent(None),
        "system/process_cpu_percentage": process.cpu_percent(None),
        "system/memory_usage_percentage": memory.percent,
        "system/memory_usage_megabytes": (memory.total - memory.available) / _MB,
        "system/process_rss_megabytes": process.memory_info().rss / _MB,
    }
    for index, handle in enumerate(gpus or []):
        import pynvml

        use = pynvml.nvmlDeviceGetUtilizationRates(handle)
        mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
        figures[f"system/gpu_{index}_utilization_percentage"] = float(use.gpu)
        figures[f"system/gpu_{index}_memory_usage_megabytes"] = mem.used / _MB
    return figures


def _open_gpus() -> list[Any]:
    """GPU handles when pynvml is installed and finds a driver; none otherwise."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
    except Exception:  # no library, no driver, no GPU: CPU and memory only
        return []
