"""Report section: test metrics, confusion matrix, worst confusions, misclassified images."""

from __future__ import annotations

from typing import Any

from . import plots
from .context import Context, Section
from .images import data_uri, png_file_uri, thumbnail_uri
from .markup import Raw, details, e, img, join, kv_table, not_run, note, problem, table, tag
from .readers import (ReportDataError, as_dict, as_list, fmt, fmt_pct, num, pick,
                      read_json_object, read_tolerant)

#: At most this many confusions and misclassified thumbnails are shown.
MAX_CONFUSIONS = 10
MAX_THUMBS = 12
SHOW_ROWS = 25


def evaluation(ctx: Context) -> Section:
    problems: list[str] = []
    metrics = read_tolerant(read_json_object, ctx.paths.metrics, problems)
    ev = read_tolerant(read_json_object, ctx.paths.eval_json, problems)
    test = as_dict(pick(metrics, "test"))
    if not (test or ev or problems or ctx.paths.confusion_png.is_file()):
        return Section("evaluation", "Test metrics", "not-run",
                       join([not_run("edgeclf", "eval", ctx.run_arg)]
                            + ([] if metrics else [note("(after training: "
                                                        "metrics.json is written by train)")])))
    body: list[Raw] = [problem(p) for p in problems]
    if test:
        body.append(tag("h3", "Keras checkpoint at the end of training (metrics.json)"))
        body.append(_summary(test))
        body.append(_per_class(pick(test, "per_class")))
    elif metrics is not None:
        body.append(problem("metrics.json has no 'test' object"))
    if ev is not None:
        body.append(tag("h3", f"edgeclf eval: {pick(ev, 'model', 'artifact', default='model')}"
                              f" on {pick(ev, 'source', 'split', default='?')}"))
        body.append(_summary(ev))
        body.extend(note(f"warning: {w}") for w in as_list(pick(ev, "warnings")))
        if not test:
            body.append(_per_class(pick(ev, "per_class")))
    body.append(_confusion(ctx, ev))
    examples = _examples(ctx, ev)
    if ev is not None:
        body.append(_worst(ctx, ev, examples))
    body.append(_misclassified(ctx, ev, examples))
    status = "problem" if problems else "done" if ev is not None else "partial"
    if ev is None:
        body.append(not_run("edgeclf", "eval", ctx.run_arg,
                            what="confusions and misclassified images: not run yet"))
    return Section("evaluation", "Test metrics", status, join(body))


def _summary(d: dict) -> Raw:
    pairs = [("accuracy", fmt_pct(pick(d, "accuracy"))),
             ("top-5 accuracy", fmt_pct(pick(d, "top5", "top_5", "top5_accuracy"))),
             ("macro F1", fmt(pick(d, "macro_f1"), 3)),
             ("images", fmt(pick(d, "n", "n_images", "support")))]
    if num(pick(d, "n_skipped")):
        pairs.append(("skipped images", f"{fmt(pick(d, 'n_skipped'))} (missing or changed "
                                        "since the split was made)"))
    return kv_table([(k, v) for k, v in pairs if v != "—"])


def _per_class(per_class: Any) -> Raw:
    if isinstance(per_class, dict):
        items = [(k, as_dict(v)) for k, v in per_class.items()]
    else:
        items = [(pick(v, "class", "label", "name", default="?"), v)
                 for v in as_list(per_class) if isinstance(v, dict)]
    if not items:
        return Raw("")
    rows = [[c, fmt(pick(v, "precision"), 3), fmt(pick(v, "recall"), 3),
             fmt(pick(v, "f1", "f1_score", "f1-score"), 3), fmt(pick(v, "support"))]
            for c, v in items]
    rows.sort(key=lambda r: num(r[3]) if num(r[3]) is not None else 2.0)
    t = table(["class (worst F1 first)", "precision", "recall", "F1", "support"], rows)
    return t if len(rows) <= SHOW_ROWS else details(f"per-class metrics ({len(rows)} classes)", t)


def _matrix(ctx: Context, ev: dict | None) -> tuple[list[list], list[str]]:
    cm = pick(ev, "confusion_matrix", "confusion")
    classes = pick(as_dict(cm), "classes", "labels") or pick(ev, "classes", "labels")
    if isinstance(cm, dict):
        cm = pick(cm, "matrix", "counts")
    rows = [r for r in as_list(cm) if isinstance(r, list)]
    names = [str(c) for c in as_list(classes)] or ctx.classes
    if not rows and names:     # many classes: eval.json lists [true, predicted, count] cells
        rows = _dense(as_list(pick(ev, "confusion_cells")), len(names))
    return rows, names


def _dense(cells: list, n: int) -> list[list[int]]:
    """A dense n x n matrix from ``[true, predicted, count]`` cells (bad cells skipped)."""
    if not cells:
        return []
    rows = [[0] * n for _ in range(n)]
    for cell in cells:
        if isinstance(cell, list) and len(cell) == 3 and all(isinstance(v, int) for v in cell) \
                and 0 <= cell[0] < n and 0 <= cell[1] < n:
            rows[cell[0]][cell[1]] += cell[2]
    return rows


def _confusion(ctx: Context, ev: dict | None) -> Raw:
    try:
        uri = png_file_uri(ctx.paths.confusion_png)
    except (OSError, ValueError) as exc:
        uri, why = None, problem(f"confusion_matrix.png not shown: {exc}")
    else:
        why = Raw("")
    if uri is None:
        matrix, names = _matrix(ctx, ev)
        if matrix:
            try:
                uri = data_uri(plots.confusion_matrix(matrix, names), "image/png")
            except ValueError as exc:
                return join([why, problem(f"eval.json confusion matrix not drawn: {exc}")])
    if uri is None:
        return join([why, note("no confusion matrix yet")])
    return join([why, tag("h3", "Confusion matrix"), img(uri, "confusion matrix", cls="cm")])


def _confusion_rows(ctx: Context, ev: dict) -> list[tuple[str, str, Any, list]]:
    items = as_list(pick(ev, "worst_confusions", "confusions", "top_confusions"))
    out = []
    for it in items:
        if isinstance(it, dict):
            out.append((pick(it, "true", "actual", "label", "true_class", default="?"),
                        pick(it, "predicted", "pred", "predicted_class", default="?"),
                        pick(it, "count", "n", default=""),
                        as_list(pick(it, "files", "examples", "images"))))
        elif isinstance(it, list) and len(it) >= 2:
            out.append((it[0], it[1], it[2] if len(it) > 2 else "", []))
    if not out:
        matrix, names = _matrix(ctx, ev)
        cells = [(num(v) or 0, i, j) for i, r in enumerate(matrix) for j, v in enumerate(r)
                 if i != j and (num(v) or 0) > 0 and i < len(names) and j < len(names)]
        out = [(names[i], names[j], int(c), []) for c, i, j in sorted(cells, reverse=True)]
    return out[:MAX_CONFUSIONS]


def _examples(ctx: Context, ev: dict | None) -> list[dict]:
    """Misclassified test images: ``eval.json``'s ``misclassified`` list when it has one,
    else the parity flips whose true class is known (an image the reference or an artifact
    got wrong), each image and wrong answer once."""
    out: list[dict] = []
    for it in as_list(pick(ev, "misclassified", "errors", "mistakes")):
        if isinstance(it, dict) and _file_of(it):
            out.append({"file": _file_of(it), "true": pick(it, "true", "actual", "label"),
                        "predicted": pick(it, "predicted", "pred"), "by": "eval",
                        "confidence": num(pick(it, "confidence", "score", "probability"))})
    if out:
        return out
    try:
        parity = read_json_object(ctx.paths.parity) or {}
    except ReportDataError:
        parity = {}
    seen: set[tuple[str, str]] = set()
    for art in as_list(pick(parity, "artifacts")):
        for f in as_list(pick(art, "flipped")):
            true = pick(f, "true")
            for who, key in (("Keras", "reference"), (pick(art, "file"), "artifact")):
                wrong = (_file_of(f), str(pick(f, key)))
                if true is not None and pick(f, key) not in (None, true) and wrong[0] \
                        and wrong not in seen:
                    seen.add(wrong)
                    out.append({"file": _file_of(f), "true": true, "predicted": pick(f, key),
                                "by": str(who), "confidence": num(pick(f, f"{key}_confidence"))})
    return out


def _worst(ctx: Context, ev: dict, examples: list[dict]) -> Raw:
    rows = _confusion_rows(ctx, ev)
    if not rows:
        return note("no confusions listed in eval.json")
    roots = ctx.image_roots(pick(ev, "root", "data", "data_dir"))
    table_rows = []
    for true, pred, count, files in rows:
        names = [_file_of(f) for f in files] + [x["file"] for x in examples
                                                if (x["true"], x["predicted"]) == (true, pred)]
        thumbs = [_thumb(roots, n) for n in dict.fromkeys(names)][:3]
        table_rows.append([true, pred, fmt(count), join(t for t in thumbs if t)])
    return join([tag("h3", "Worst confusions"),
                 table(["true class", "predicted as", "images", "examples"], table_rows)])


def _file_of(item: Any) -> str:
    return str(pick(item, "file", "path", "image", default="")) if isinstance(item, dict) \
        else str(item)


def _thumb(roots: list, name: str) -> Raw | None:
    uri = thumbnail_uri(roots, name) if name else None
    return img(uri, name, cls="thumb", title=name) if uri else None


def _misclassified(ctx: Context, ev: dict | None, examples: list[dict]) -> Raw:
    if not examples:
        return Raw("")
    roots = ctx.image_roots(pick(ev, "root", "data", "data_dir"))
    cards, missing = [], 0
    for it in examples:
        if len(cards) >= MAX_THUMBS:
            break
        thumb = _thumb(roots, it["file"])
        if thumb is None:
            missing += 1
            continue
        conf = it["confidence"]
        caption = (f"{it['true'] if it['true'] is not None else '?'} → "
                   f"{it['predicted'] if it['predicted'] is not None else '?'}"
                   + (f" ({conf:.0%})" if conf is not None else ""))
        by = "" if it["by"] == "eval" else f" · by {it['by']}"
        cards.append(Raw(f'<figure>{thumb}<figcaption><b>{e(caption)}</b><br>'
                         f'<span class="file">{e(it["file"])}{e(by)}</span></figcaption>'
                         "</figure>"))
    source = "edgeclf eval" if examples[0]["by"] == "eval" else "parity flips"
    shown = f"; {len(cards)} shown" if len(cards) < len(examples) else ""
    out = [tag("h3", f"Misclassified test images ({len(examples)} from {source}{shown})")]
    out.append(Raw('<div class="gallery">' + "".join(cards) + "</div>") if cards else
               note("none of the listed images could be found under the dataset root"))
    if missing:
        out.append(note(f"{missing} listed image(s) missing or unreadable: skipped"))
    return join(out)
