"""`edgeclf parity` and `edgeclf eval`: thin layers over edgeclf.parity and edgeclf.evaluate."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgeclf.errors import BudgetError

from .common import (JsonOption, comma_list, console, esc, handle_errors, next_step, note,
                     print_json, refresh_report, stage_bars, styled, table)

#: Per-class rows printed by `eval` before switching to the worst classes only.
MAX_CLASS_ROWS = 30


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.2%}"


def _print_parity(result) -> None:
    ref = result.reference
    console.print(f"Parity on split [bold]{esc(result.split)}[/]: {result.n_images} images "
                  f"(batch 1 and {result.batch_size}); reference {esc(Path(ref['file']).name)}: "
                  f"accuracy {_pct(ref['accuracy'])}, top-5 {_pct(ref['top5'])}")
    if result.skipped:
        kinds: dict[str, int] = {}
        for s in result.skipped:
            kinds[s.reason] = kinds.get(s.reason, 0) + 1
        console.print(f"[yellow]{len(result.skipped)} image(s) skipped[/] ("
                      + esc(", ".join(f"{n} {k}" for k, n in kinds.items())) + "): "
                      + esc(", ".join(s.file for s in result.skipped[:5]))
                      + (" ..." if len(result.skipped) > 5 else ""))
    for w in result.warnings:
        console.print(f"[yellow]warning:[/] {esc(w)}")
    rows = []
    for a in result.artifacts:
        status = styled("PASS", "green") if a.passed else styled("FAIL: " + "; ".join(
            a.breaches + ([a.error] if a.error and a.error not in a.breaches else [])), "red")
        rows.append([a.file, a.format, a.quantization, _pct(a.agreement),
                     "-" if a.max_abs_diff is None else f"{a.max_abs_diff:.1e}",
                     "-" if a.mean_abs_diff is None else f"{a.mean_abs_diff:.1e}",
                     _pct(a.accuracy),
                     "-" if a.accuracy_delta is None else f"{a.accuracy_delta:+.2f}",
                     _pct(a.top5), a.n_flipped,
                     _pct(a.batch.get("agreement")) if a.batch else "-", status])
    console.print(table(None, ["artifact", "format", "quant", "agree", "max |dp|", "mean |dp|",
                               "acc", "Δacc pt", "top-5", "flips", "b1=bN", "status"], rows))
    modes = {a.file: a.batch["mode"] for a in result.artifacts if a.batch}
    for file, mode in modes.items():
        if "fixed" in mode:
            console.print(f"[dim]{esc(file)}: {esc(mode)}[/]")


def _parity(run: Path = typer.Argument(..., help="Run directory (models/<name>)."),
            split: str = typer.Option("test", "--split", help="test or val."),
            max_images: Optional[int] = typer.Option(
                None, "--max-images", help="Use at most N images (class-balanced)."),
            formats: Optional[list[str]] = typer.Option(
                None, "--formats", "--format",
                help="Only these formats (savedmodel, onnx, tflite; repeat or comma-separate)."),
            budget: Optional[list[str]] = typer.Option(
                None, "--budget", help="Override a budget: QUANT.FIELD=VALUE, e.g. "
                "int8.max_accuracy_drop=2, none.max_abs_diff=1e-3, float16.min_agreement=off. "
                "Fields: min_agreement, max_abs_diff, max_accuracy_drop, min_batch_agreement."),
            budget_file: Optional[Path] = typer.Option(
                None, "--budget-file", help='Budgets as JSON: {"int8": {"max_accuracy_drop": '
                '2}, "none": {"max_abs_diff": 1e-3}} (--budget flags apply after it).'),
            batch_size: int = typer.Option(16, "--batch-size", help="The batch > 1 checked."),
            as_json: JsonOption = False,
            ) -> None:
    """Check every exported artifact against the Keras checkpoint on the run's images."""
    from edgeclf.parity import check_parity, parse_budgets

    budgets = parse_budgets(budget or [], file=budget_file)
    with stage_bars() as progress:
        result = check_parity(run, split=split, max_images=max_images,
                              formats=comma_list(formats), budgets=budgets,
                              batch_size=batch_size, progress=progress)
    refresh_report(run)
    if as_json:
        print_json(result.to_dict())
    else:
        _print_parity(result)
    note(f"Wrote {esc(Path(run) / 'parity.json')} and the manifest's parity summaries")
    if not result.passed:
        raise BudgetError("parity failed for " + ", ".join(
            f"{a.file} ({'; '.join(a.breaches)})" for a in result.failed))
    next_step(f"edgeclf bench {run}")


def _print_eval(result, out: Path) -> None:
    m = result.metrics
    console.print(f"{esc(Path(result.model).name)} ({esc(result.format)}, "
                  f"{esc(result.quantization)}) on {esc(result.source)}: {result.n_images} "
                  "images, accuracy "
                  f"[bold]{m.accuracy:.2%}[/], top-{m.top_k} {m.top_k_accuracy:.2%}, "
                  f"macro F1 {m.macro_f1:.3f}")
    if result.skipped:
        console.print(f"[yellow]{len(result.skipped)} image(s) skipped[/]: " + esc(", ".join(
            f"{s['file']} ({s['reason']})" for s in result.skipped[:5])))
    for w in result.warnings:
        console.print(f"[yellow]warning:[/] {esc(w)}")
    scores = [c for c in m.per_class if c.support]   # classes with images in the data
    title = "per class"
    if len(scores) > MAX_CLASS_ROWS:
        scores = sorted(scores, key=lambda c: (c.f1, c.label))[:MAX_CLASS_ROWS]
        title = f"the {MAX_CLASS_ROWS} classes with the lowest F1"
    if len(scores) < len(m.per_class):
        title += f" ({len(m.per_class) - len(scores)} classes without images not listed)"
    console.print(table(title, ["class", "precision", "recall", "F1", "support"],
                        [[c.label, f"{c.precision:.3f}", f"{c.recall:.3f}", f"{c.f1:.3f}",
                          c.support] for c in scores]))
    if m.worst_confusions:
        console.print(table("worst confusions", ["true", "predicted as", "images", "of class"],
                            [[c.true, c.predicted, c.count, f"{c.rate:.1%}"]
                             for c in m.worst_confusions]))
    note(f"Wrote {esc(out / 'eval.json')} and {esc(out / 'confusion_matrix.png')}")


def _eval(target: Path = typer.Argument(..., help="A run directory, or a model file: .keras, "
                                         "SavedModel folder, .onnx, .tflite."),
          split: str = typer.Option("test", "--split", help="The run's split (test, val)."),
          data: Optional[Path] = typer.Option(
              None, "--data", help="A folder with one sub-folder per class (named as the "
              "labels) instead of the run's split."),
          labels: Optional[Path] = typer.Option(
              None, "--labels", help="Labels file (one class per line) for a model that "
              "carries none."),
          max_images: Optional[int] = typer.Option(None, "--max-images"),
          out: Optional[Path] = typer.Option(
              None, "--out", help="Output folder (default: the run; RUN/eval/<artifact>/ for "
              "an artifact; ./eval-<name>/ for another model file)."),
          as_json: JsonOption = False,
          ) -> None:
    """Evaluate a run's checkpoint or any model file (see EVAL_HELP)."""
    from edgeclf.evaluate import default_out_dir, evaluate, write_eval

    with stage_bars() as progress:
        result = evaluate(target, split=split, data=data, labels=labels,
                          max_images=max_images, progress=progress)
    out_dir = out or default_out_dir(target)
    write_eval(result, out_dir)
    refresh_report(out_dir)
    if as_json:
        print_json(result.to_dict())
        note(f"Wrote {esc(out_dir / 'eval.json')}")
    else:
        _print_eval(result, out_dir)


PARITY_HELP = (
    "Check every exported artifact against the Keras checkpoint on the run's real held-out "
    "images (preprocessed once, run at batch 1 and at batch > 1).\n\n"
    "Exits 1 when any artifact breaches its budget: float32 100% top-1 agreement and max "
    "prob diff <= 1e-4; float16 >= 99.5% agreement; dynamic/int8 accuracy drop <= 1 point; "
    "every artifact the same top-1 at batch 1 and batch > 1. Writes RUN/parity.json and "
    "each manifest entry's \"parity\" summary.")


EVAL_HELP = (
    "Accuracy, top-5, per-class precision/recall/F1, worst confusions and a confusion-matrix "
    "image (eval.json, confusion_matrix.png) for a run's checkpoint or any model file: "
    "SavedModel, ONNX or TFLite, also one edgeclf did not make (with --labels and --data).")


def register(app: typer.Typer) -> None:
    app.command("parity", help=PARITY_HELP)(handle_errors(_parity))
    app.command("eval", help=EVAL_HELP)(handle_errors(_eval))
