"""`edgeclf train DATA_DIR`: fine-tune a pretrained backbone on a folder of images."""

from __future__ import annotations

import os
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn)

from edgeclf.errors import ConfigError, EdgeclfError

from .common import (EXIT_FAILED, EXIT_USAGE, JsonOption, comma_list, console, err_console, esc,
                     handle_errors, next_step, print_error, print_json, refresh_report, table)

if TYPE_CHECKING:
    from edgeclf.train import TrainConfig, TrainResult

_H = "Training"


def _opt(default=None, *names: str, help: str = "", panel: str = _H):  # noqa: A002
    return typer.Option(default, *names, help=help, rich_help_panel=panel, show_default=False)


class ProgressView:
    """Draws the library's ProgressEvents with Rich (one bar per epoch)."""

    def __init__(self) -> None:
        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                            MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                            TimeElapsedColumn(), console=err_console, transient=True)
        self.task = None

    def __call__(self, ev) -> None:  # noqa: ANN001 - edgeclf.train.ProgressEvent
        if ev.kind == "stage":
            err_console.print(f"[cyan]>[/] {esc(ev.message)}", highlight=False, soft_wrap=True)
        elif ev.kind == "epoch_start":
            self.bar.start()
            self.task = self.bar.add_task(f"phase {ev.phase} epoch {ev.epoch}/{ev.epochs}",
                                          total=ev.steps, info="")
        elif ev.kind == "features":
            if self.task is None:
                self.bar.start()
                self.task = self.bar.add_task("features", total=ev.steps, info="")
            self.bar.update(self.task, completed=ev.step)
            if ev.step >= ev.steps:
                self._close()
        elif ev.kind == "step" and self.task is not None:
            self.bar.update(self.task, completed=ev.step,
                            info=f"loss {ev.logs['loss']:.3f} acc {ev.logs['accuracy']:.3f}")
        elif ev.kind == "epoch_end":
            self._close()
            r = ev.logs
            err_console.print(
                f"  phase {r['phase']} epoch {ev.epoch}/{ev.epochs}: loss {r['loss']:.4f} "
                f"acc {r['accuracy']:.4f} val_loss {r['val_loss']:.4f} val_acc "
                f"{r['val_accuracy']:.4f} ({r['images_per_second']:.0f} img/s, "
                f"input wait {100 * r['input_wait']:.0f}%)", highlight=False)


    def _close(self) -> None:
        if self.task is not None:
            self.bar.remove_task(self.task)
            self.task = None
        self.bar.stop()


def print_metrics(result) -> None:  # noqa: ANN001 - edgeclf.train.TrainResult
    m = result.metrics
    test, val = m["test"], m["val"]
    rows = [[name, f"{v['precision']:.3f}", f"{v['recall']:.3f}", f"{v['f1']:.3f}",
             v["support"]] for name, v in test["per_class"].items()]
    console.print(table(f"test split: {test['n']} images", ["class", "precision", "recall",
                                                             "f1", "support"], rows))

    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{100 * x:.2f}%"

    console.print(f"[bold]test accuracy {pct(test['accuracy'])}[/]  top-5 "
                  f"{pct(test['top5'])}  macro F1 {pct(test.get('macro_f1'))}  smallest "
                  f"recall {pct(test.get('min_recall'))} ({esc(test.get('min_recall_class'))})  "
                  f"val accuracy {pct(val['accuracy'])}  "
                  f"(best epoch {m['best_epoch']}, phase {m['best_phase']}; "
                  f"{m['train_seconds']:.0f}s training, {m['images_per_second']:.0f} img/s)")
    if m.get("strategy"):
        console.print(f"strategy {esc(m['strategy'])}: {esc(m.get('strategy_reason', ''))}",
                      highlight=False)
    console.print(f"run: {esc(result.run_dir)}", soft_wrap=True)


def register(app: typer.Typer) -> None:
    @app.command("train")
    @handle_errors
    def train_command(
        data_dir: Optional[Path] = typer.Argument(None, help="Folder with one sub-folder per "
                                                  "class (optional with --config/--resume)."),
        config: Optional[Path] = _opt(None, "--config", help="TOML/YAML file or a run's "
                                      "run.json; flags given here override it."),
        out: Optional[str] = _opt(None, "--out", help="Folder of runs (default: models)."),
        name: Optional[str] = _opt(None, "--name", help="Run name (default: <data>-<backbone>)."),
        backbone: Optional[str] = _opt(None, "--backbone", "-b",
                                       help="See `edgeclf backbones` (default: mobilenetv2)."),
        ensemble: Optional[str] = _opt(None, "--ensemble", help="Members of --backbone "
                                       "ensemble, comma-separated."),
        weights: Optional[str] = _opt(None, "--weights", "-w", help="imagenet | none | PATH "
                                      "to an official Keras weights .h5 (default: imagenet)."),
        image_size: Optional[int] = _opt(None, "--image-size", help="Input size (default: backbone's)."),
        strategy: Optional[str] = _opt(None, "--strategy", help="auto (default: the best "
                                       "path that fits --time-budget, printed with its "
                                       "reason) | fine-tune | linear-probe | cut-fine-tune."),
        time_budget: Optional[str] = _opt(None, "--time-budget", help="Wall-time budget "
                                          "auto plans for: 600, 90s, 10m, 1h (default 10m)."),
        head: Optional[str] = _opt(None, "--head", help="linear | mlp (default: linear)."),
        dropout: Optional[float] = _opt(None, "--dropout", help="Head dropout."),
        epochs: Optional[int] = _opt(None, "--epochs", "-e", help="Phase 1 epochs."),
        fine_tune_epochs: Optional[int] = _opt(None, "--fine-tune-epochs",
                                               help="Phase 2 epochs (default: 0)."),
        unfreeze: Optional[str] = _opt(None, "--unfreeze", help="Phase 2: last N layers of "
                                       "the backbone, or 'all'."),
        batch_size: Optional[int] = _opt(None, "--batch-size", help="Images per step (default: 32)."),
        optimizer: Optional[str] = _opt(None, "--optimizer",
                                        help="adam|adamw|sgd|rmsprop|adadelta|adagrad."),
        lr: Optional[float] = _opt(None, "--lr", help="Phase 1 learning rate."),
        fine_tune_lr: Optional[float] = _opt(None, "--fine-tune-lr", help="Phase 2 LR."),
        momentum: Optional[float] = _opt(None, "--momentum", help="SGD/RMSprop momentum."),
        nesterov: Optional[bool] = _opt(None, "--nesterov/--no-nesterov"),
        weight_decay: Optional[float] = _opt(None, "--weight-decay"),
        schedule: Optional[str] = _opt(None, "--schedule", help="cosine | constant."),
        warmup_epochs: Optional[float] = _opt(None, "--warmup-epochs"),
        label_smoothing: Optional[float] = _opt(None, "--label-smoothing"),
        class_weights: Optional[str] = _opt(None, "--class-weights", help="auto (balanced "
                                            "when classes are >= 2x imbalanced) | none | "
                                            "balanced."),
        augment: Optional[bool] = _opt(None, "--augment/--no-augment", panel="Augmentation"),
        rotation: Optional[float] = _opt(None, "--rotation", help="Degrees.",
                                         panel="Augmentation"),
        width_shift: Optional[float] = _opt(None, "--width-shift", panel="Augmentation"),
        height_shift: Optional[float] = _opt(None, "--height-shift", panel="Augmentation"),
        shear: Optional[float] = _opt(None, "--shear", help="Degrees.", panel="Augmentation"),
        zoom: Optional[float] = _opt(None, "--zoom", panel="Augmentation"),
        channel_shift: Optional[float] = _opt(None, "--channel-shift", panel="Augmentation"),
        horizontal_flip: Optional[bool] = _opt(None, "--horizontal-flip/--no-horizontal-flip",
                                               "--flip/--no-flip", help="Mirrored images: "
                                               "augmentation, and extra rows for the head "
                                               "on cached features.", panel="Augmentation"),
        patience: Optional[int] = _opt(
            None, "--patience", help="Early stopping after N epochs without a better val "
            "score (accuracy; mean recall with class weights), never in a phase's first "
            "half; not in the cut fine-tune, whose planned epochs all run (default 5; 0: off)."),
        split: Optional[str] = _opt(None, "--split", help="train,val,test (default: 70,20,10)."),
        seed: Optional[int] = _opt(None, "--seed"),
        backend: Optional[str] = _opt(None, "--backend", help="tensorflow | jax "
                                      "[$KERAS_BACKEND or tensorflow].", panel="Runtime"),
        mixed_precision: Optional[str] = _opt(None, "--mixed-precision", help="bfloat16 | "
                                              "float16.", panel="Runtime"),
        workers: Optional[int] = _opt(None, "--workers", help="Loader threads.",
                                      panel="Runtime"),
        cache_budget: Optional[str] = _opt(None, "--cache-budget", help="Most disk the "
                                           "decode cache may take (500M, 20G; 0: stream) "
                                           "[$EDGECLF_CACHE_BUDGET or no cap].",
                                           panel="Runtime"),
        steps_per_epoch: Optional[int] = _opt(None, "--steps-per-epoch", panel="Runtime"),
        num_processes: Optional[int] = _opt(None, "--num-processes", help="Processes "
                                            "training together, data parallel on JAX (one "
                                            "per host or GPU) [$JAX_NUM_PROCESSES or 1].",
                                            panel="Across processes"),
        process_id: Optional[int] = _opt(None, "--process-id", help="This process: 0 .. "
                                         "N-1; 0 writes the run [$JAX_PROCESS_ID].",
                                         panel="Across processes"),
        coordinator: Optional[str] = _opt(None, "--coordinator", help="HOST:PORT of "
                                          "process 0 [$JAX_COORDINATOR_ADDRESS].",
                                          panel="Across processes"),
        resume: bool = typer.Option(False, "--resume", help="Continue the run from its last "
                                    "completed epoch.", rich_help_panel="Runtime"),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run.",
                                       rich_help_panel="Runtime"),
        as_json: JsonOption = False,
    ) -> None:
        """Fine-tune a pretrained backbone on DATA_DIR; writes models/<name>/."""
        flags = {k: v for k, v in locals().items()
                 if k not in ("config", "as_json") and v is not None}
        flags["data_dir"] = str(data_dir) if data_dir else None
        if ensemble:
            flags["ensemble"] = comma_list(ensemble) or ()
        if backend:
            os.environ["KERAS_BACKEND"] = backend       # before Keras is imported
        from edgeclf.train import TrainConfig

        flags["resume"], flags["overwrite"] = resume or None, overwrite or None
        cfg = (TrainConfig.from_file(config, **flags) if config else
               TrainConfig.from_dict({}, **flags))
        if cfg.resume and cfg.data_dir is None:
            cfg = _with_saved_data_dir(cfg)
        result = _train(cfg)
        if result.process_id:
            err_console.print(f"process {result.process_id} of {result.num_processes} done; "
                              "process 0 wrote the run", highlight=False)
            return
        refresh_report(result.run_dir)
        if as_json:
            print_json({"run_dir": str(result.run_dir), "metrics": result.metrics})
        else:
            print_metrics(result)
        next_step(f"edgeclf export {result.run_dir} --format onnx")


def _train(cfg: TrainConfig) -> TrainResult:
    """``train``; a process of a multi-process run that fails prints its error and leaves
    at once, so the others see it gone (JAX's exit handler would wait for them)."""
    from edgeclf.train import cluster, train

    try:
        return train(cfg, progress=ProgressView())
    except Exception as e:
        if cluster.started() is None:
            raise
        if isinstance(e, EdgeclfError):
            print_error(e)
        else:
            traceback.print_exc()
        cluster.abandon(EXIT_USAGE if isinstance(e, ConfigError) else EXIT_FAILED)


def _with_saved_data_dir(cfg):  # noqa: ANN001, ANN202
    import dataclasses

    from edgeclf.fsutil import read_json
    from edgeclf.run import RunPaths

    resolved = cfg.resolve()
    paths = RunPaths(Path(resolved.out) / resolved.name).require()
    saved = read_json(paths.run_json).get("config", {})
    return dataclasses.replace(cfg, data_dir=saved.get("data_dir"))
