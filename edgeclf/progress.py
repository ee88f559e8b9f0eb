"""The progress callback of the library's stages (export, parity, eval, bench).

``progress(done, total, label)``: ``done`` of ``total`` items, ``label`` naming what runs now
(a format, an artifact, a stage). A stage that counts ``(done, total)`` in several parts
reports each part under its own label (:func:`stage_progress`); the CLI draws the bars
(``edgeclf/cli/common.py``), the library never does.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[int, int, str], None]


def stage_progress(progress: Progress | None, label: str) -> Callable[[int, int], None] | None:
    """``progress`` for one part of a stage: its ``(done, total)`` calls reported under
    ``label``; None when there is nothing to report to."""
    if progress is None:
        return None
    return lambda done, total: progress(done, total, label)
