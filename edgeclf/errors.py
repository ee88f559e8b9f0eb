"""Typed exceptions of the edgeclf toolchain. The CLI turns any of them into
``Error: ...`` and exit code 1 (2 for a :class:`ConfigError`: bad usage); anything else is a
bug."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from edgeclf.runtime.errors import (DependencyError, DeviceError, EdgeclfError, ImageError,
                                    ModelError)

__all__ = [
    "EdgeclfError", "ImageError", "ModelError", "DeviceError", "DependencyError", "DiskFullError",
    "DataError", "ConfigError", "WeightsError", "ExportError", "RunError", "BudgetError",
]


class DataError(EdgeclfError):
    """The dataset folder cannot be used (missing, empty, fewer than 2 usable classes...)."""


class ConfigError(EdgeclfError, ValueError):
    """A configuration value is invalid (unknown backbone, bad split, image too small...)."""


class WeightsError(EdgeclfError):
    """Weights cannot be found or do not fit the architecture."""


class ExportError(EdgeclfError):
    """An artifact could not be produced."""


class RunError(EdgeclfError):
    """A run directory is missing something, or is locked by another process."""


class BudgetError(EdgeclfError):
    """A parity or accuracy budget was breached."""


class DiskFullError(EdgeclfError, OSError):
    """The disk (or quota) filled up while writing a file; the previous file is intact."""

    def __init__(self, path: Path, cause: OSError):
        self.message = (f"no space left on the device while writing {path} "
                        f"({os.strerror(cause.errno or errno.ENOSPC)}); the previous "
                        f"{path.name} is left intact. Free some space (or write elsewhere) "
                        "and rerun the same command")
        super().__init__(cause.errno, self.message, str(path))

    def __str__(self) -> str:
        return self.message
