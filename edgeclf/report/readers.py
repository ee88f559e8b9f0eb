"""Defensive readers and formatters for the files of a run.

The report reads files written by other stages, possibly by an older or newer edgeclf: a
missing key or an odd value must never stop the report. Readers return ``None`` for a file
that is absent and raise :class:`ReportDataError` (with what was wrong) for one that is
present but unusable; the page shows that message in the section concerned.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from edgeclf.errors import EdgeclfError
from edgeclf.plotting import finite_number

#: Larger files are not parsed (a report must stay fast whatever a run holds).
MAX_JSON_BYTES = 64 << 20


class ReportDataError(EdgeclfError):
    """A run file is present but cannot be used for its report section."""


def read_json_object(path: Path) -> dict | None:
    """The JSON object in ``path``; ``None`` when the file does not exist."""
    if not path.exists():
        return None
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise ReportDataError(f"{path.name} is larger than {MAX_JSON_BYTES >> 20} MB; "
                                  "not read")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ReportDataError(f"{path.name} cannot be read: {exc}") from None
    if not isinstance(data, dict):
        raise ReportDataError(f"{path.name} holds a JSON {type(data).__name__}, "
                              "expected an object")
    return data


def read_tolerant(reader: Callable[[Path], Any], path: Path,
                  problems: list[str]) -> Any:
    """``reader(path)``; a :class:`ReportDataError` is appended to ``problems`` (-> None)."""
    try:
        return reader(path)
    except ReportDataError as exc:
        problems.append(str(exc))
        return None


def pick(d: Any, *names: str, default: Any = None) -> Any:
    """The first of ``names`` present in ``d`` (a dict), else ``default``."""
    if not isinstance(d, dict):
        return default
    for n in names:
        if n in d and d[n] is not None:
            return d[n]
    return default


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else []


def as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


num = finite_number      # a finite float, or None (the report reads JSON written by others)


def fmt(value: Any, digits: int = 4) -> str:
    f = num(value)
    if f is None:
        return "—" if value is None or value == "" else str(value)
    if f == int(f) and abs(f) < 1e15 and not isinstance(value, float):
        return str(int(f))
    if abs(f) >= 10 ** digits:      # 11887.4 -> "11,887", not "1.189e+04"
        return f"{f:,.0f}"
    return f"{f:.{digits}g}"


def fmt_pct(value: Any, digits: int = 2) -> str:
    """A fraction (0.95) as a percentage ("95.00%")."""
    f = num(value)
    return "—" if f is None else f"{100 * f:.{digits}f}%"


def fmt_points(value: Any) -> str:
    """An accuracy change (fraction) in percentage points, signed."""
    f = num(value)
    return "—" if f is None else f"{100 * f:+.2f} pt"


def fmt_bytes(value: Any) -> str:
    f = num(value)
    if f is None:
        return "—"
    for unit in ("B", "KB", "MB", "GB"):
        if abs(f) < 1024 or unit == "GB":
            return f"{f:.0f} {unit}" if unit == "B" else f"{f:.2f} {unit}"
        f /= 1024
    return f"{f:.2f} GB"


@dataclass
class History:
    """``history.csv``: one row per epoch, both phases, de-duplicated after resumes."""

    columns: list[str]
    rows: list[dict[str, str]]
    phases: list[str] = field(default_factory=list)   # the phase of each row
    dropped: int = 0                                   # rows replaced by a later duplicate

    def series(self, *names: str) -> list[float | None]:
        col = next((n for n in names if n in self.columns), None)
        return [num(r.get(col)) if col else None for r in self.rows]

    def has(self, *names: str) -> bool:
        return any(n in self.columns for n in names)


def read_history(path: Path) -> History | None:
    if not path.exists():
        return None
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            raw = [dict(r) for r in reader]
            columns = [c for c in (reader.fieldnames or []) if c]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ReportDataError(f"history.csv cannot be read: {exc}") from None
    if not columns:
        raise ReportDataError("history.csv has no header row")
    return _dedupe(columns, raw)


def _dedupe(columns: list[str], raw: list[dict[str, str]]) -> History:
    """Assign phases (a ``phase`` column, else a new phase whenever ``epoch`` goes back) and
    keep the last row of each (phase, epoch): a resumed run may repeat an epoch."""
    keyed: dict[tuple[str, str], dict[str, str]] = {}
    phase_no, prev_epoch = 1, None
    for i, row in enumerate(raw):
        epoch = num(row.get("epoch"))
        if "phase" in columns:
            phase = str(row.get("phase") or "1")
        else:
            if epoch is not None and prev_epoch is not None and epoch < prev_epoch:
                phase_no += 1
            phase = str(phase_no)
        prev_epoch = epoch if epoch is not None else prev_epoch
        key = (phase, str(row.get("epoch")) if epoch is not None else f"#{i}")
        keyed.pop(key, None)          # a repeated epoch moves to its latest position
        keyed[key] = row
    rows = list(keyed.values())
    return History(columns=columns, rows=rows, phases=[k[0] for k in keyed],
                   dropped=len(raw) - len(rows))


def safe_join(root: Path, name: str) -> Path | None:
    """``root/name`` when it stays inside ``root`` (names in run files come from users)."""
    try:
        root = root.resolve()
        path = (root / name).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    return path if path == root or root in path.parents else None
