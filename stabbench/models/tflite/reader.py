"""Read a ``.tflite`` flatbuffer into a small graph description (:class:`TfliteGraph`).

The flatbuffer is parsed with LiteRT's own generated schema (``ai_edge_litert.schema_py_generated``,
shipped in the ``ai-edge-litert`` wheel, extra ``stabbench[tflite]``): pure data access, no code
from the file runs and no interpreter is created. Only what the importer needs is kept: the
tensors of the first subgraph (name, NHWC shape, dtype, constant data), its operators in
execution order (op name, input/output tensor indices, options as a plain dict), and the
graph's inputs and outputs.

Convention
----------
- Shapes and constant data are TFLite's own: activations NHWC, ``CONV_2D`` weights
  ``[O, kh, kw, I]``, ``DEPTHWISE_CONV_2D`` weights ``[1, kh, kw, C * multiplier]``.
- A tensor index of ``-1`` in an operator's inputs is an omitted optional input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stabbench.errors import ModelError

#: TFLite tensor types the importer reads (others are refused where they are used).
TENSOR_DTYPES = {"FLOAT32": np.float32, "FLOAT16": np.float16, "INT32": np.int32, "INT64": np.int64,
                 "UINT8": np.uint8, "INT8": np.int8}


@dataclass(frozen=True)
class Tensor:
    """One tensor: ``shape`` (TFLite's, NHWC for activations), ``dtype`` name (``FLOAT32``, ...),
    ``data`` (a read-only NumPy array for a constant, else ``None``)."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    data: np.ndarray | None = None


@dataclass(frozen=True)
class Operator:
    """One operator: ``op`` (``CONV_2D``, ... or the custom code, e.g. ``Convolution2DTransposeBias``),
    tensor indices, ``options`` (the builtin options as a dict of snake-less schema names, e.g.
    ``strideW``) and ``custom_options`` (raw bytes of a custom op)."""

    index: int
    op: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)
    custom_options: bytes = b""


@dataclass(frozen=True)
class TfliteGraph:
    """The first subgraph of a ``.tflite`` model, in execution order."""

    source: str
    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    def tensor(self, index: int) -> Tensor:
        return self.tensors[index]

    def producer(self, index: int) -> Operator | None:
        """The operator writing tensor ``index`` (``None`` for inputs and constants)."""
        return next((op for op in self.operators if index in op.outputs), None)


def _schema():
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError as exc:
        raise ModelError(f"importing a TFLite model needs the flatbuffer schema of ai-edge-litert (2.x ships it as "
                         f"ai_edge_litert.schema_py_generated; {exc}); install stabbench[tflite] "
                         "(pip install 'stabbench[tflite]')") from None
    return schema_py_generated


def _enum_names(enum_class) -> dict[int, str]:
    return {value: name for name, value in vars(enum_class).items() if not name.startswith("_")}


def _op_name(schema, code) -> str:
    builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))  # the schema's two fields, see schema.fbs
    if builtin == schema.BuiltinOperator.CUSTOM:
        return (code.customCode or b"").decode("utf-8", "replace")
    return _enum_names(schema.BuiltinOperator).get(builtin, f"BUILTIN_{builtin}")


def _constant(model, tensor, dtype_name: str, source: str) -> np.ndarray | None:
    if tensor.buffer <= 0 or tensor.buffer >= len(model.buffers or []):
        return None
    buffer = model.buffers[tensor.buffer]
    if buffer.offset > 1 or buffer.size > 0:
        raise ModelError(f"{source}: tensor {tensor.name!r} keeps its data outside the flatbuffer (large-model "
                         "format); not supported")
    if buffer.data is None or len(buffer.data) == 0:
        return None
    if dtype_name not in TENSOR_DTYPES:
        raise ModelError(f"{source}: constant tensor {tensor.name!r} has type {dtype_name}; not supported")
    raw = np.asarray(buffer.data, dtype=np.uint8).tobytes()
    shape = tuple(int(d) for d in (tensor.shape if tensor.shape is not None else ()))
    values = np.frombuffer(raw, dtype=np.dtype(TENSOR_DTYPES[dtype_name]).newbyteorder("<"))
    if values.size != int(np.prod(shape, dtype=np.int64)):
        raise ModelError(f"{source}: constant tensor {tensor.name!r} holds {values.size} values for shape {list(shape)}")
    return values.reshape(shape)


def _options(op) -> dict[str, Any]:
    opts = op.builtinOptions
    return {} if opts is None else {k: v for k, v in vars(opts).items()}


def parse_tflite(data: bytes, source: str = "<bytes>") -> TfliteGraph:
    """The :class:`TfliteGraph` of a ``.tflite`` flatbuffer ``data``; :class:`ModelError` naming
    ``source`` when it is not a readable single-subgraph model."""
    schema = _schema()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelError(f"{source}: not a TFLite flatbuffer (file identifier {data[4:8]!r}, expected b'TFL3')")
    try:
        model = schema.ModelT.InitFromPackedBuf(data, 0)
    except Exception as exc:  # noqa: BLE001 - a malformed flatbuffer raises anything from struct/index errors
        raise ModelError(f"{source}: malformed TFLite flatbuffer ({type(exc).__name__}: {exc})") from None
    if not model.subgraphs:
        raise ModelError(f"{source}: the model has no subgraph")
    if len(model.subgraphs) > 1:
        raise ModelError(f"{source}: the model has {len(model.subgraphs)} subgraphs (control flow); only one is supported")
    graph = model.subgraphs[0]
    type_names = _enum_names(schema.TensorType)
    tensors = []
    for i, t in enumerate(graph.tensors or []):
        name = (t.name or b"").decode("utf-8", "replace")
        dtype = type_names.get(int(t.type), f"TYPE_{t.type}")
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else ()))
        tensors.append(Tensor(i, name, shape, dtype, _constant(model, t, dtype, source)))
    codes = model.operatorCodes or []
    operators = []
    for i, op in enumerate(graph.operators or []):
        if not 0 <= op.opcodeIndex < len(codes):
            raise ModelError(f"{source}: operator {i} names opcode {op.opcodeIndex} of {len(codes)}")
        ins = tuple(int(v) for v in (op.inputs if op.inputs is not None else ()))
        outs = tuple(int(v) for v in (op.outputs if op.outputs is not None else ()))
        if any(not -1 <= v < len(tensors) for v in ins) or any(not 0 <= v < len(tensors) for v in outs):
            raise ModelError(f"{source}: operator {i} names a tensor outside the {len(tensors)} tensors")
        custom = bytes(np.asarray(op.customOptions, dtype=np.uint8).tobytes()) if op.customOptions is not None else b""
        operators.append(Operator(i, _op_name(schema, codes[op.opcodeIndex]), ins, outs, _options(op), custom))
    ins = tuple(int(v) for v in (graph.inputs if graph.inputs is not None else ()))
    outs = tuple(int(v) for v in (graph.outputs if graph.outputs is not None else ()))
    if len(ins) != 1 or len(outs) != 1:
        raise ModelError(f"{source}: the model has {len(ins)} inputs and {len(outs)} outputs; one of each is supported")
    return TfliteGraph(source, tuple(tensors), tuple(operators), ins, outs)


def read_tflite(path: str | Path) -> TfliteGraph:
    """:func:`parse_tflite` of the file ``path`` (a regular file; read once)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return parse_tflite(data, str(path))


__all__ = ["Operator", "Tensor", "TfliteGraph", "parse_tflite", "read_tflite"]
