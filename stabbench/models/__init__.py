"""Built-in trainable architectures (``--model arch:NAME[,key=value,...]``).

    >>> from stabbench.models import build_model
    >>> net = build_model("tiny_unet", num_classes=3)          # fresh init (seed torch first)
    >>> net = build_model("tiny_unet", num_classes=2, base=8)  # options: see each class

Every built-in takes ``x = pixel / 255`` (RGB, NCHW; normalisation is inside the model) and
returns logits ``[B, num_classes, H, W]`` at the input resolution (:data:`ARCH_SPEC`), and
exports with ``torch.export`` to a ``.pt2`` that ``stabbench eval`` loads.

==============  ==========================================================================
name            what it is
==============  ==========================================================================
``tiny_unet``   compact U-Net (3 down/up stages, BatchNorm, ~0.49 M parameters); options
                ``base`` (width of the first stage, 16), ``depth`` (3), ``norm``
                (``batch`` | ``group``)
==============  ==========================================================================
"""

from __future__ import annotations

from typing import Any, Callable

MODEL_NAMES = ("tiny_unet",)

#: The pre/post-processing of every built-in architecture (a :class:`~stabbench.predictors.spec.ModelSpec` layer).
ARCH_SPEC = {
    "resize": "stretch",
    "scale": 1.0 / 255.0,
    "mean": (0.0, 0.0, 0.0),
    "std": (1.0, 1.0, 1.0),
    "channels": "rgb",
    "layout": "nchw",
    "activation": "softmax",
}


def _registry() -> dict[str, Callable[..., Any]]:
    from stabbench.models.tiny_unet import TinyUNet

    return {"tiny_unet": TinyUNet}


def build_model(name: str, num_classes: int, **options: Any):
    """A freshly initialised built-in ``name`` with ``num_classes`` outputs.

    Initialisation draws from torch's global RNG: call ``torch.manual_seed`` first for a
    reproducible model. Unknown names raise ``KeyError``; bad options ``TypeError`` /
    ``ValueError`` (the callers turn them into :class:`~stabbench.errors.ModelError`).
    """
    registry = _registry()
    if name not in registry:
        raise KeyError(f"unknown built-in architecture {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    return registry[name](num_classes, **options)


def count_parameters(model) -> int:
    """Number of trainable parameters."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


__all__ = ["ARCH_SPEC", "MODEL_NAMES", "build_model", "count_parameters"]
