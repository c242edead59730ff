"""kcascade: nonparametric function estimation with Knowledge Cascade in JAX."""
from kcascade import datasets, kernels, laws
from kcascade.cascade import CascadeFit, cascade, transfer
from kcascade.laws import student_size
from kcascade.ssanova import SSANOVA, SSANOVAFit, Hyper, default_n_basis

__all__ = ["SSANOVA", "SSANOVAFit", "Hyper", "default_n_basis", "datasets", "kernels", "laws",
           "cascade", "CascadeFit", "transfer", "student_size"]
__version__ = "0.1.0"
