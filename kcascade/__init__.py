"""kcascade: nonparametric function estimation with Knowledge Cascade in JAX."""
from kcascade import datasets, kernels
from kcascade.ssanova import SSANOVA, SSANOVAFit, Hyper, default_n_basis

__all__ = ["SSANOVA", "SSANOVAFit", "Hyper", "default_n_basis", "datasets", "kernels"]
__version__ = "0.1.0"
