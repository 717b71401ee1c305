"""Labelled-image datasets the synthesizer reads.

Each loader is a function ``list_<name>(root, **options) -> DatasetListing`` that only
lists files (cheap); images are decoded one at a time by :meth:`SourceRef.load`.

=============  ==============================================================
name           source
=============  ==============================================================
``davis``      DAVIS-2016 / DAVIS-2017 (``JPEGImages/480p``, ``Annotations/480p``)
``cityscapes`` Cityscapes ``leftImg8bit`` + ``gtFine`` labelIds -> 19 trainIds
``folder``     generic ``images/`` + ``masks/`` pairs matched by file stem
``shapes``     built-in generated images with exact masks (no files needed)
=============  ==============================================================
"""

from __future__ import annotations

from typing import Callable

from stabbench.datasets.base import IGNORE_LABEL, DatasetListing, Sample, SourceRef


def _loaders() -> dict[str, Callable[..., DatasetListing]]:
    from stabbench.datasets.cityscapes import list_cityscapes
    from stabbench.datasets.davis import list_davis
    from stabbench.datasets.folder import list_folder
    from stabbench.datasets.shapes import list_shapes

    return {"davis": list_davis, "cityscapes": list_cityscapes, "folder": list_folder, "shapes": list_shapes}


DATASET_NAMES = ("davis", "cityscapes", "folder", "shapes")


def list_sources(name: str, root=None, **options) -> DatasetListing:
    """List the labelled images of dataset ``name``; unknown names raise ``ValueError``."""
    loaders = _loaders()
    if name not in loaders:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")
    return loaders[name](root, **options)


__all__ = ["DatasetListing", "IGNORE_LABEL", "Sample", "SourceRef", "list_sources", "DATASET_NAMES"]
