"""Exception types shared by the runtime and the toolchain.

Every error edgeclf raises on purpose derives from :class:`EdgeclfError`, so a host app can
catch one type. The runtime documents these:

- :class:`ImageError` (also a ``ValueError``): an input that is not a usable image
  (unreadable, truncated, not an image, too large, too small).
- :class:`ModelError`: a model file that is missing, not a model of the expected format,
  or whose inputs/outputs/metadata do not fit a classifier.
- :class:`DeviceError`: a requested device/provider cannot be used.
- :class:`DependencyError` (also an ``ImportError``): an optional engine (onnxruntime,
  ai-edge-litert) that this model needs is not installed; the message says what to install.
"""

from __future__ import annotations


class EdgeclfError(Exception):
    """Base class of every error edgeclf raises deliberately."""


class ImageError(EdgeclfError, ValueError):
    """An input is not a usable image. ``source`` names it when known."""

    def __init__(self, message: str, source: object | None = None):
        self.source = source
        super().__init__(f"{source}: {message}" if source is not None else message)


class ModelError(EdgeclfError):
    """A model file is missing, corrupt, or does not fit what edgeclf expects."""


class DeviceError(EdgeclfError):
    """A requested device or execution provider is not available."""


class DependencyError(EdgeclfError, ImportError):
    """An optional dependency needed for this model is not installed."""
