"""Training: Coherent-Loss fine-tuning (``stabbench finetune``), its control, and supervised
training of a baseline from scratch (the same command without ``--videos``).

    >>> from stabbench.training import TrainConfig, run_training
    >>> cfg = TrainConfig(model="builtin:tiny_unet", out="ft", dataset="shapes",
    ...                   dataset_options={"num_images": 8}, videos=("clips/",))   # doctest: +SKIP
    >>> result = run_training(cfg)                                                   # doctest: +SKIP

Modules: :mod:`~stabbench.training.config` (settings), :mod:`~stabbench.training.data`
(labelled images, video pairs + flow, seeded data order), :mod:`~stabbench.training.modelio`
(loading ``--model``, output checks, TorchScript export), :mod:`~stabbench.training.trainer`
(the loop, logs, checkpoints, resume, periodic stability evaluation).
"""

from stabbench.training.config import TrainConfig, lr_at


def run_training(config, *, resume: bool = False, overwrite: bool = False):
    """See :func:`stabbench.training.trainer.run_training`."""
    from stabbench.training.trainer import run_training as _run

    return _run(config, resume=resume, overwrite=overwrite)


__all__ = ["TrainConfig", "lr_at", "run_training"]
