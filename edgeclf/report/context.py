"""What every report section needs to know about the run it describes."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from edgeclf.errors import EdgeclfError
from edgeclf.run import RunPaths

from .markup import Raw
from .readers import ReportDataError, as_dict, as_list, pick, read_json_object

log = logging.getLogger(__name__)


@dataclass
class Section:
    """One part of the page. ``status``: ``done``, ``partial``, ``not-run`` or ``problem``."""

    id: str
    title: str
    status: str
    body: Raw


@dataclass
class Context:
    paths: RunPaths
    run_arg: str                    # the run directory as commands should name it
    run: dict = field(default_factory=dict)
    split: dict = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)   # file name -> what was wrong

    @property
    def name(self) -> str:
        return str(pick(self.run, "name", default=self.paths.root.name))

    @property
    def classes(self) -> list[str]:
        classes = as_list(pick(self.run, "classes")) or as_list(pick(self.split, "classes"))
        if not classes:
            try:
                classes = self.paths.read_labels()
            except (OSError, UnicodeDecodeError, EdgeclfError) as exc:
                log.debug("no labels: %s", exc)
        return [str(c) for c in classes]

    @property
    def data_root(self) -> str | None:
        root = pick(self.split, "root") or pick(as_dict(pick(self.run, "dataset")), "root")
        return str(root) if root else None

    def image_roots(self, *extra: object) -> list[Path]:
        roots = [Path(str(r)) for r in extra if r] + ([Path(self.data_root)]
                                                      if self.data_root else [])
        return list(dict.fromkeys(roots))

    def train_argv(self) -> list[str]:
        out = self.paths.root.parent
        return (["edgeclf", "train", self.data_root or "DATA_DIR", "--name", self.name]
                + ([] if out == Path("models") else ["--out", str(out)]))


def load_context(paths: RunPaths, run_arg: str) -> Context:
    ctx = Context(paths=paths, run_arg=run_arg)
    for attr, path in (("run", paths.run_json), ("split", paths.split)):
        try:
            setattr(ctx, attr, read_json_object(path) or {})
        except ReportDataError as exc:
            ctx.problems[path.name] = str(exc)
    return ctx
