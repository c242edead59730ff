"""Knowledge Cascade: scaling laws (``laws``) and the student -> teacher
pipeline (``pipeline``)."""
from kcascade.cascade import laws
from kcascade.cascade.pipeline import CascadeFit, Stage, cascade, teacher_key, transfer

__all__ = ["laws", "CascadeFit", "Stage", "cascade", "teacher_key", "transfer"]
