"""Evaluation: run a predictor over a synthetic set and accumulate the metrics.

The runner knows nothing of the metrics' definitions (detectron2-style): it feeds each
sequence in temporal order, hands predictions and ground truth to the meters, and returns
an :class:`EvalState` whose counts merge across shards by addition.
"""

from stabbench.evaluation.runner import EvalState, evaluate, parse_shard

__all__ = ["EvalState", "evaluate", "parse_shard"]
