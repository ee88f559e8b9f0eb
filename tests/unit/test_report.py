"""report.html: every section from a hand-written run, "not run yet" sections, odd files."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
from pathlib import Path

import pytest

from edgeclf.errors import RunError
from edgeclf.report.html import SECTIONS, refresh_report, render_report, write_report
from tests.fixtures.reportrun import make_full_run, make_run_json


def _section(html: str, sid: str) -> str:
    m = re.search(rf'<section id="{sid}" class="sec-([a-z-]+)">(.*?)</section>', html, re.S)
    assert m, f"section {sid!r} missing"
    return m.group(1) + "|" + m.group(2)


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> tuple[Path, str]:
    run = make_full_run(tmp_path_factory.mktemp("report"))
    path = write_report(run)
    return run, path.read_text(encoding="utf-8")


def test_every_section_present_with_content(full):
    run, html = full
    assert (run / "report.html").is_file()
    assert _section(html, "overview").startswith("done|")
    dataset = _section(html, "dataset")
    assert dataset.startswith("done|") and "Validation warnings" in dataset
    assert "1 file(s) skipped: rose/broken.jpg" in dataset and "Split (seed 0)" in dataset
    training = _section(html, "training")
    assert training.startswith("done|") and 'alt="training curves"' in training
    assert re.search(r"<td>1</td><td>3</td><td>65.00%</td><td>3</td>.*<td>6.0 s</td>.*"
                     r"<td>2</td><td>2</td><td>84.00%</td><td>5</td>", training, re.S)
    assert "epoch 5 (phase 2)" in training and "65.00% / 84.00%" in training
    ev = _section(html, "evaluation")
    assert 'alt="confusion matrix"' in ev and "Worst confusions" in ev
    assert "skipped images</th><td>1 (missing" in ev and "macro F1" in ev
    # examples come from the parity flips: the int8 artifact's rose->tulip, Keras' tulip->rose
    assert ev.count('class="thumb"') == 4 and "by model.int8.onnx" in ev and "by Keras" in ev
    assert "Misclassified test images (2 from parity flips)" in ev
    export = _section(html, "export")
    assert all(f in export for f in ("model.onnx", "model.int8.onnx", "model.tflite"))
    assert "0.28×" in export                               # int8 size vs float32
    parity = _section(html, "parity")
    assert parity.startswith("problem|") and "91.67%" in parity and "-8.33 pt" in parity
    assert "2 flipped image(s)" in parity and "accuracy drop 8.33 pt &gt; 1.0 pt" in parity
    bench = _section(html, "bench")
    assert "<td>CPU</td>" in bench and 'alt="latency plot"' in bench
    assert "earlier runs in bench.json</th><td>1<" in bench
    assert "not run yet" not in html


def test_user_text_is_escaped(full):
    _, html = full
    assert "<b>tulip</b>" not in html
    assert "&lt;b&gt;tulip&lt;/b&gt; &amp; co" in html


def test_self_contained_no_network(full):
    _, html = full
    refs = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert refs and all(r.startswith(("data:", "#")) for r in refs), refs
    assert "<link" not in html and "<script" not in html and "url(" not in html


def test_only_run_json_says_not_run_yet(tmp_path):
    run = tmp_path / "models" / "fresh"
    make_run_json(run, tmp_path / "data", "fresh")
    html = render_report(run)
    for sid, cmd in (("export", f"edgeclf export {run}"), ("parity", f"edgeclf parity {run}"),
                     ("bench", f"edgeclf bench {run}"), ("evaluation", f"edgeclf eval {run}"),
                     ("training", f"edgeclf train {tmp_path / 'data'} --name fresh --out "
                                  f"{run.parent}"),
                     ("dataset", "edgeclf train")):
        body = _section(html, sid)
        assert body.startswith("not-run|") and "not run yet" in body, sid
        assert cmd in body, (sid, body)
    assert _section(html, "overview").startswith("done|")


def test_odd_files_are_reported_in_their_section(tmp_path, caplog):
    run = make_full_run(tmp_path)
    (run / "parity.json").write_text("{not json")
    (run / "export" / "manifest.json").write_text(json.dumps({"artifacts": "model.onnx"}))
    (run / "metrics.json").write_text(json.dumps([1, 2]))
    (run / "bench.json").write_text(json.dumps({"runs": ["x", {"results": [{"p50_ms": "?"}]}]}))
    (run / "history.csv").write_text("")
    (run / "eval.json").write_text(json.dumps({"confusion_matrix": [[1, 2]], "accuracy": "n/a"}))
    with caplog.at_level(logging.WARNING):
        html = write_report(run).read_text()
    assert "parity.json cannot be read" in _section(html, "parity")
    assert "lists no artifacts" in _section(html, "export")
    training = _section(html, "training")
    assert "metrics.json holds a JSON list" in training
    assert "history.csv has no header row" in training
    assert "best.keras" in training                        # what could be read is still shown
    ev = _section(html, "evaluation")
    assert ev.startswith("problem|") and "metrics.json holds a JSON list" in ev
    bench = _section(html, "bench")
    assert "no latency plot" in bench and "<td>?</td>" in bench
    assert _section(html, "dataset").startswith("done|")   # the rest of the page is intact


def test_newer_formats_with_unknown_keys_and_missing_keys(tmp_path):
    run = make_full_run(tmp_path)
    parity = json.loads((run / "parity.json").read_text())
    for a in parity["artifacts"]:
        a.pop("max_abs_diff")
        a["future_key"] = {"nested": [1, 2]}
    parity["schema"] = 7
    parity["artifacts"][1]["n_flipped"] = 240          # the writer caps the listed flips
    (run / "parity.json").write_text(json.dumps(parity))
    with open(run / "history.csv", "w") as fh:   # named phases, and an extra metric
        fh.write("phase,epoch,loss,val_loss,val_accuracy,lr\nhead,0,1.0,1.1,0.5,0.001\n"
                 "head,1,0.8,0.9,0.6,0.001\nfinetune,0,0.5,0.6,0.8,0.0001\n")
    html = render_report(run)
    assert _section(html, "parity").startswith("problem|")  # passed: false, drawn normally
    assert "<td>—</td>" in _section(html, "parity")
    assert "model.int8.onnx: 240 flipped image(s) (first 2 shown)" in _section(html, "parity")
    training = _section(html, "training")
    assert "<td>head</td><td>2</td>" in training and "<td>finetune</td><td>1</td>" in training


def test_keras_csvlogger_history_phases_from_epoch_reset_and_resume_duplicates(tmp_path):
    run = make_full_run(tmp_path)
    with open(run / "history.csv", "w") as fh:   # no phase column; epoch 1 logged twice
        fh.write("epoch,accuracy,loss,val_accuracy,val_loss\n0,0.5,1.2,0.4,1.3\n"
                 "1,0.6,1.0,0.5,1.1\n1,0.61,0.99,0.52,1.08\n2,0.7,0.8,0.6,0.9\n"
                 "0,0.8,0.6,0.7,0.7\n1,0.9,0.4,0.75,0.6\n")
    training = _section(render_report(run), "training")
    assert "1 repeated epoch row(s)" in training and 'alt="training curves"' in training
    assert re.search(r"<td>1</td><td>3</td><td>60.00%</td>.*<td>2</td><td>2</td>"
                     r"<td>75.00%</td>", training, re.S)


def test_misclassified_list_in_eval_json_missing_files_skipped(tmp_path):
    run = make_full_run(tmp_path)
    ev = json.loads((run / "eval.json").read_text())
    ev["misclassified"] = [{"file": "daisy/img 0.jpg", "true": "daisy", "predicted": "rose",
                            "confidence": 0.61},
                           {"file": "rose/deleted since training.jpg", "true": "rose",
                            "predicted": "daisy"},
                           {"file": "../../../etc/passwd", "true": "x", "predicted": "y"}]
    (run / "eval.json").write_text(json.dumps(ev))
    (run / "parity.json").unlink()
    ev_html = _section(render_report(run), "evaluation")
    assert "daisy → rose (61%)" in ev_html
    assert "(3 from edgeclf eval; 1 shown)" in ev_html
    assert "2 listed image(s) missing or unreadable: skipped" in ev_html
    assert ev_html.count('class="thumb"') == 1


def test_confusion_png_is_inlined_when_present(tmp_path):
    run = make_full_run(tmp_path)
    png = (run / "bench.json").parent / "confusion_matrix.png"
    from PIL import Image

    Image.new("RGB", (20, 10), (200, 0, 0)).save(png)
    html = render_report(run)
    assert base64.b64encode(png.read_bytes()).decode() in _section(html, "evaluation")
    (run / "bench.png").write_bytes(b"not a png")
    assert "bench.png not shown: bench.png is not a PNG file" in render_report(run)


def test_not_a_run_raises_and_refresh_never_raises(tmp_path, caplog):
    with pytest.raises(RunError):
        write_report(tmp_path / "nope")
    with caplog.at_level(logging.WARNING):
        assert refresh_report(tmp_path / "nope") is None   # not a run: skipped quietly
        assert refresh_report(tmp_path) is None
    assert caplog.text == ""
    run = make_full_run(tmp_path)
    (run / "report.html").mkdir()                        # cannot be replaced by a file
    with caplog.at_level(logging.WARNING):
        assert refresh_report(run) is None
    assert "could not refresh" in caplog.text and "is a directory" in caplog.text
    assert refresh_report(run.parent / "demo-run") is None
    assert [p.name for p in run.iterdir() if ".partial" in p.name] == []


def test_section_table_matches_page_order(full):
    _, html = full
    order = [m for m in re.findall(r'<section id="([a-z]+)"', html)]
    assert order == [sid for sid, _, _ in SECTIONS]


def test_cli_writes_report_and_errors_cleanly(tmp_path):
    from typer.testing import CliRunner

    from edgeclf.cli import app

    run = tmp_path / "models" / "cli-run"
    make_run_json(run, tmp_path / "data", "cli-run")
    result = CliRunner().invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    assert (run / "report.html").is_file()
    assert str(run / "report.html") in result.output.replace("\n", "")
    bad = CliRunner().invoke(app, ["report", str(tmp_path / "missing")])
    assert bad.exit_code == 1 and "Error:" in bad.output


def test_interrupted_training_says_how_to_continue(tmp_path):
    from edgeclf.run import RunPaths, run_lock

    run = make_full_run(tmp_path)
    (run / "metrics.json").unlink()
    training = _section(render_report(run), "training")
    assert training.startswith("partial|") and "--overwrite" in training
    (run / "checkpoints" / "state.json").write_text('{"global_epoch": 2}')
    training = _section(render_report(run), "training")
    assert "training did not finish (interrupted?); resume it" in training
    assert f"--name demo-run --out {run.parent} --resume" in training
    with run_lock(RunPaths(run)):
        assert f"training is running (pid {os.getpid()})" in _section(render_report(run),
                                                                        "training")


def test_confusion_is_drawn_from_sparse_cells_without_the_png(tmp_path):
    """Past 256 classes eval.json lists [true, predicted, count] cells instead of a matrix;
    without confusion_matrix.png the report draws the figure from those cells."""
    run = make_full_run(tmp_path)
    (run / "confusion_matrix.png").unlink(missing_ok=True)
    ev = json.loads((run / "eval.json").read_text())
    n = len(ev.get("labels") or json.loads((run / "run.json").read_text())["classes"])
    ev.pop("confusion_matrix", None)
    ev.pop("confusion", None)
    ev["confusion_cells"] = [[i, i, 5] for i in range(n)] + [[0, n - 1, 2], [n + 3, 0, 1]]
    (run / "eval.json").write_text(json.dumps(ev))
    html = _section(render_report(run), "evaluation")
    assert 'alt="confusion matrix"' in html and "not drawn" not in html
    ev["confusion_cells"] = []
    (run / "eval.json").write_text(json.dumps(ev))
    assert "no confusion matrix yet" in _section(render_report(run), "evaluation")


def test_small_classes_are_flagged_in_the_dataset_section(tmp_path):
    run = make_full_run(tmp_path)
    path = run / "data_report.json"
    report = json.loads(path.read_text(encoding="utf-8"))
    report["small_classes"] = ["rose"]
    path.write_text(json.dumps(report), encoding="utf-8")
    dataset = _section(write_report(run).read_text(encoding="utf-8"), "dataset")
    rows = {m.group(1): m.group(0) for m in re.finditer(r"<tr><td>([^<]*)</td>.*?</tr>",
                                                          dataset, re.S)}
    assert "small: &gt;= 5x fewer than the largest" in rows["rose"]
    assert "small" not in rows["daisy"]
