"""kcascade: nonparametric function estimation with Knowledge Cascade in JAX."""
from kcascade import datasets, kernels, laws
from kcascade.cascade import CascadeFit, cascade, transfer
from kcascade.compilation import enable_compilation_cache
from kcascade.kde import KDE, KDEFit, KDEHyper
from kcascade.laws import student_size
from kcascade.ssanova import SSANOVA, SSANOVAFit, Hyper, default_n_basis

__all__ = ["SSANOVA", "SSANOVAFit", "Hyper", "default_n_basis", "datasets", "kernels", "laws",
           "cascade", "CascadeFit", "transfer", "student_size", "enable_compilation_cache",
           "KDE", "KDEFit", "KDEHyper"]
__version__ = "0.1.0"
