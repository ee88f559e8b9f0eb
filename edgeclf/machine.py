"""What this machine is: installed package versions and the CPU's features.

One place for the facts that ``bench.json``, export notes, ``edgeclf doctor`` and
``run.json`` record, so they cannot disagree (e.g. on whether the CPU has fast int8).
Standard library only.
"""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from importlib import metadata
from typing import Iterable

#: Distributions that install the same import package (tensorflow-cpu provides tensorflow).
_DISTRIBUTIONS = {"tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-macos")}

#: CPU features whose int8 dot-product / matrix instructions make onnxruntime's and
#: XNNPACK's int8 kernels faster than float32 (x86 VNNI/AMX, Arm dot product and i8mm).
INT8_FAST_FLAGS = ("avx512_vnni", "avx512vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")

#: The CPU features bench.json lists (speed-relevant for inference).
REPORTED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16",
                  "amx_int8", "asimddp", "i8mm")


def distribution_version(dist: str) -> str | None:
    """The installed version of exactly the distribution ``dist``, else None."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def package_version(name: str) -> str | None:
    """The installed version of ``name`` (any distribution that provides it), else None."""
    for dist in _DISTRIBUTIONS.get(name, (name,)):
        if (version := distribution_version(dist)):
            return version
    return None


def package_versions(names: Iterable[str], *, installed_only: bool = False) -> dict:
    """``{name: version or None}``; with ``installed_only`` the missing ones are left out."""
    out = {n: package_version(n) for n in names}
    return {n: v for n, v in out.items() if v} if installed_only else out


@lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, frozenset[str]]:
    model, flags = platform.processor() or platform.machine(), frozenset()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model", "Hardware") and model in ("", platform.machine()):
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = frozenset(value.split())
    except OSError:
        pass
    return model, flags


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (``/proc/cpuinfo``; empty where it cannot be read)."""
    return _cpuinfo()[1]


def has_fast_int8(flags: Iterable[str] | None = None) -> bool:
    """Whether the CPU has int8 dot-product instructions (see :data:`INT8_FAST_FLAGS`)."""
    flags = cpu_flags() if flags is None else frozenset(flags)
    return any(f in flags for f in INT8_FAST_FLAGS)


def cpu_info() -> dict:
    """The CPU as bench.json records it."""
    model, flags = _cpuinfo()
    return {"model": model, "logical_cores": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0)),
            "flags": [f for f in REPORTED_FLAGS if f in flags],
            "int8_dot_product": has_fast_int8(flags)}
