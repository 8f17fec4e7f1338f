"""The machine dupq runs on: how many cores to use, and torch's thread and precision settings.

One place for these so that the embedder, the ONNX runtime, the FAISS index and the Matcher agree.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any


def allowed_cpus() -> int:
    """Logical CPUs this process may run on (its affinity mask, else ``os.cpu_count()``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def physical_cores() -> int:
    """Physical cores this process may run on (hyperthreads don't help dense matmuls)."""
    allowed = allowed_cpus()
    try:
        import psutil

        phys = psutil.cpu_count(logical=False) or allowed
    except ImportError:  # pragma: no cover - psutil is a dependency
        phys = allowed
    return max(1, min(allowed, phys))


def cap_torch_threads(device: str) -> None:
    """On a CPU, cap torch's intra-op threads at the physical cores (hyperthreads only add contention)."""
    if not device.startswith("cpu"):
        return
    import torch

    cores = physical_cores()
    if torch.get_num_threads() > cores:
        torch.set_num_threads(cores)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Temporarily run torch on ``n`` intra-op threads (``None``: leave it alone).

    torch's setting is process-wide; the Matcher changes it only inside its encode lock and restores
    it, so other Matcher calls never see it — but other torch work in the same process, at that same
    moment, would (pass ``query_threads=None`` to opt out).
    """
    if not n:
        yield
        return
    import torch

    before = torch.get_num_threads()
    if before == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def autocast(device: str) -> Any:
    """bf16 (or fp16 on older GPUs) autocast on CUDA: about twice the throughput, same rankings."""
    if not device.startswith("cuda"):
        return contextlib.nullcontext()
    import torch

    return torch.autocast("cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)


class RWLock:
    """Readers–writer lock with writer preference (a waiting writer blocks new readers: no starvation)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()
