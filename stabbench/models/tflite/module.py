"""The ``nn.Module`` that executes an imported TFLite graph in NCHW, with trainable float32 weights.

    >>> from stabbench.models.tflite import import_tflite
    >>> net = import_tflite("selfie_segmentation.tflite")                  # doctest: +SKIP
    >>> probs = net(x)          # x: float32 [B, 3, 256, 256] in [0, 1] -> [B, 1, 256, 256]
    >>> seg = import_tflite("selfie_segmentation.tflite", head="binary_logits")  # doctest: +SKIP
    >>> logits = seg(x)         # [B, 2, 256, 256]: softmax(logits)[:, 1] == probs

Convention
----------
- Input ``[B, C, H, W]`` float32 (the TFLite input ``[1, H, W, C]`` permuted; any batch size),
  output ``[B, C', H', W']`` (the TFLite output permuted the same way).
- ``head="binary_logits"`` (a model whose output is ``LOGISTIC`` of one channel ``z``): the
  final sigmoid is dropped and the module returns the 2-class logits ``[-z / 2, z / 2]``, whose
  softmax is ``[1 - sigmoid(z), sigmoid(z)]`` (background, foreground): the C-class logits the
  training losses take, with the arg-max equal to ``sigmoid(z) > 0.5``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from stabbench.errors import ModelError
from stabbench.models.tflite.ops import Constants, convert_operator
from stabbench.models.tflite.reader import TfliteGraph, read_tflite

HEADS = ("probabilities", "binary_logits")


class TfliteModule(nn.Module):
    """An imported TFLite graph (see the module docstring); built by :func:`import_tflite`."""

    def __init__(self, graph: TfliteGraph, head: str = "probabilities"):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}; got {head!r}")
        first = graph.tensor(graph.inputs[0])
        if first.dtype != "FLOAT32" or len(first.shape) != 4:
            raise ModelError(f"{graph.source}: input {first.name!r} is {first.dtype} {list(first.shape)}; the importer "
                             "takes one float32 image input [1, H, W, C]")
        constants = Constants(graph)
        steps = [s for s in (convert_operator(graph, op, constants) for op in graph.operators) if s is not None]
        output = graph.outputs[0]
        if head == "binary_logits":
            output = _pre_sigmoid(graph, steps)
            steps = steps[:-1]
        self.steps = nn.ModuleList(s.module for s in steps)
        self.wiring = [(s.inputs, s.output) for s in steps]
        self.input_index, self.output_index, self.head = graph.inputs[0], output, head
        shape = first.shape
        self.input_chw = (shape[3], shape[1], shape[2])
        self.source = graph.source
        _check_wiring(graph, self.wiring, self.input_index, self.output_index)

    def spec_layer(self) -> dict:
        """What the graph says about its pre/post-processing (a :class:`~stabbench.predictors.ModelSpec`
        layer): the fixed input size, NCHW, and for the training head softmax over 2 classes."""
        layer: dict = {"layout": "nchw", "resize": "stretch", "input_size": self.input_chw[1:]}
        if self.head == "binary_logits":
            layer.update(activation="softmax", num_classes=2)
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.input_chw:
            c, h, w = self.input_chw
            raise ValueError(f"{Path(self.source).name} takes input [B, {c}, {h}, {w}] (its fixed TFLite input size); "
                             f"got {list(x.shape)}")
        values = {self.input_index: x}
        for step, (inputs, output) in zip(self.steps, self.wiring):
            values[output] = step(*[values[i] for i in inputs])
        y = values[self.output_index]
        if self.head == "binary_logits":
            return torch.cat([-0.5 * y, 0.5 * y], dim=1)
        return y


def _pre_sigmoid(graph: TfliteGraph, steps) -> int:
    """The tensor ``z`` of an output ``LOGISTIC(z)`` with one channel, the last step; ModelError otherwise."""
    last = graph.producer(graph.outputs[0])
    shape = graph.tensor(graph.outputs[0]).shape
    if last is None or last.op != "LOGISTIC" or not steps or steps[-1].output != graph.outputs[0] or shape[-1:] != (1,):
        got = "nothing" if last is None else last.op
        raise ModelError(f"{graph.source}: training needs a one-channel output ending in LOGISTIC (a person "
                         f"probability) to turn into 2-class logits; this output is {shape} from {got}")
    return last.inputs[0]


def _check_wiring(graph: TfliteGraph, wiring, input_index: int, output_index: int) -> None:
    """Every step reads a tensor computed before it (operators are stored in execution order)."""
    known = {input_index}
    for inputs, output in wiring:
        missing = [i for i in inputs if i not in known]
        if missing:
            raise ModelError(f"{graph.source}: tensor {graph.tensor(missing[0]).name!r} is read before it is computed")
        known.add(output)
    if output_index not in known:
        raise ModelError(f"{graph.source}: the output tensor is never computed")


def import_tflite(path: str | Path, head: str = "probabilities") -> TfliteModule:
    """Read ``path`` and build its :class:`TfliteModule` (float32 parameters, train mode)."""
    return TfliteModule(read_tflite(path), head=head)


__all__ = ["HEADS", "TfliteModule", "import_tflite"]
