"""`edgeclf data check` and `edgeclf doctor` through the CLI."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from edgeclf.cli import app
from tests import imagefactory as mk

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


def test_data_check_missing_folder_is_error_exit_1(tmp_path):
    result = runner.invoke(app, ["data", "check", str(tmp_path / "missing")])
    assert result.exit_code == 1
    assert "Error:" in result.output and "does not exist" in result.output


def test_doctor_reports_versions_and_commands():
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    for word in ("onnxruntime", "numpy", "commands", "providers"):
        assert word in result.output
