"""`edgeclf export --format web` in headless Chromium against `edgeclf predict` on 50 real
flower photos (float32: top-1 agreement 100%, max |Δp| <= 1e-3), and the page's answers to
bad input: an undecodable photo, a model over the page's size limit, a labels count that
does not match the model's output. One small model, one browser start."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from edgeclf.export import ExportConfig, export_run
from edgeclf.runtime import Predictor
from tests.fixtures.webharness import PageCase, find_chromium, run_page

pytestmark = [pytest.mark.slow, pytest.mark.shared]

CLASSES = ("daisy", "dandelion", "roses", "sunflowers", "tulips")
PER_CLASS = 10                   # 50 photos
#: the contract's size: large enough that Python's JPEG draft shortcut (decode at 1/2..1/8
#: when the photo is over 4x the input) never applies to these photos (short side <= 224),
#: since a browser always decodes at full size
IMAGE_SIZE = 64


def _ort_web_available() -> bool:
    """onnxruntime-web for the export: $EDGECLF_ORT_WEB (CI sets it), the cache, or npm."""
    from edgeclf.export.ort_web import ENV_VAR, ORT_WEB_FILES, cache_dir

    return (bool(os.environ.get(ENV_VAR)) or shutil.which("npm") is not None
            or all((cache_dir() / name).is_file() for name in ORT_WEB_FILES))


@pytest.fixture(scope="module")
def web(shared_dir, tmp_path_factory):
    if find_chromium() is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    if not _ort_web_available():
        pytest.skip("onnxruntime-web is not available: set EDGECLF_ORT_WEB to "
                    "`npm pack onnxruntime-web@1.30.0`'s tarball, or install npm")
    from tests.fixtures.runs import make_trained_run

    flowers = shared_dir / "data" / "flowers"
    run = make_trained_run(tmp_path_factory.mktemp("web"), backbone="tiny",
                           image_size=IMAGE_SIZE, data_dir=flowers, per_class=8, epochs=6)
    result = export_run(run.root, ExportConfig(formats=("web",), quantizations=("none",)))
    assert result.ok, [a.message for a in result.artifacts]
    folder = run.paths.export_dir / "web"
    photos = [p for c in CLASSES for p in sorted((flowers / c).glob("*.jpg"))[-PER_CLASS:]]
    # a copy of the folder with a doctored model: one label fewer than outputs
    served = tmp_path_factory.mktemp("served") / "web"
    shutil.copytree(folder, served)
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(served / "model.onnx"))
    for prop in model.metadata_props:
        if prop.key == "edgeclf.labels":
            prop.value = json.dumps(json.loads(prop.value)[:-1])
    onnx.save(model, str(served / "bad-labels.onnx"))
    garbage = served.parent / "garbage.jpg"
    garbage.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG" * 20)
    pages = [PageCase("", [(photos[0], photos[0].name, "image/jpeg"),
                           (garbage, "garbage.jpg", "image/jpeg")]),
             PageCase("?maxModelMB=0.001"),
             PageCase("?model=bad-labels.onnx")]
    report = run_page(served, photos, pages=pages, timeout=240)
    assert "fatal" not in report, report.get("fatal")
    return run, folder, photos, report


def test_export_writes_a_self_contained_folder(web):
    run, folder, _, _ = web
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(["index.html", "edgeclf.mjs", "model.onnx", "ort.wasm.min.mjs",
                            "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"])
    for page in ("index.html", "edgeclf.mjs"):       # no CDN, nothing fetched from outside
        assert "http://" not in (folder / page).read_text().replace("http://localhost", "")
        assert "https://" not in (folder / page).read_text()
    manifest = json.loads((run.paths.export_dir / "manifest.json").read_text())
    (entry,) = [a for a in manifest["artifacts"] if a["format"] == "web"]
    assert entry["file"] == "web" and entry["converter"]["onnxruntime_web"] == "1.30.0"


def test_browser_agrees_with_edgeclf_predict(web):
    run, folder, photos, report = web
    assert report["labels"] == run.classes
    assert [r.get("error") for r in report["results"]] == [None] * len(photos)
    browser = np.array([r["probs"] for r in report["results"]], dtype=np.float64)
    python = Predictor.from_path(folder / "model.onnx").predict_proba(photos)
    agreement = float((browser.argmax(1) == python.argmax(1)).mean())
    assert len(photos) >= 50 and agreement == 1.0
    assert float(np.abs(browser - python).max()) <= 1e-3


def test_page_reports_bad_input_and_keeps_going(web):
    run, folder, photos, report = web
    dropped, too_large, bad_labels = report["pages"]
    rows = {r["name"]: r for r in dropped["rows"]}
    assert dropped["state"] == "ready" and dropped["error"] == ""
    assert rows["garbage.jpg"]["state"] == "error"
    assert "not a readable image" in rows["garbage.jpg"]["text"]
    expected = Predictor.from_path(folder / "model.onnx").predict([photos[0]])[0].label
    assert rows[photos[0].name]["state"] == "ok" and rows[photos[0].name]["label"] == expected
    assert too_large["state"] == "error" and "more than this page loads" in too_large["error"]
    assert bad_labels["state"] == "error"
    assert f"outputs {len(run.classes)} classes but its metadata lists " \
           f"{len(run.classes) - 1} labels" in bad_labels["error"]
