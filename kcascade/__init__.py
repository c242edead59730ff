"""kcascade: nonparametric function estimation with Knowledge Cascade in JAX."""
from kcascade import datasets, frames, kernels, plot, protocol, sources, stationary
from kcascade.cascade import laws
from kcascade.cascade.pipeline import CascadeFit, Stage, cascade, teacher_key, transfer
from kcascade.compilation import enable_compilation_cache
from kcascade.estimators import KernelRidge, KRRFit, KRRHyper, GSSANOVAFit, SSDensity, SSDensityFit, KDE, SSANOVA, Hyper, KDEFit, KDEHyper, SSANOVAFit, default_n_basis
from kcascade.persist import load
from kcascade.scaling import student_size
from kcascade.sources import ChunkSource, NpySource, ParquetSource

__all__ = ["ChunkSource", "NpySource", "ParquetSource", "sources", "KernelRidge", "KRRFit", "KRRHyper", "stationary", "SSANOVA", "SSANOVAFit", "GSSANOVAFit", "SSDensity", "SSDensityFit", "Hyper", "default_n_basis", "datasets", "frames", "kernels", "plot", "laws", "protocol",
           "cascade", "CascadeFit", "Stage", "teacher_key", "transfer", "student_size", "enable_compilation_cache",
           "KDE", "KDEFit", "KDEHyper", "load"]
__version__ = "0.1.0"
