"""ONNX export (float32): tf2onnx on the SavedModel that Keras's ExportArchive writes (the
route Keras's own LiteRT exporter takes). Keras's ``model.export(format="onnx")`` converts
the traced function instead, and leaves tensors captured by layers such as
``Normalization`` (inside EfficientNet) as extra graph inputs; the SavedModel is frozen
with them as constants.

The graph has a dynamic batch dimension, input ``image`` (uint8 pixels, cast to float32
inside the graph: a quarter of the bytes in and no conversion by the caller; every
quantization is made from the float-input graph and gets the cast last) and output
``probabilities``; it is optimised offline by onnxruntime at the *basic* level (constant folding, Conv+BN/Add/Mul
fusions: portable, standard ONNX ops only), checked by ``onnx.checker``, and carries the
edgeclf metadata in ``metadata_props``.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeclf.deps import import_tf2onnx
from edgeclf.errors import ExportError
from edgeclf.runtime.metadata import onnx_props

from .savedmodel import SIGNATURE, traced_savedmodel
from .utils import INPUT_NAME, OUTPUT_NAME, converter_versions, import_onnx

if TYPE_CHECKING:
    from .context import ExportContext

log = logging.getLogger(__name__)

#: A current opset that tf2onnx 1.17 writes and onnxruntime 1.2x/1.3x run.
DEFAULT_OPSET = 17
MIN_OPSET, MAX_OPSET = 13, 18
ONNX_TOOLS = ("tf2onnx", "onnx", "onnxruntime", "keras", "tensorflow")


def convert_float_onnx(ctx: "ExportContext", path: Path) -> None:
    """Convert the Keras model to a float32 ONNX file at ``path`` (no metadata yet)."""
    if not MIN_OPSET <= ctx.opset <= MAX_OPSET:
        raise ExportError(f"--opset must be between {MIN_OPSET} and {MAX_OPSET} "
                          f"(tf2onnx + onnxruntime), got {ctx.opset}")
    raw = path.with_name(path.stem + ".raw.onnx")
    saved_model = traced_savedmodel(ctx)
    tf2onnx = import_tf2onnx()
    try:
        graph_def, inputs, outputs, renames = tf2onnx.tf_loader.from_saved_model(
            str(saved_model), None, None, tag="serve", signatures=[SIGNATURE],
            return_tensors_to_rename=True)
        tf2onnx.convert.from_graph_def(graph_def, input_names=inputs, output_names=outputs,
                                       opset=ctx.opset, tensors_to_rename=renames,
                                       output_path=str(raw))
    except Exception as e:  # tf2onnx raises assorted types
        raise ExportError(f"ONNX conversion failed: {type(e).__name__}: {e}") from e
    onnx = import_onnx()
    model = onnx.load(str(raw))
    rename_output(model, OUTPUT_NAME)
    onnx.save(model, str(raw))
    optimise(raw, path)
    raw.unlink(missing_ok=True)


def rename_output(model: Any, name: str) -> None:
    """Check the graph has one input ``image`` and one output, and name it ``name``."""
    graph = model.graph
    if len(graph.output) != 1 or len(graph.input) != 1:
        raise ExportError(f"the ONNX graph has {len(graph.input)} inputs and "
                          f"{len(graph.output)} outputs; expected one of each")
    if graph.input[0].name != INPUT_NAME:
        raise ExportError(f"the ONNX input is named {graph.input[0].name!r}, "
                          f"expected {INPUT_NAME!r}")
    old = graph.output[0].name
    if old == name:
        return
    for node in graph.node:
        node.output[:] = [name if o == old else o for o in node.output]
        node.input[:] = [name if i == old else i for i in node.input]
    graph.output[0].name = name


def uint8_input(model: Any) -> bool:
    """Make the graph take uint8 pixels: input ``image`` becomes uint8 and a ``Cast`` to
    float32 feeds what read it (a quarter of the bytes in, no float conversion by the
    caller). Returns False (graph unchanged) when the input is not float32."""
    onnx = import_onnx()
    graph = model.graph
    inp = graph.input[0]
    if inp.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        return False
    cast_out = f"{inp.name}_as_float"
    for node in graph.node:
        node.input[:] = [cast_out if i == inp.name else i for i in node.input]
    for out in graph.output:  # an identity graph: the output is the input itself
        if out.name == inp.name:
            raise ExportError("the ONNX graph returns its input unchanged")
    cast = onnx.helper.make_node("Cast", [inp.name], [cast_out], to=onnx.TensorProto.FLOAT,
                                 name=f"{inp.name}_uint8_to_float")
    graph.node.insert(0, cast)
    inp.type.tensor_type.elem_type = onnx.TensorProto.UINT8
    return True


def optimise(src: Path, dst: Path) -> None:
    """Offline onnxruntime optimisation at the basic (portable) level."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    opts.optimized_model_filepath = str(dst)
    try:
        ort.InferenceSession(str(src), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
        log.warning("onnxruntime could not optimise the graph (%s); keeping it as converted", e)
        shutil.copyfile(src, dst)


def finish_onnx(src: Path, dst: Path, meta: dict, *, check: bool = True,
                pixels_uint8: bool = True) -> None:
    """Make the input uint8 pixels (:func:`uint8_input`; ``pixels_uint8``), add the edgeclf
    metadata and the producer name, run the checker, save to ``dst``."""
    onnx = import_onnx()
    model = onnx.load(str(src))
    if pixels_uint8:
        uint8_input(model)
    del model.metadata_props[:]
    for key, value in onnx_props(meta).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "edgeclf"
    model.producer_version = str(meta.get("edgeclf_version", ""))
    if check:
        try:
            onnx.checker.check_model(model, full_check=True)
        except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
            raise ExportError(f"the exported ONNX model fails onnx.checker: {e}") from e
    onnx.save(model, str(dst))


def export_onnx(ctx: "ExportContext", path: Path, quantization: str) -> dict:
    """Write an ONNX artifact at ``path``; quantized variants start from the float graph."""
    if quantization == "none":
        finish_onnx(float_onnx(ctx), path, ctx.meta)
        return converter_versions(*ONNX_TOOLS)
    from .onnx_quant import quantize_onnx

    quantized = ctx.work_dir / f"quantized.{quantization}.onnx"
    options = quantize_onnx(ctx, float_onnx(ctx), quantized, quantization)
    finish_onnx(quantized, path, ctx.meta)
    quantized.unlink(missing_ok=True)
    return {**converter_versions(*ONNX_TOOLS), **options}


def describe_onnx(path: Path) -> tuple[list[dict], list[dict]]:
    """Load the model in onnxruntime and describe its inputs and outputs."""
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's own exception types
        raise ExportError(f"the exported ONNX model {path.name} does not load in "
                          f"onnxruntime: {e}") from e

    def one(arg) -> dict:
        dtype = arg.type.replace("tensor(", "").rstrip(")")
        dtype = {"float": "float32", "double": "float64", "float16": "float16"}.get(dtype, dtype)
        shape = [d if isinstance(d, int) else None for d in arg.shape]
        return {"name": arg.name, "shape": shape, "dtype": dtype}

    return [one(a) for a in sess.get_inputs()], [one(a) for a in sess.get_outputs()]


def float_onnx(ctx: "ExportContext") -> Path:
    """The float32 ONNX graph, converted once per export (quantized ONNX starts from it)."""
    def make() -> Path:
        path = ctx.work_dir / "float32.onnx"
        convert_float_onnx(ctx, path)
        return path
    return ctx.memo("onnx", make)
