"""Deterministic, stratified train/val/test split and the ``split.json`` contract."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

from edgeclf.errors import ConfigError, DataError, RunError
from edgeclf.fsutil import read_json, write_json
from edgeclf.run import RunPaths, run_lock

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    root: Path
    classes: list[str]
    train: list[str]
    val: list[str]
    test: list[str]
    seed: int = 0
    fractions: tuple[float, float, float] = (0.7, 0.2, 0.1)
    #: content hash of each listed file when the split was made (lets later stages name
    #: files that changed since training); None for splits written without them
    sha256: dict[str, str] | None = None

    def paths(self, name: str) -> list[str]:
        if name not in SPLITS:
            raise ConfigError(f"split must be one of {SPLITS}, got {name!r}")
        return getattr(self, name)

    def labels(self, name: str) -> list[int]:
        index = {c: i for i, c in enumerate(self.classes)}
        return [index[p.split("/", 1)[0]] for p in self.paths(name)]

    def to_dict(self) -> dict:
        return {"root": str(self.root), "classes": list(self.classes),
                "train": list(self.train), "val": list(self.val), "test": list(self.test),
                "seed": self.seed, "fractions": list(self.fractions),
                **({"sha256": dict(self.sha256)} if self.sha256 else {})}

    def write(self, path: str | Path) -> Path:
        return write_json(path, self.to_dict())

    @classmethod
    def read(cls, path: str | Path) -> "Split":
        d = read_json(path)
        missing = [k for k in ("root", "classes", *SPLITS) if k not in d]
        if missing:
            raise DataError(f"{path} is not a split.json: missing {missing}")
        return cls(root=Path(d["root"]), classes=list(d["classes"]),
                   train=list(d["train"]), val=list(d["val"]), test=list(d["test"]),
                   seed=int(d.get("seed", 0)),
                   fractions=tuple(d.get("fractions", (0.7, 0.2, 0.1))),
                   sha256=dict(d["sha256"]) if isinstance(d.get("sha256"), dict) else None)


def parse_fractions(spec: str | tuple | list) -> tuple[float, float, float]:
    """Parse ``"70,20,10"`` or ``"0.8,0.1,0.1"`` into fractions that sum to 1."""
    parts = spec.split(",") if isinstance(spec, str) else list(spec)
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        raise ConfigError(f"--split must be three numbers like 70,20,10; got {spec!r}") from None
    if len(vals) != 3 or any(v < 0 for v in vals) or sum(vals) <= 0 or vals[0] <= 0:
        raise ConfigError(f"--split must be three non-negative numbers (train > 0) like "
                          f"70,20,10; got {spec!r}")
    total = sum(vals)
    return tuple(v / total for v in vals)  # type: ignore[return-value]


def _rank(seed: int, relpath: str) -> str:
    return hashlib.sha256(f"{seed}\0{relpath}".encode()).hexdigest()


def make_split(root: Path, classes: list[str], relpaths: list[str], *,
               fractions: tuple[float, float, float] = (0.7, 0.2, 0.1),
               seed: int = 0, hashes: dict[str, str] | None = None) -> Split:
    """Split per class by a hash of (seed, relative path): stable across processes and
    machines, and independent of file contents. Every class with >= 3 images gets at
    least one image in val and in test (when those fractions are non-zero)."""
    by_class: dict[str, list[str]] = {c: [] for c in classes}
    for p in relpaths:
        by_class[p.split("/", 1)[0]].append(p)
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    _, f_val, f_test = fractions
    for cls in classes:
        paths = sorted(by_class[cls], key=lambda p: _rank(seed, p))
        n = len(paths)
        n_test = n_val = 0
        if n >= 3:
            n_test = max(1 if f_test > 0 else 0, round(n * f_test))
            n_val = max(1 if f_val > 0 else 0, round(n * f_val))
            while n - n_test - n_val < 1:  # keep at least one training image
                if n_val >= n_test and n_val > 1:
                    n_val -= 1
                else:
                    n_test -= 1
        out["test"] += paths[:n_test]
        out["val"] += paths[n_test:n_test + n_val]
        out["train"] += paths[n_test + n_val:]
    for s in SPLITS:
        out[s].sort()
    recorded = {p: hashes[p] for p in sorted(relpaths) if p in hashes} if hashes else None
    return Split(root=Path(root), classes=list(classes), seed=seed, fractions=fractions,
                 sha256=recorded, **out)


def relocate_run(run_dir: str | Path, new_root: str | Path) -> Split:
    """:func:`relocate_split` for a run, under its lock, keeping ``run.json``'s record of
    the dataset's folder in step."""
    paths = RunPaths(Path(run_dir))
    if not paths.split.is_file():
        raise RunError(f"{run_dir} has no split.json")
    with run_lock(paths, purpose="relocate"):
        split = relocate_split(paths.split, new_root)
        if paths.run_json.is_file():
            meta = read_json(paths.run_json)
            if isinstance(meta.get("dataset"), dict):
                meta["dataset"]["root"] = str(split.root)
                write_json(paths.run_json, meta)
    return split


def relocate_split(path: str | Path, new_root: str | Path) -> Split:
    """Point ``split.json`` at the dataset's new folder (a run trained on another machine,
    or data that moved). Every file of the split must be there, and where ``split.json``
    recorded a sha256 the content must match: a run is never pointed at other images."""
    from edgeclf.runtime.manifest import sha256_file  # noqa: PLC0415 - numpy-only, lazy

    split = Split.read(path)
    root = Path(new_root).expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"{root} is not a folder")
    missing, changed = [], []
    for rel in (*split.train, *split.val, *split.test):
        f = root / rel
        if not f.is_file():
            missing.append(rel)
        elif split.sha256 and rel in split.sha256 and sha256_file(f) != split.sha256[rel]:
            changed.append(rel)
    if missing or changed:
        names = ", ".join((missing + changed)[:5])
        raise DataError(f"{root} is not this run's dataset: {len(missing)} file(s) missing, "
                        f"{len(changed)} with other content than at training (e.g. {names})")
    moved = dataclasses.replace(split, root=root)
    moved.write(path)
    return moved
