"""Linear algebra of penalized least squares: streamed passes over the rows,
the Gram / QR statistics strategies, the fixed-hyper solve and the scores."""
from kcascade.linalg import passes, scores, solve, statistics

__all__ = ["passes", "scores", "solve", "statistics"]
