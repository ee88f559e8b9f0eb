"""Report sections about the run itself: overview, dataset, training."""

from __future__ import annotations

import datetime as dt
from typing import Any

from edgeclf.run import lock_owner

from . import plots
from .context import Context, Section
from .images import data_uri
from .markup import Raw, details, e, img, join, kv_table, not_run, note, problem, table, tag
from .readers import (History, ReportDataError, as_dict, as_list, fmt, fmt_bytes, fmt_pct,
                      num, pick, read_history, read_json_object, read_tolerant)

#: Classes/problem rows shown before the rest is folded away.
SHOW_ROWS = 25


def overview(ctx: Context) -> Section:
    run = ctx.run
    if not run:
        msg = ctx.problems.get("run.json", "run.json is missing")
        return Section("overview", "Run", "problem", problem(msg))
    contract = as_dict(pick(run, "preprocessing"))
    size = pick(run, "image_size") or pick(contract, "size")
    pairs = [("name", ctx.name), ("directory", ctx.paths.root),
             ("created", pick(run, "created", default="—")),
             ("edgeclf", pick(run, "edgeclf_version", default="—")),
             ("backend", pick(run, "backend", default="—")),
             ("backbone", pick(run, "backbone", default="—")),
             ("image size", _size(size)),
             ("preprocessing", ", ".join(f"{k}={v}" for k, v in contract.items()
                                         if k in ("resize", "interpolation")) or "—"),
             ("classes", f"{len(ctx.classes)}: {', '.join(ctx.classes[:12])}"
                         + (" …" if len(ctx.classes) > 12 else "")),
             ("dataset", pick(as_dict(pick(run, "dataset")), "root", default="—"))]
    owner = lock_owner(ctx.paths)
    if owner:
        pairs.append(("in use", f"pid {owner.get('pid')} ({owner.get('purpose', '?')}) since "
                                f"{owner.get('started', '?')}"))
    body = [kv_table(pairs)]
    config, versions = as_dict(pick(run, "config")), as_dict(pick(run, "versions"))
    if config:
        body.append(details("resolved training config", kv_table(sorted(config.items()))))
    if versions:
        body.append(details("versions", kv_table(sorted(versions.items()))))
    return Section("overview", "Run", "done", join(body))


def _size(size: Any) -> str:
    if isinstance(size, list) and len(size) == 2:
        return f"{size[0]}×{size[1]}"
    return fmt(size)


def dataset(ctx: Context) -> Section:
    body: list[Raw] = []
    status = "done"
    try:
        report = read_json_object(ctx.paths.data_report)
    except ReportDataError as exc:  # say what is wrong and still show the split
        report, status = None, "problem"
        body.append(problem(exc))
    if report is not None:
        body.append(_data_report(report))
    if ctx.split:
        body.append(_split_table(ctx.split))
    elif "split.json" in ctx.problems:
        status = "problem"
        body.append(problem(ctx.problems["split.json"]))
    if report is None and not ctx.split:
        if status == "problem":
            return Section("dataset", "Dataset", status, join(body))
        return Section("dataset", "Dataset", "not-run", not_run(*ctx.train_argv()))
    if report is None and status != "problem":
        status = "partial"
        body.append(note("no data_report.json in this run (validation report not written)"))
    return Section("dataset", "Dataset", status, join(body))


def _data_report(r: dict) -> Raw:
    counts = as_dict(pick(r, "counts"))
    pairs = [("root", pick(r, "root", default="—")), ("image files", fmt(pick(r, "n_files"))),
             ("usable images", fmt(pick(r, "n_usable"))), ("classes", len(counts) or "—"),
             ("largest / smallest class", f"{fmt(pick(r, 'imbalance'), 3)}×")]
    out = [kv_table(pairs)]
    warnings = [str(w) for w in as_list(pick(r, "warnings"))]
    if warnings:
        out.append(tag("h3", "Validation warnings"))
        out.append(Raw('<ul class="warnings">' + "".join(f"<li>{e(w)}</li>" for w in warnings)
                       + "</ul>"))
    else:
        out.append(note("validation: no warnings"))
    if counts:
        top = max((num(v) or 0 for v in counts.values()), default=0) or 1
        small = {str(c) for c in as_list(pick(r, "small_classes"))}
        rows = [[c, fmt(n), _bar((num(n) or 0) / top),
                 "small: >= 5x fewer than the largest" if c in small else ""]
                for c, n in counts.items()]
        t = table(["class", "images", "", "flag"], rows, cls="counts")
        out.append(t if len(rows) <= SHOW_ROWS else details(f"images per class ({len(rows)})", t))
    problems = [p for p in as_list(pick(r, "problems")) if isinstance(p, dict)]
    if problems:
        rows = [[pick(p, "file"), pick(p, "kind"), pick(p, "message")] for p in problems]
        out.append(details(f"{len(rows)} problem file(s)",
                           table(["file", "problem", "detail"], rows[:500])))
    return join(out)


def _bar(fraction: float) -> Raw:
    width = max(0.0, min(1.0, fraction)) * 100
    return Raw(f'<span class="bar" style="width:{width:.1f}%"></span>')


def _split_table(split: dict) -> Raw:
    names = ("train", "val", "test")
    counts = [len(as_list(split.get(n))) for n in names]
    rows = [[n, c] for n, c in zip(names, counts)] + [["total", sum(counts)]]
    extra = f" (seed {split['seed']})" if "seed" in split else ""
    return join([tag("h3", f"Split{extra}"), table(["split", "images"], rows, cls="narrow")])


def training(ctx: Context) -> Section:
    problems: list[str] = []
    history = read_tolerant(read_history, ctx.paths.history, problems)
    metrics = read_tolerant(read_json_object, ctx.paths.metrics, problems)
    if history is None and metrics is None and not problems:
        return Section("training", "Training", "not-run", not_run(*ctx.train_argv()))
    body: list[Raw] = [problem(p) for p in problems]
    status = "problem" if problems else "done" if metrics is not None else "partial"
    if metrics is None and not problems:
        owner = lock_owner(ctx.paths)
        if owner:
            body.append(note(f"training is running (pid {owner.get('pid')})"))
        elif ctx.paths.state.is_file():
            body.append(not_run(*ctx.train_argv(), "--resume",
                                what="training did not finish (interrupted?); resume it"))
        else:
            body.append(not_run(*ctx.train_argv(), "--overwrite",
                                what="training stopped before its first epoch was saved; "
                                     "start it again"))
    if history is not None:
        body.append(_curves(history))
        body.append(_phase_table(history))
    if metrics is not None:
        body.append(_train_summary(metrics))
    body.append(_checkpoints(ctx))
    return Section("training", "Training", status, join(body))


def _train_summary(metrics: dict) -> Raw:
    best_epoch, best_phase = pick(metrics, "best_epoch"), pick(metrics, "best_phase")
    pairs = [("training time", f"{fmt(pick(metrics, 'train_seconds'), 4)} s"),
             ("throughput", f"{fmt(pick(metrics, 'images_per_second'), 4)} images/s"),
             ("best checkpoint", f"epoch {best_epoch}" + (f" (phase {best_phase})"
                                                          if best_phase else "")
              if best_epoch is not None else "—"),
             ("validation accuracy (best)",
              fmt_pct(pick(as_dict(pick(metrics, "val")), "accuracy"))),
             ("phase 1 / phase 2 validation accuracy",
              f"{fmt_pct(pick(metrics, 'phase1_val_accuracy'))} / "
              f"{fmt_pct(pick(metrics, 'phase2_val_accuracy'))}")]
    return kv_table([(k, v) for k, v in pairs if v not in ("—", "— / —", "— s",
                                                           "— images/s")])


def _curves(history: History) -> Raw:
    out: list[Raw] = []
    if history.dropped:
        out.append(note(f"{history.dropped} repeated epoch row(s) in history.csv (a resumed "
                        "run): the latest of each is shown"))
    png = plots.training_curves(history)
    if png is None:
        out.append(problem(f"history.csv has no loss/accuracy column "
                           f"(columns: {', '.join(history.columns)})"))
    else:
        out.append(img(data_uri(png, "image/png"), "training curves"))
    return join(out)


def _phase_table(history: History) -> Raw:
    acc = history.series("val_accuracy", "val_acc", "val_sparse_categorical_accuracy")
    loss, secs = history.series("loss"), history.series("seconds")
    rows = []
    for phase in dict.fromkeys(history.phases):
        idx = [i for i, p in enumerate(history.phases) if p == phase]
        best = max((i for i in idx if acc[i] is not None), key=lambda i: acc[i], default=None)
        at = "—" if best is None else history.rows[best].get("epoch") or best + 1
        took = [secs[i] for i in idx if secs[i] is not None]
        rows.append([phase, len(idx), fmt_pct(acc[best]) if best is not None else "—", at,
                     fmt(loss[idx[-1]], 4), f"{sum(took):.1f} s" if took else "—"])
    return table(["phase", "epochs", "best val accuracy", "at epoch", "last train loss",
                  "time"], rows, cls="narrow")


def _checkpoints(ctx: Context) -> Raw:
    rows = []
    for path in (ctx.paths.best, ctx.paths.last):
        if path.is_file():
            st = path.stat()
            when = dt.datetime.fromtimestamp(st.st_mtime).strftime("%Y-%m-%d %H:%M:%S")
            rows.append([path.name, fmt_bytes(st.st_size), when])
    if not rows:
        return note("no checkpoint in checkpoints/")
    return table(["checkpoint", "size", "written"], rows, cls="narrow")
