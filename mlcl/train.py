"""Temporary alias of :mod:`mlcl.training` (the one training engine); import from there."""

from mlcl.training import TrainConfig, TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train"]
