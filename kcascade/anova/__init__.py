"""ANOVA structure of SS-ANOVA models: terms, domains, basis points, features."""
from kcascade.anova import design, terms
from kcascade.anova.design import Design, domains_of, draw_basis, scale_rows
from kcascade.anova.terms import Structure, build

__all__ = ["design", "terms", "Design", "Structure", "build", "domains_of", "draw_basis", "scale_rows"]
