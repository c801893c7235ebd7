"""Evaluation metrics (defined in :mod:`nsnet.metrics`, which training's validation shares)."""
from ..metrics import average_precision, mean_average_precision, precision_recall, top1_accuracy

__all__ = ["average_precision", "mean_average_precision", "top1_accuracy", "precision_recall"]
