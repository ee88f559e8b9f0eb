"""The browser predictor's pieces that need no browser, run in Node against Python:
Pillow's resampling and the contract's crop (bit-exact), the ONNX metadata reader; and
where the web export finds onnxruntime-web (pinned, checked, clear errors)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeclf.errors import ExportError
from edgeclf.export import FORMATS, plan_jobs
from edgeclf.export import ort_web
from edgeclf.runtime.contract import Contract
from edgeclf.runtime.preprocess import preprocess

MODULE = Path(__file__).resolve().parents[2] / "edgeclf" / "export" / "web_assets" / "edgeclf.mjs"
FILTERS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS,
           "box": Image.BOX, "hamming": Image.HAMMING}

CHECK = """
import * as m from './edgeclf.mjs';
import fs from 'node:fs';
const cases = JSON.parse(fs.readFileSync('cases.json'));
const rgba = (c) => {
  const out = new Uint8Array(c.w * c.h * 4);
  for (let i = 0; i < c.w * c.h; i++) { out.set(c.rgb.slice(i * 3, i * 3 + 3), i * 4); out[i * 4 + 3] = 255; }
  return out;
};
const res = cases.map((c) => Array.from(c.contract
  ? m.toContract(rgba(c), c.w, c.h, c.contract)
  : m.resample(rgba(c), c.w, c.h, c.ow, c.oh, c.box, c.interp)));
const props = m.onnxMetadata(new Uint8Array(fs.readFileSync('model.onnx')));
let err = null;
try { m.readContract({}); } catch (e) { err = e.message; }
fs.writeFileSync('out.json', JSON.stringify({ res, props, err }));
"""


@pytest.fixture(scope="module")
def node():
    path = shutil.which("node")
    if path is None:
        pytest.skip("node is not installed: the browser module's arithmetic is checked in Node")
    return path


def _onnx_with_metadata(path: Path, props: dict) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph)
    onnx.helper.set_model_props(model, props)
    path.write_bytes(model.SerializeToString())


def test_resampling_crop_and_metadata_match_python(node, tmp_path):
    rng = np.random.default_rng(0)
    cases, expected = [], []
    for i in range(30):
        w, h = (int(v) for v in rng.integers(8, 300, 2))
        arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        if i % 2:   # smooth content as well as noise
            arr = np.clip(np.cumsum(arr.astype(int) - 127, axis=1) // 8 + 128, 0, 255)
            arr = arr.astype(np.uint8)
        case = {"w": w, "h": h, "rgb": arr.ravel().tolist()}
        if i % 3 == 0:   # the contract: crop or squash, every filter, shrink and enlarge
            contract = Contract(size=tuple(int(v) for v in rng.integers(8, 160, 2)),
                                resize="squash" if i % 2 else "crop",
                                interpolation=list(FILTERS)[i % 5])
            case["contract"] = contract.to_dict()
            expected.append(preprocess(arr, contract))
        else:            # Pillow's resize with a fractional box
            ow, oh = (int(v) for v in rng.integers(4, 250, 2))
            x0, y0 = float(rng.uniform(0, w / 3)), float(rng.uniform(0, h / 3))
            box = [x0, y0, float(rng.uniform(x0 + 1, w)), float(rng.uniform(y0 + 1, h))]
            interp = list(FILTERS)[i % 5]
            case.update(ow=ow, oh=oh, box=box, interp=interp)
            expected.append(np.asarray(Image.fromarray(arr).resize(
                (ow, oh), FILTERS[interp], box=tuple(box))))
        cases.append(case)
    shutil.copyfile(MODULE, tmp_path / "edgeclf.mjs")
    (tmp_path / "ort.wasm.min.mjs").write_text("export const env = { wasm: {} };\n"
                                               "export class Tensor {}\n"
                                               "export const InferenceSession = {};\n")
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    labels = ["café", "b"]
    _onnx_with_metadata(tmp_path / "model.onnx", {
        "edgeclf.labels": json.dumps(labels), "edgeclf.preprocessing": "{\"size\": [4, 4]}"})
    (tmp_path / "check.mjs").write_text(CHECK)
    proc = subprocess.run([node, "check.mjs"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads((tmp_path / "out.json").read_text())
    for case, want, got in zip(cases, expected, out["res"]):
        diff = np.abs(np.asarray(got, np.int16) - want.astype(np.int16).ravel())
        assert diff.max() == 0, (case.get("contract") or case["interp"], case["w"], case["h"],
                                 int((diff > 0).sum()))
    assert json.loads(out["props"]["edgeclf.labels"]) == labels
    assert "no edgeclf metadata" in out["err"]


# -- where onnxruntime-web comes from ------------------------------------------------------

def _fake_tarball(path: Path, version: str = ort_web.ORT_WEB_VERSION) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in [("package/package.json", json.dumps({"version": version})),
                           *((f"package/dist/{n}", "x") for n in ort_web.ORT_WEB_FILES)]:
            info = tarfile.TarInfo(name)
            info.size = len(data.encode())
            tar.addfile(info, io.BytesIO(data.encode()))
    return path


def test_a_tarball_that_is_not_the_pinned_one_is_refused(tmp_path):
    with pytest.raises(ExportError, match="sha512 differs from the pinned one"):
        ort_web.find_ort_web(_fake_tarball(tmp_path / "ort.tgz"))
    assert not ort_web.cache_dir().exists()


def test_a_tarball_with_the_pinned_hash_is_unpacked_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.delenv(ort_web.ENV_VAR, raising=False)     # CI sets it to the real tarball
    tgz = _fake_tarball(tmp_path / "ort.tgz")
    monkeypatch.setattr(ort_web, "ORT_WEB_INTEGRITY", ort_web.integrity(tgz))
    folder = ort_web.find_ort_web(tgz)
    assert folder == ort_web.cache_dir()
    assert sorted(p.name for p in folder.iterdir()) == sorted(ort_web.ORT_WEB_FILES)
    monkeypatch.setattr(ort_web, "_npm_pack", lambda dest: pytest.fail("fetched again"))
    assert ort_web.find_ort_web() == folder            # the cache is used from then on


def test_a_folder_of_another_version_is_refused(tmp_path):
    with tarfile.open(_fake_tarball(tmp_path / "ort.tgz", version="1.0.0")) as tar:
        tar.extractall(tmp_path, filter="data")
    with pytest.raises(ExportError, match="holds onnxruntime-web 1.0.0"):
        ort_web.find_ort_web(tmp_path / "package")
    with pytest.raises(ExportError, match="does not exist"):
        ort_web.find_ort_web(tmp_path / "nowhere")


def test_without_npm_the_error_says_what_to_do(monkeypatch):
    monkeypatch.delenv(ort_web.ENV_VAR, raising=False)
    monkeypatch.setattr(ort_web.shutil, "which", lambda name: None)
    with pytest.raises(ExportError, match=r"npm was not found.*npm pack onnxruntime-web@.*--ort-web"):
        ort_web.find_ort_web()


def test_web_is_exported_only_when_asked_for():
    assert FORMATS["web"].filename("none") == "web" and FORMATS["web"].is_dir
    assert FORMATS["web"].filename("int8") == "web.int8"
    assert all(f != "web" for f, _ in plan_jobs(["all"], ["none"]))
    assert plan_jobs(["all", "web"], ["none"])[-1] == ("web", "none")
