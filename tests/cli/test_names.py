"""Names are data, never markup (issue 21), and the CLI's habits (issues 16 and 18).

One tiny run is made once for the module, through the CLI, from a dataset whose class and
file names hold Rich markup (``[red]``, ``[/]``, ``[bold]x[/bold]``, ``[link=...]``),
an emoji code, emoji, right-to-left text, a control character, a leading ``-`` and
200-character names: ``train`` (in-process), then ``export`` and ``parity`` as real
processes writing to pipes (as ``edgeclf parity RUN > log`` does). Every other command
reuses that run. Each name must come out verbatim: exactly in JSON, and in text as
:func:`edgeclf.cli.common.shown` prints it (control characters made visible, nothing else
changed).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgeclf.cli import app
from edgeclf.cli.common import shown
from edgeclf.fsutil import read_json
from tests.conftest import ROOT
from tests.fixtures.images import rgb

CLASSES = ["dogs[red] [bold]x[",                    # + "/]a.png": the path holds "[/]"
           "-كلب 🐶 :cat: \x1b[31m [link=file:etc]",  # "-", RTL, emoji, ESC, a link tag
           ("[on red]" + "n" * 200)[:200]]           # 200 characters
FILES = ["]a.png", "bold]b.png", "-c 🐱.png", "[link=file:x]d\x07.png", "لللل e.png",
         ("[bold]" + "f" * 200)[:196] + ".png"]
BROKEN = "]bad [red].jpg"               # a problem file: "dogs[red] [bold]x[/]bad [red].jpg"
RUN_NAME = "run[red] 🐶"
LABEL_LINES = ["[/]", "[bold]x[/bold]", "[link=file:///etc/passwd]"]
#: TensorFlow/absl C++ log lines (what `--verbose` shows and the default hides).
NATIVE = re.compile(r"^[IWE]\d{4} \d\d:\d\d|absl::InitializeLog|cpu_feature_guard", re.M)

runner = CliRunner()


def _dataset(root: Path) -> Path:
    for c, colour in zip(CLASSES, [(200, 30, 30), (30, 200, 30), (30, 30, 200)]):
        for f in FILES:
            rgb(root / c / f, size=(40, 40), color=colour)
    (root / CLASSES[0] / BROKEN).write_bytes(b"not an image")
    return root


def _cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    """``edgeclf ARGS`` in a fresh process, stdout and stderr pipes (not a terminal)."""
    return subprocess.run([sys.executable, "-m", "edgeclf", *args], capture_output=True,
                          text=True, env=env, timeout=900, cwd=ROOT)


@pytest.fixture(autouse=True)
def _no_terminal_width(monkeypatch):
    """pytest-xdist's workers set COLUMNS=80, which Rich reads when the CLI's consoles are
    created; a pipe or log file has no width (the CLI then prints full-width rows), which is
    the case these tests check."""
    _wide(monkeypatch)


def _wide(mp: pytest.MonkeyPatch) -> None:
    from edgeclf.cli import common

    mp.delenv("COLUMNS", raising=False)
    for con in (common.console, common.err_console):
        mp.setattr(con, "_width", None)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return _dataset(tmp_path_factory.mktemp("names-data") / "data [red]")


@pytest.fixture(scope="module")
def world(tmp_path_factory, dataset):
    base = tmp_path_factory.mktemp("names")
    data = dataset
    with pytest.MonkeyPatch.context() as mp:
        _wide(mp)
        mp.setenv("EDGECLF_CACHE_DIR", str(base / "cache"))
        trained = runner.invoke(app, [
            "train", str(data), "--backbone", "mobilenetv2_0.35", "--weights", "none",
            "--image-size", "32", "--strategy", "linear-probe", "--epochs", "1",
            "--batch-size", "8", "--no-augment", "--workers", "1",
            "--out", str(base / "models"), "--name", RUN_NAME])
        assert trained.exit_code == 0, trained.output
        run = base / "models" / RUN_NAME
        # a user's shell: no TF_CPP_MIN_LOG_LEVEL (the test session sets one)
        env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
        env.update(EDGECLF_CACHE_DIR=str(base / "cache"), PYTHONPATH=str(ROOT))
        env.pop("COLUMNS", None)                    # no width from the test's terminal
        exported = _cli("export", str(run), "-f", "onnx", env=env)
        parity = _cli("parity", str(run), env=env)
        yield {"base": base, "data": data, "run": run, "train": trained,
               "export": exported, "parity": parity, "env": env}


def _invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def _has_all(text: str, names) -> None:
    for name in names:
        assert shown(name) in text, f"{name!r} not shown verbatim in:\n{text}"


def test_shown_makes_only_control_characters_visible():
    assert shown("a[red]b 🐶 كلب\tc") == "a[red]b 🐶 كلب\tc"
    assert shown("x\x1b[31m\x07y\u202ez") == "x\\x1b[31m\\x07y\\u202ez"


def test_data_check_text_and_json(dataset):
    text = _invoke("data", "check", dataset, "--image-size", "32")
    assert text.exit_code == 0
    _has_all(text.stdout, [*CLASSES, dataset, f"{CLASSES[0]}/{BROKEN}"])
    assert "\x1b" not in text.output                        # the ESC never reaches a terminal
    long_row = next(ln for ln in text.stdout.splitlines() if CLASSES[2] in ln)
    assert re.search(r"│ 6 +│", long_row)                  # one row: not folded at 80 columns
    report = json.loads(_invoke("data", "check", dataset, "--image-size", "32",
                                "--json").stdout)
    assert report["counts"] == {c: 6 for c in CLASSES}
    assert [p["file"] for p in report["problems"]] == [f"{CLASSES[0]}/{BROKEN}"]


def test_train_prints_names_and_each_stage_once(world):
    out = world["train"].output
    _has_all(out, [*CLASSES, world["run"]])
    assert len(re.findall(r"^> decoding ", out, re.M)) == 1
    assert "INFO" not in out
    assert read_json(world["run"] / "run.json")["classes"] == sorted(CLASSES)
    smallest = read_json(world["run"] / "metrics.json")["test"].get("min_recall_class")
    assert smallest is None or f"({shown(smallest)})" in out


def test_export_and_parity_through_a_pipe_are_quiet_and_unwrapped(world):
    for stage in ("export", "parity"):
        proc = world[stage]
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert not NATIVE.search(proc.stdout + proc.stderr), (stage, proc.stderr)
        _has_all(proc.stdout + proc.stderr, [world["run"]])
    rows = [ln for ln in world["parity"].stdout.splitlines() if "model.onnx" in ln]
    assert rows and all("PASS" in ln for ln in rows)        # a full row on one line
    assert read_json(world["run"] / "parity.json")["passed"] is True


def test_verbose_lets_tensorflow_log_lines_through(world):
    """What export/parity above hide is there: with --verbose, TensorFlow's own lines."""
    script = "from edgeclf.cli.quiet import configure; configure(True); import tensorflow"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=world["env"], timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert NATIVE.search(proc.stderr), proc.stderr


def test_eval_text_and_json(world):
    text = _invoke("eval", world["run"], "--out", world["base"] / "eval-text")
    assert text.exit_code == 0
    per_class = text.stdout.split("per class", 1)[1]
    _has_all(per_class, CLASSES)
    data = json.loads(_invoke("eval", world["run"], "--json", "--out",
                              world["base"] / "eval-json").stdout)
    assert data["labels"] == sorted(CLASSES)


@pytest.fixture(scope="module")
def foreign(world):
    """The run's ONNX without its metadata (a model edgeclf did not make), a labels file
    with markup lines, and a data folder with two of the classes."""
    import onnx

    base = world["base"] / "foreign"
    base.mkdir()
    proto = onnx.load(str(world["run"] / "export" / "model.onnx"))
    del proto.metadata_props[:]
    model = base / "[red]someone's.onnx"
    onnx.save(proto, str(model))
    classes = sorted(CLASSES)
    labels = base / "labels [bold].txt"
    labels.write_text("\n".join([LABEL_LINES[1], *classes[1:]]) + "\n", encoding="utf-8")
    markup_labels = base / "markup.txt"
    markup_labels.write_text("\n".join(LABEL_LINES) + "\n", encoding="utf-8")
    data = base / "data"
    for c in classes[1:]:
        shutil.copytree(world["data"] / c, data / c)
    return {"model": model, "labels": labels, "markup_labels": markup_labels, "data": data,
            "labels_list": [LABEL_LINES[1], *classes[1:]]}


def test_eval_foreign_model_with_a_labels_file(world, foreign):
    args = ["eval", foreign["model"], "--labels", foreign["labels"], "--data", foreign["data"]]
    data = json.loads(_invoke(*args, "--json", "--out", world["base"] / "ev1").stdout)
    assert data["labels"] == foreign["labels_list"]
    text = _invoke(*args, "--out", world["base"] / "ev2")
    assert text.exit_code == 0
    _has_all(text.stdout, [foreign["model"].name, *foreign["labels_list"][1:]])
    wrong = _invoke("eval", foreign["model"], "--labels", foreign["markup_labels"], "--data",
                    foreign["data"], "--out", world["base"] / "ev3")
    assert wrong.exit_code == 1 and "Error:" in wrong.output
    _has_all(wrong.output, LABEL_LINES)                     # the labels named in the error


def test_predict_labels_file_and_file_names(world, foreign):
    images = world["data"] / CLASSES[1]
    args = ["predict", foreign["model"], images, "--labels", foreign["markup_labels"],
            "--top-k", "3"]
    text = _invoke(*args)
    assert text.exit_code == 0, text.output
    _has_all(text.stdout, [*LABEL_LINES, *(images / f for f in FILES)])
    lines = [json.loads(ln) for ln in _invoke(*args, "--json").stdout.splitlines()]
    assert sorted(ln["file"] for ln in lines) == sorted(str(images / f) for f in FILES)
    assert all(sorted(t["label"] for t in ln["top"]) == sorted(LABEL_LINES) for ln in lines)
    run = _invoke("predict", world["run"], world["data"], "--top-k", "3")
    assert run.exit_code == 1                                # BROKEN is a failed item
    _has_all(run.stdout, CLASSES)
    _has_all(run.stderr, [world["data"] / CLASSES[0] / BROKEN])
    assert _invoke("predict", world["run"], world["data"], "--skip-bad").exit_code == 0


def test_bench_report_relocate_backbones_doctor(world, monkeypatch):
    quick = ["--formats", "onnx", "--batch-sizes", "1", "--threads", "1", "--runs", "2",
             "--warmup", "1", "--no-baselines", "--in-process"]
    bench = _invoke("bench", world["run"], *quick, "--json")
    assert bench.exit_code == 0, bench.output
    assert json.loads(bench.stdout)["results"][0]["artifact"] == "model.onnx"
    _has_all(bench.stderr, [world["run"]])
    text = _invoke("bench", world["run"], *quick)
    assert text.exit_code == 0 and "model.onnx" in text.stdout
    report = _invoke("report", world["run"])
    _has_all(report.stdout, [world["run"] / "report.html"])
    assert json.loads(_invoke("report", world["run"], "--json").stdout)["report"] == str(
        world["run"] / "report.html")
    moved = _invoke("data", "relocate", world["run"], world["data"])
    assert moved.exit_code == 0, moved.output
    _has_all(moved.stdout, [world["run"], world["data"]])
    keras_home = world["base"] / "keras [red] \x1b[1m"
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    _has_all(_invoke("backbones").stdout, [keras_home / "models"])
    assert len(json.loads(_invoke("backbones", "--json").stdout)) >= 10
    doctor = json.loads(_invoke("doctor", "--json").stdout)
    assert doctor["packages"]["rich"] and "export" in doctor["commands"]
    assert "onnxruntime" in _invoke("doctor").stdout


def test_errors_escape_their_text_and_bad_usage_exits_2(world):
    missing = world["base"] / "gone [/] [bold]x[/bold]"
    result = _invoke("report", missing)
    assert result.exit_code == 1
    _has_all(result.output, [missing])
    result = _invoke("parity", world["run"], "--budget", "int8=[red]2")
    assert result.exit_code == 2 and "int8=[red]2" in result.output
    assert _invoke("parity", world["run"], "--no-such-option").exit_code == 2


def test_bench_a_model_file_with_a_markup_name(world, foreign):
    out = world["base"] / "bench [red]"
    result = _invoke("bench", foreign["model"], "--labels", foreign["markup_labels"],
                     "--output", out, "--batch-sizes", "1", "--threads", "1", "--runs", "2",
                     "--warmup", "1", "--no-baselines", "--in-process")
    assert result.exit_code == 0, result.output
    _has_all(result.stdout, [foreign["model"].name])
    _has_all(result.stderr, [foreign["model"].name, out / "bench.json"])
