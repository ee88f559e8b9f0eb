"""Typed exceptions of the edgeclf toolchain. The CLI turns any of them into
``Error: ...`` and exit code 1; anything else is a bug."""

from __future__ import annotations

from edgeclf.runtime.errors import DeviceError, EdgeclfError, ImageError, ModelError

__all__ = [
    "EdgeclfError", "ImageError", "ModelError", "DeviceError",
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
