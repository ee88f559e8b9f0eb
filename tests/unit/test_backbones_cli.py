"""`edgeclf backbones` lists the registry."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from edgeclf.backbones import BACKBONES
from edgeclf.cli import app


def test_backbones_table_and_json():
    runner = CliRunner()
    res = runner.invoke(app, ["backbones"])
    assert res.exit_code == 0, res.output
    for name in ("mobilenetv2", "efficientnetb3", "ensemble"):
        assert name in res.output
    res = runner.invoke(app, ["backbones", "--json"])
    rows = json.loads(res.output)
    assert [r["name"] for r in rows] == list(BACKBONES)
    assert {r["name"]: r["default_size"] for r in rows}["xception"] == 299
