"""Knowledge Cascade: scaling laws (``laws``) and the student -> teacher
pipeline (``pipeline``)."""
from kcascade.cascade import laws
from kcascade.cascade.pipeline import CascadeFit, Stage, cascade, transfer

__all__ = ["laws", "CascadeFit", "Stage", "cascade", "transfer"]
