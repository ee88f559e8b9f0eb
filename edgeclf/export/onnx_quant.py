"""ONNX quantization with onnxruntime's tools: static int8 (QDQ, U8S8 or U8U8 chosen by the
CPU, per-channel weights, calibrated on the same training images as TFLite int8),
dynamic-range, and float16.

Inputs and outputs stay as in the float graph in every variant (uint8 pixels in, added by
``finish_onnx`` after quantizing; float32 probabilities out), so the contract is unchanged; the
final Softmax stays in float (probabilities keep their resolution).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgeclf.errors import ExportError

from .calibration import calibration_set
from edgeclf.machine import has_fast_int8

from .utils import INPUT_NAME, cpu_flags, import_onnx, int8_speed_warning

if TYPE_CHECKING:
    from .calibration import CalibrationSet
    from .context import ExportContext

log = logging.getLogger(__name__)

CALIBRATION_BATCH = 16
KEEP_FLOAT_OPS = ("Softmax",)


def quantize_onnx(ctx: "ExportContext", src: Path, dst: Path, quantization: str) -> dict:
    """Write the ``quantization`` variant of the float ONNX model ``src`` to ``dst``;
    return the options used (recorded in the manifest)."""
    if quantization == "int8":
        flags = cpu_flags()
        recipe, why = choose_int8_recipe(ctx.onnx_int8, flags)
        log.info("ONNX int8 %s: %s", recipe.upper(), why)
        if recipe == "u8s8" and "sse2" in flags and not has_fast_int8(flags):
            log.warning("ONNX int8 U8S8 on an x86 CPU without VNNI: onnxruntime's kernels "
                        "saturate here, so this CPU computes it less exactly than a VNNI or "
                        "ARM CPU (parity on this machine shows by how much)")
        info = quantize_int8(src, dst, calibration_set(ctx), ctx.work_dir,
                             options=int8_options(recipe))
        info["onnx_quantization"].update(recipe=recipe, recipe_reason=why)
        return info
    if quantization == "dynamic":
        return quantize_dynamic(src, dst)
    if quantization == "float16":
        return convert_float16(src, dst)
    raise ExportError(f"onnx has no quantization {quantization!r}")


def _float_ops_nodes(path: Path, *, depthwise: bool = False) -> list[str]:
    """Nodes to keep in float: the final Softmax, and (``depthwise``) grouped convs."""
    onnx = import_onnx()
    model = onnx.load(str(path))
    return [n.name for n in model.graph.node
            if n.op_type in KEEP_FLOAT_OPS or (depthwise and _is_grouped_conv(n))]


def _is_grouped_conv(node) -> bool:
    return node.op_type == "Conv" and any(a.name == "group" and a.i > 1
                                          for a in node.attribute)


class _Reader:
    """onnxruntime ``CalibrationDataReader`` over the calibration images."""

    def __init__(self, calibration: "CalibrationSet"):
        self._batches = iter(calibration.batches(CALIBRATION_BATCH))

    def get_next(self) -> dict | None:
        batch = next(self._batches, None)
        return None if batch is None else {INPUT_NAME: np.ascontiguousarray(batch)}


def prepare_for_quantization(src: Path, work_dir: Path) -> Path:
    """onnxruntime's recommended pre-processing (shape inference + optimisation)."""
    from onnxruntime.quantization import quant_pre_process

    out = work_dir / "pre-quant.onnx"
    if out.is_file():
        return out
    try:
        # the graph's shapes are static but for the batch: ONNX shape inference suffices
        quant_pre_process(str(src), str(out), skip_symbolic_shape=True)
    except Exception as e:  # symbolic shape inference fails on some graphs; not fatal
        log.warning("quantization pre-processing skipped (%s)", e)
        shutil.copyfile(src, out)
    return out


#: ``--onnx-int8``: the weights' integer type of the static int8 ONNX model
ONNX_INT8_RECIPES = ("auto", "u8s8", "u8u8")


def int8_options(recipe: str = "u8u8") -> dict:
    """QDQ with per-channel 8-bit weights: ``u8s8`` (signed weights) or ``u8u8``.

    onnxruntime's U8S8 kernels run on x86 as VPMADDUBSW, whose 16-bit pair sums saturate
    without VNNI (its advice there, 7-bit weights via ``reduce_range``, costs precision);
    its U8U8 kernels widen to 16 bits first and never saturate, so a U8U8 model computes
    the same on any CPU. With VNNI (or on ARM) U8S8 is exact and much faster. Measured on
    MobileNetV2 / flowers, 2,493 held-out photos, AMD EPYC with AVX512-VNNI
    (benchmarks/results/int8-recipes-*): U8S8 -0.16 points, 2.64x float32 at batch 1; U8U8
    +0.48 points, 1.08x; U8S8 with 7-bit weights -1.52 points. On a Xeon without VNNI: U8S8
    92-93% top-1 agreement with float (saturation), U8U8 98.4-98.6%."""
    weight = {"u8s8": "QInt8", "u8u8": "QUInt8"}[recipe]
    return {"quant_format": "QDQ", "activation_type": "QUInt8", "weight_type": weight,
            "per_channel": True, "reduce_range": False, "calibrate_method": "MinMax"}


def choose_int8_recipe(requested: str = "auto",
                       flags: frozenset[str] | None = None) -> tuple[str, str]:
    """The recipe for ``--onnx-int8 requested`` and why. ``auto``: U8S8 where this CPU has
    int8 dot-product instructions (VNNI, AMX, ARM dot product: exact and fast), else U8U8
    (no saturation on older x86). Parity then checks the artifact on this CPU."""
    if requested not in ONNX_INT8_RECIPES:
        from edgeclf.errors import ConfigError

        raise ConfigError(f"--onnx-int8 must be one of {', '.join(ONNX_INT8_RECIPES)}, "
                          f"got {requested!r}")
    if requested != "auto":
        return requested, "requested"
    flags = cpu_flags() if flags is None else flags
    if has_fast_int8(flags):
        return "u8s8", ("this CPU has int8 dot-product instructions: U8S8 is exact and the "
                        "fastest here")
    return "u8u8", ("this CPU has no int8 dot-product instructions (or they are unknown): "
                    "U8U8, which does not saturate on x86 without VNNI")


def quantize_int8(src: Path, dst: Path, calibration: "CalibrationSet", work_dir: Path, *,
                  options: dict | None = None) -> dict:
    """Static QDQ int8 with ``options`` (default :func:`int8_options`; benchmarks pass
    others to compare recipes)."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod,
                                          QuantFormat, QuantType, quantize_static)

    options = {**int8_options(), **(options or {})}
    reader_cls = type("EdgeclfCalibrationReader", (_Reader, CalibrationDataReader), {})
    prepared = prepare_for_quantization(src, work_dir)
    try:
        quantize_static(str(prepared), str(dst), reader_cls(calibration),
                        quant_format=getattr(QuantFormat, options["quant_format"]),
                        per_channel=options["per_channel"],
                        reduce_range=options["reduce_range"],
                        activation_type=getattr(QuantType, options["activation_type"]),
                        weight_type=getattr(QuantType, options["weight_type"]),
                        nodes_to_exclude=_float_ops_nodes(prepared),
                        calibrate_method=getattr(CalibrationMethod,
                                                 options["calibrate_method"]),
                        extra_options={"CalibTensorRangeSymmetric": False})
    except Exception as e:  # onnxruntime's quantizer raises assorted types
        raise ExportError(f"ONNX int8 quantization failed: {type(e).__name__}: {e}") from e
    return {"onnx_quantization": {**options, "calibration_images": len(calibration.files)}}


def quantize_dynamic(src: Path, dst: Path) -> dict:
    """Dynamic-range: int8 weights, activations quantized on the fly. Conv weights must
    be uint8 for onnxruntime's CPU ConvInteger kernel. Depthwise (grouped) convolutions
    stay float: dynamically quantized they wreck the model (MobileNetV2 on flowers: 34%
    top-1 agreement with them, 97.5% without, at 0.29x instead of 0.27x the size)."""
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic

    try:
        ort_quantize_dynamic(str(src), str(dst), weight_type=QuantType.QUInt8,
                             per_channel=False,
                             nodes_to_exclude=_float_ops_nodes(src, depthwise=True))
    except Exception as e:  # onnxruntime's quantizer raises assorted types
        raise ExportError(f"ONNX dynamic quantization failed: {type(e).__name__}: {e}") from e
    return {"onnx_quantization": {"mode": "dynamic", "weight_type": "QUInt8",
                                  "float_ops": [*KEEP_FLOAT_OPS, "depthwise Conv"]}}


def convert_float16(src: Path, dst: Path) -> dict:
    """float16 weights and compute, float32 input/output (``keep_io_types``)."""
    from onnxruntime.transformers.float16 import (DEFAULT_OP_BLOCK_LIST,
                                                  convert_float_to_float16)
    from onnxruntime.transformers.onnx_model import OnnxModel

    onnx = import_onnx()
    model = onnx.load(str(src))
    block = sorted(set(DEFAULT_OP_BLOCK_LIST) | set(KEEP_FLOAT_OPS))
    try:
        half = convert_float_to_float16(model, keep_io_types=True, op_block_list=block)
        # the input Cast it adds lands after its consumers: restore topological order
        OnnxModel(half).topological_sort()
    except Exception as e:  # the converter raises assorted types
        raise ExportError(f"ONNX float16 conversion failed: {type(e).__name__}: {e}") from e
    onnx.save(half, str(dst))
    return {"onnx_quantization": {"mode": "float16", "keep_io_types": True,
                                  "float32_ops": list(KEEP_FLOAT_OPS)}}


def speed_warning(quantization: str, flags: frozenset[str] | None = None) -> str | None:
    """A note when this ONNX variant is expected to run slower than float32 on this CPU."""
    flags = cpu_flags() if flags is None else flags
    if quantization in ("int8", "dynamic"):
        return int8_speed_warning(flags)
    if quantization == "float16" and flags and "avx512_fp16" not in flags and \
            "asimdhp" not in flags:
        return ("onnxruntime has few float16 CPU kernels on this CPU: the float16 ONNX "
                "model is expected to be slower than float32 here (it is meant for GPUs "
                "and for size)")
    return None


#: what ``edgeclf export`` says about a quantization's accuracy, whatever the CPU
ACCURACY_NOTES = {
    "dynamic": ("onnxruntime's dynamic quantization picks one activation scale per tensor "
                "over the whole batch: expect a larger accuracy loss on CNNs than static int8 "
                "(MobileNetV2/flowers: 95.6% top-1 agreement vs 98.6%) and answers that can "
                "change with the batch; for CNNs prefer --quantize int8"),
}


def export_notes(quantization: str, flags: frozenset[str] | None = None) -> list[str]:
    """What to tell the user about this ONNX variant: speed on this CPU, then accuracy."""
    return [n for n in (speed_warning(quantization, flags), ACCURACY_NOTES.get(quantization))
            if n]
