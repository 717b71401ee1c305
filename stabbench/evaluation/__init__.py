"""Evaluation: run a predictor over a synthetic set and accumulate the metrics.

The runner knows nothing of the metrics' definitions (detectron2-style): it feeds each
sequence in temporal order, hands predictions and ground truth to the meters, and returns
an :class:`EvalState` whose counts merge across shards by addition (:func:`merge_shards`).
"""

from stabbench.evaluation.merge import merge_shards
from stabbench.evaluation.runner import evaluate
from stabbench.evaluation.state import EvalState, parse_shard, shard_indices

__all__ = ["EvalState", "evaluate", "merge_shards", "parse_shard", "shard_indices"]
