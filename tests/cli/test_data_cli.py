"""`edgeclf data check` and `edgeclf doctor` through the CLI."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from edgeclf.cli import app
from tests.fixtures import images as mk

runner = CliRunner()


def test_data_check_json_names_bad_files(tmp_path):
    for i in range(3):
        mk.rgb(tmp_path / "a" / f"{i}.jpg")
        mk.rgb(tmp_path / "b" / f"{i}.jpg", color=(0, 0, 200))
    (tmp_path / "b" / "bad.jpg").write_text("nope")
    result = runner.invoke(app, ["data", "check", str(tmp_path), "--json", "--image-size", "32"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{"):])
    assert report["counts"] == {"a": 3, "b": 3}
    assert [p["file"] for p in report["problems"]] == ["b/bad.jpg"]


def test_data_check_cache_budget_and_sample(tmp_path, monkeypatch):
    from edgeclf.data.cache import cache_root

    for i in range(4):
        mk.rgb(tmp_path / "a" / f"{i}.jpg")
        mk.rgb(tmp_path / "b" / f"{i}.jpg", color=(0, 0, 200))
    args = ["data", "check", str(tmp_path), "--image-size", "32"]
    monkeypatch.setenv("EDGECLF_CACHE_BUDGET", "0")
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "not written" in result.output and "per epoch" in result.output
    assert not list(cache_root().rglob("images.u8"))          # nothing cached
    result = runner.invoke(app, args + ["--cache-budget", "10"])
    assert result.exit_code == 2 and "smaller than one cached image" in result.output  # usage
    monkeypatch.delenv("EDGECLF_CACHE_BUDGET")
    result = runner.invoke(app, args + ["--cache-budget", "1M"])
    assert result.exit_code == 0 and "writing" in result.output
    assert len(list(cache_root().rglob("images.u8"))) == 1
    result = runner.invoke(app, args + ["--sample", "3", "--json"])
    report = json.loads(result.stdout[result.stdout.index("{"):])
    assert report["sample"] == {"checked": 3, "listed": 8}
    assert sum(report["counts"].values()) == 3


def test_data_check_missing_folder_is_error_exit_1(tmp_path):
    result = runner.invoke(app, ["data", "check", str(tmp_path / "missing")])
    assert result.exit_code == 1
    assert "Error:" in result.output and "does not exist" in result.output


def test_doctor_reports_versions_and_commands():
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    for word in ("onnxruntime", "numpy", "commands", "providers"):
        assert word in result.output


def _run_trained_on(data, run):
    """A run directory as training leaves it: split.json (with hashes) and run.json."""
    from edgeclf.data import scan_dataset
    from edgeclf.data.split import make_split
    from edgeclf.fsutil import write_json

    ds = scan_dataset(data)
    split = make_split(ds.root, ds.classes, [it.relpath for it in ds.items], seed=0,
                       hashes={it.relpath: it.sha256 for it in ds.items})
    run.mkdir()
    split.write(run / "split.json")
    write_json(run / "run.json", {"dataset": {"root": str(ds.root), "fingerprint": "x"}})


def test_data_relocate_points_a_run_at_its_moved_dataset(tmp_path):
    import shutil

    for i in range(5):
        mk.rgb(tmp_path / "gpu" / "a" / f"{i}.jpg", color=(10 * i, 0, 0))
        mk.rgb(tmp_path / "gpu" / "b" / f"{i}.jpg", color=(0, 10 * i, 200))
    _run_trained_on(tmp_path / "gpu", tmp_path / "run")
    shutil.copytree(tmp_path / "gpu", tmp_path / "here")
    shutil.rmtree(tmp_path / "gpu")                 # the training machine's folder is gone
    result = runner.invoke(app, ["data", "relocate", str(tmp_path / "run"),
                                 str(tmp_path / "here")])
    assert result.exit_code == 0, result.output
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert split["root"] == str((tmp_path / "here").resolve())
    run_json = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run_json["dataset"]["root"] == split["root"]


def test_data_relocate_refuses_other_images(tmp_path):
    for i in range(5):
        mk.rgb(tmp_path / "gpu" / "a" / f"{i}.jpg", color=(10 * i, 0, 0))
        mk.rgb(tmp_path / "gpu" / "b" / f"{i}.jpg", color=(0, 10 * i, 200))
    _run_trained_on(tmp_path / "gpu", tmp_path / "run")
    before = (tmp_path / "run" / "split.json").read_text()
    mk.rgb(tmp_path / "gpu" / "a" / "0.jpg", color=(1, 2, 3))      # content changed
    result = runner.invoke(app, ["data", "relocate", str(tmp_path / "run"),
                                 str(tmp_path / "gpu")])
    assert result.exit_code == 1 and "other content" in result.output
    (tmp_path / "gpu" / "b" / "4.jpg").unlink()                     # and a file missing
    result = runner.invoke(app, ["data", "relocate", str(tmp_path / "run"),
                                 str(tmp_path / "gpu")])
    assert result.exit_code == 1 and "1 file(s) missing" in result.output
    assert (tmp_path / "run" / "split.json").read_text() == before  # nothing rewritten
    result = runner.invoke(app, ["data", "relocate", str(tmp_path / "nope"),
                                 str(tmp_path / "gpu")])
    assert result.exit_code == 1 and "split.json" in result.output
