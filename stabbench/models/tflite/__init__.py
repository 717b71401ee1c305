"""Import a TFLite model as a trainable PyTorch module (``finetune --model model.tflite``).

:mod:`~stabbench.models.tflite.reader` reads the flatbuffer into a small graph description,
:mod:`~stabbench.models.tflite.ops` converts each operator (a registry, one function per op),
:mod:`~stabbench.models.tflite.module` executes the graph in NCHW with float32 parameters.
Supported: CONV_2D, DEPTHWISE_CONV_2D, ADD, MUL, RELU, RELU6, HARD_SWISH, LOGISTIC,
AVERAGE_POOL_2D, MEAN, RESIZE_BILINEAR, DEQUANTIZE (float16 weights) and MediaPipe's custom
``Convolution2DTransposeBias``; any other op is a :class:`~stabbench.errors.ModelError` naming
it and the model (exit 5).
"""

from stabbench.models.tflite.module import HEADS, TfliteModule, import_tflite
from stabbench.models.tflite.ops import CONVERTERS, supported_ops
from stabbench.models.tflite.reader import TfliteGraph, parse_tflite, read_tflite

__all__ = ["CONVERTERS", "HEADS", "TfliteGraph", "TfliteModule", "import_tflite", "parse_tflite", "read_tflite",
           "supported_ops"]
