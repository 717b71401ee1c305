"""stabbench.datasets (``list_sources``) and stabbench.datasets.base: the loaders by name."""

from __future__ import annotations

import pytest


def test_unknown_dataset_name() -> None:
    from stabbench.datasets import list_sources

    with pytest.raises(ValueError, match="davis, cityscapes, folder, shapes"):
        list_sources("imagenet", None)
