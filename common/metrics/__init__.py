"""Evaluation metrics shared by the papers: plain functions on numpy arrays or tensors."""

from common.metrics.ranking import auc, gauc, logloss

__all__ = ["auc", "gauc", "logloss"]
