"""report.html renders in a real headless browser (Debian's chromium) into a non-blank page."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeclf.report.html import write_report
from tests.fixtures.reportrun import make_full_run

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "report_screenshot.py"


def _screenshot_module():
    spec = importlib.util.spec_from_file_location("report_screenshot", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_report_renders_in_headless_chromium(tmp_path):
    shot = _screenshot_module()
    if shot.find_chromium() is None:
        pytest.skip("no Chromium binary (apt-get install chromium, or set EDGECLF_CHROMIUM): "
                    "the headless render check cannot run here")
    html = write_report(make_full_run(tmp_path))
    png = shot.screenshot(html, tmp_path / "report.png", width=1000, height=2400)
    arr = np.asarray(Image.open(png).convert("RGB"))
    assert arr.shape[:2] == (2400, 1000)
    # not blank: many colours (plots, thumbnails, text) and no uniform horizontal band
    # bigger than a gap between sections in the top 2/3 of the page
    assert len(np.unique(arr.reshape(-1, 3), axis=0)) > 500
    rows_varied = arr[:1600].std(axis=(1, 2)) > 1.0
    assert rows_varied.mean() > 0.5
    longest_blank = max(len(run) for run in "".join("x" if v else " " for v in
                                                    rows_varied).split("x"))
    assert longest_blank < 200
