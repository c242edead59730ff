"""Estimators: configurations that follow ``kcascade.protocol``, and their fits."""
from kcascade.estimators.ssanova_glm import GSSANOVAFit
from kcascade.estimators.ssden import SSDensity, SSDensityFit
from kcascade.estimators.kde import KDE, KDEFit, KDEHyper
from kcascade.estimators.ssanova import SSANOVA, default_n_basis
from kcascade.estimators.ssanova_fit import Hyper, SSANOVAFit

__all__ = ["KernelRidge", "KRRFit", "KRRHyper", "GSSANOVAFit", "SSDensity", "SSDensityFit", "KDE", "KDEFit", "KDEHyper", "SSANOVA", "SSANOVAFit", "Hyper", "default_n_basis"]
from kcascade.estimators.krr import KernelRidge, KRRFit, KRRHyper
