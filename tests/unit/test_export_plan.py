"""Fast export tests without TensorFlow: planning, calibration sampling, manifest updates,
CPU warnings, float32 config rewriting, partial-file clean-up."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeclf.data.split import Split
from edgeclf.errors import ConfigError, ExportError
from edgeclf.export import FORMATS, QUANTIZATIONS, artifact_path, plan_jobs
from edgeclf.export.calibration import anchor_pixel_range, stratified_sample
from edgeclf.export.exporter import remove_partials
from edgeclf.export.manifest import float32_bytes, read_existing, update_manifest
from edgeclf.export.onnx_quant import (choose_int8_recipe, export_notes, int8_options,
                                       speed_warning)
from edgeclf.export.utils import _float32_config, int8_speed_warning
from edgeclf.runtime.manifest import load_manifest


def test_all_expands_to_supported_pairs():
    jobs = plan_jobs(["all"], ["none", "int8"])
    assert jobs == [("savedmodel", "none"), ("onnx", "none"), ("onnx", "int8"),
                    ("tflite", "none"), ("tflite", "int8")]


def test_repeated_values_are_exported_once():
    assert plan_jobs(["onnx", "onnx"], ["none", "none"]) == [("onnx", "none")]


@pytest.mark.parametrize("formats,quants,match", [
    (["coreml"], ["none"], "unknown format"),
    (["onnx"], ["int4"], "unknown quantization"),
    (["savedmodel"], ["int8"], "savedmodel does not support quantization 'int8'"),
    (["savedmodel", "onnx"], ["none", "dynamic"], "does not support"),
    ([], ["none"], "unknown format"),
])
def test_bad_requests_raise_config_errors(formats, quants, match):
    with pytest.raises(ConfigError, match=match):
        plan_jobs(formats, quants)


def test_format_table_names_files():
    assert FORMATS["onnx"].filename("none") == "model.onnx"
    assert FORMATS["tflite"].filename("int8") == "model.int8.tflite"
    assert FORMATS["savedmodel"].is_dir and FORMATS["savedmodel"].filename("none") == "saved_model"
    assert artifact_path("x", "onnx", "float16") == Path("x/model.float16.onnx")
    assert set(FORMATS["onnx"].quantizations) == set(QUANTIZATIONS)
    with pytest.raises(ValueError):
        FORMATS["savedmodel"].filename("int8")


def _split(counts: dict[str, int]) -> Split:
    train = [f"{c}/{i:03d}.jpg" for c, n in counts.items() for i in range(n)]
    return Split(root=Path("/data"), classes=list(counts), train=train, val=[], test=[])


def test_calibration_sample_is_stratified_and_seeded():
    split = _split({"a": 100, "b": 300, "c": 5})
    picked = stratified_sample(split, 81, seed=3)
    assert len(picked) == 81 and len(set(picked)) == 81
    per = {c: sum(p.startswith(c + "/") for p in picked) for c in "abc"}
    assert per["c"] >= 1 and abs(per["b"] - 3 * per["a"]) <= 3
    assert picked == stratified_sample(split, 81, seed=3)
    assert picked != stratified_sample(split, 81, seed=4)
    assert set(picked) <= set(split.train)


def test_calibration_sample_takes_everything_when_asked_for_more():
    split = _split({"a": 3, "b": 2})
    assert stratified_sample(split, 50, seed=0) == sorted(split.train)
    with pytest.raises(ExportError, match="at least 1"):
        stratified_sample(split, 0, seed=0)
    with pytest.raises(ExportError, match="empty"):
        stratified_sample(_split({"a": 0}), 5, seed=0)


def test_anchor_pixel_range_gives_full_input_range():
    dull = np.full((2, 4, 4, 3), 100, np.uint8)
    out = anchor_pixel_range(dull)
    assert out.min() == 0 and out.max() == 255 and dull.min() == 100  # input untouched
    full = np.zeros((1, 2, 2, 3), np.uint8)
    full[0, 1] = 255
    assert anchor_pixel_range(full) is full


def test_int8_speed_warning_depends_on_cpu_flags():
    assert int8_speed_warning(frozenset({"avx2", "fma"})) is not None
    assert int8_speed_warning(frozenset({"avx2", "avx512_vnni"})) is None
    assert int8_speed_warning(frozenset({"asimddp"})) is None
    assert int8_speed_warning(frozenset()) is None        # unknown CPU: say nothing
    # ONNX int8: 8-bit weights either way; U8S8 where int8 dot products make it exact
    assert int8_options("u8u8")["weight_type"] == "QUInt8"
    assert int8_options("u8s8")["weight_type"] == "QInt8"
    assert not int8_options("u8s8")["reduce_range"] and not int8_options()["reduce_range"]
    assert choose_int8_recipe("auto", frozenset({"avx2", "avx512_vnni"}))[0] == "u8s8"
    assert choose_int8_recipe("auto", frozenset({"asimddp"}))[0] == "u8s8"
    assert choose_int8_recipe("auto", frozenset({"avx2", "avx512f"}))[0] == "u8u8"
    assert choose_int8_recipe("auto", frozenset())[0] == "u8u8"      # unknown: never saturate
    assert choose_int8_recipe("u8u8", frozenset({"avx512_vnni"})) == ("u8u8", "requested")
    with pytest.raises(ConfigError, match="--onnx-int8"):
        choose_int8_recipe("u8s7")
    assert speed_warning("none", frozenset({"avx2"})) is None
    assert "float16" in speed_warning("float16", frozenset({"avx2"}))
    # accuracy notes do not depend on the CPU; speed notes do
    assert export_notes("int8", frozenset({"avx512_vnni"})) == []
    assert export_notes("none", frozenset({"avx2"})) == []
    notes = export_notes("dynamic", frozenset({"avx512_vnni"}))
    assert len(notes) == 1 and "prefer --quantize int8" in notes[0]
    assert len(export_notes("dynamic", frozenset({"avx2"}))) == 2


def test_mixed_precision_policies_are_rewritten_to_float32():
    config = {"layers": [{"config": {"dtype": {"class_name": "DTypePolicy",
                                               "config": {"name": "mixed_float16"}}}},
                         {"config": {"dtype": "mixed_bfloat16", "units": 3}},
                         {"config": {"dtype": "float32"}}]}
    out = _float32_config(config)
    assert [lay["config"]["dtype"] for lay in out["layers"]] == ["float32"] * 3
    assert out["layers"][1]["config"]["units"] == 3


def _entry(fmt: str, q: str, sha: str = "ck") -> dict:
    return {"file": FORMATS[fmt].filename(q), "format": fmt, "quantization": q,
            "bytes": 100 if q == "none" else 30, "sha256": "x", "created": "now",
            "checkpoint": {"file": "checkpoints/best.keras", "sha256": sha}}


def test_reexport_replaces_one_entry_and_keeps_the_others(tmp_path):
    meta = {"labels": ["a", "b"], "preprocessing": {"size": [8, 8]}}
    ck = {"file": "checkpoints/best.keras", "sha256": "ck"}
    for fmt, q in [("onnx", "none"), ("tflite", "int8"), ("onnx", "int8")]:
        update_manifest(tmp_path, _entry(fmt, q), meta=meta, checkpoint=ck)
    newer = {**_entry("onnx", "none"), "bytes": 123}
    manifest = update_manifest(tmp_path, newer, meta=meta, checkpoint=ck,
                               calibration={"files": ["a/1.jpg"]})
    loaded = load_manifest(tmp_path)
    assert loaded == json.loads(json.dumps(manifest))
    keys = [(a["format"], a["quantization"]) for a in loaded["artifacts"]]
    assert keys == [("onnx", "none"), ("onnx", "int8"), ("tflite", "int8")]
    assert loaded["artifacts"][0]["bytes"] == 123
    assert loaded["labels"] == ["a", "b"] and loaded["calibration"]["files"] == ["a/1.jpg"]
    assert float32_bytes(loaded, "onnx") == 123 and float32_bytes(loaded, "tflite") is None


def test_corrupt_manifest_is_not_silently_replaced(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ExportError, match="not valid JSON"):
        read_existing(tmp_path)
    (tmp_path / "manifest.json").write_text('{"labels": []}')
    with pytest.raises(ExportError, match="artifacts"):
        read_existing(tmp_path)


def test_partials_of_a_killed_export_are_removed(tmp_path):
    (tmp_path / ".model.onnx.abc123.partial.onnx").write_bytes(b"half")
    (tmp_path / ".saved_model.x1.partial").mkdir()
    (tmp_path / "model.onnx").write_bytes(b"finished")
    remove_partials(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_dynamic_onnx_keeps_depthwise_convs_and_softmax_in_float(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from edgeclf.export.onnx_quant import _float_ops_nodes

    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], name="pointwise"),
             helper.make_node("Conv", ["a", "w2"], ["b"], name="depthwise", group=8),
             helper.make_node("Conv", ["b", "w3"], ["c"], name="plain", group=1),
             helper.make_node("Softmax", ["c"], ["y"], name="softmax")]
    graph = helper.make_graph(nodes, "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    path = tmp_path / "g.onnx"
    onnx.save(helper.make_model(graph), str(path))
    assert _float_ops_nodes(path) == ["softmax"]
    assert _float_ops_nodes(path, depthwise=True) == ["depthwise", "softmax"]


def test_an_artifact_folder_caught_between_its_two_renames_is_restored(tmp_path):
    """A kill after the old saved_model was moved aside and before the new one moved in
    leaves only the aside copy: the next export puts it back instead of deleting it."""
    aside = tmp_path / ".saved_model.4242.ab12cd34.old"
    aside.mkdir()
    (aside / "saved_model.pb").write_bytes(b"the previous export")
    (tmp_path / ".model.tflite.4242.ab12cd34.old").write_bytes(b"stale")
    (tmp_path / "model.tflite").write_bytes(b"finished")
    remove_partials(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.tflite", "saved_model"]
    assert (tmp_path / "saved_model" / "saved_model.pb").read_bytes() == b"the previous export"
    assert (tmp_path / "model.tflite").read_bytes() == b"finished"
