"""A scikit-learn estimator layer (needs scikit-learn: the ``sklearn`` extra).

``SSANOVARegressor`` (Gaussian, or Poisson counts with ``family="poisson"``)
and ``SSANOVAClassifier`` (two classes: binomial SS-ANOVA, logit p = eta)
wrap ``kc.SSANOVA`` (and, with ``cascade=True``, ``kc.cascade``) behind
scikit-learn's conventions: parameters in ``__init__`` with
``get_params``/``set_params``, ``random_state`` as an int (or None / a
``numpy`` RandomState), ``fit(X, y, sample_weight=None)``, ``predict``,
``score``, ``n_features_in_`` and ``feature_names_in_``; the classifier
also ``classes_``, ``decision_function`` (eta, the log-odds of
``classes_[1]``), ``predict_proba`` and ``predict_log_proba``. They work in
``Pipeline``, ``cross_val_score`` and ``GridSearchCV``.

The JAX API (``kc.SSANOVA``) keeps taking explicit ``jax.random`` keys; here
the key is ``jax.random.key(seed)`` with the seed drawn from
``random_state`` as scikit-learn does (``check_random_state``).

Data: numeric arrays, or pandas DataFrames whose names and categorical,
string and boolean columns are kept (``kc.frames``).
"""
from __future__ import annotations

import dataclasses

import jax
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.metrics import d2_tweedie_score
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils import check_random_state
from sklearn.utils.validation import (_check_sample_weight, check_array, check_consistent_length,
                                      check_is_fitted, column_or_1d, validate_data)

from kcascade import frames
from kcascade.cascade.pipeline import cascade as _cascade
from kcascade.estimators import SSANOVA
from kcascade.estimators.ssanova import default_n_basis, row_bucket


def _expit(t):
    """1 / (1 + e^-t) without overflow, and without rounding small values to 0."""
    e = np.exp(-np.abs(t))
    return np.where(t >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


class _SSANOVAEstimator(BaseEstimator):
    """The parameters, model, checks and fit the two estimators share."""

    _family = "gaussian"

    def __init__(self, order=2, marginals="cubic", domains=None, criterion=None, alpha=1.4, n_basis=None,
                 basis_draw="spread", stall_tol=0.01, cascade=False, n_student=None, students=None, random_state=0):
        self.order = order
        self.marginals = marginals
        self.domains = domains
        self.criterion = criterion
        self.alpha = alpha
        self.n_basis = n_basis
        self.basis_draw = basis_draw
        self.stall_tol = stall_tol
        self.cascade = cascade
        self.n_student = n_student
        self.students = students
        self.random_state = random_state

    # checks of ``sklearn.utils.estimator_checks`` these estimators fail on
    # purpose, with why (tests/test_sklearn.py passes them as expected)
    EXPECTED_FAILED_CHECKS = {
        "check_sample_weight_equivalence_on_dense_data":
            "27 rows and 30 features: more unpenalized (linear) columns than rows; a smoothing spline "
            "needs n > 1 + d",
    }

    def _model(self, n: int, d: int) -> SSANOVA:
        order = min(self.order, d) if isinstance(self.order, int) else self.order
        model = SSANOVA(order=order, family=self._family, marginals=self.marginals, domains=self.domains,
                        score=self.criterion, alpha=self.alpha, n_basis=self.n_basis, basis_draw=self.basis_draw,
                        stall_tol=self.stall_tol)
        if self.n_basis is None and not self.cascade:
            m = model.structure(d).m
            q = min(n, default_n_basis(row_bucket(n)))
            if n < q + m:
                if n - m < 1:
                    raise ValueError(f"X: n_samples = {n} is too few for order {order} with {d} feature(s): "
                                     f"expected at least {m + 1} samples")
                model = dataclasses.replace(model, n_basis=n - m)
        return model

    def _validate(self, X, y=None, reset=True, y_numeric=True):
        """Checked (X, y): scikit-learn's own checks and messages for arrays
        and numeric DataFrames (which are passed on with their names); a
        DataFrame with categorical, string or boolean columns is passed on
        as it is (``kc.frames`` checks it). ``y_numeric=False``: class
        labels of any type."""
        if frames.is_frame(X) and frames.split(X.iloc[:1])[1].nominal:
            names = list(X.columns)
            if reset:
                self.n_features_in_ = len(names)
                if all(isinstance(c, str) for c in names):
                    self.feature_names_in_ = np.asarray(names, dtype=object)
            elif len(names) < self.n_features_in_:
                raise ValueError(f"X has {len(names)} features, but {type(self).__name__} is expecting "
                                 f"{self.n_features_in_} features as input")
            if y is None:
                return X, None
            y = column_or_1d(check_array(y, ensure_2d=False, dtype="numeric" if y_numeric else None,
                                         input_name="y"), warn=True)
            check_consistent_length(X, y)
            return X, y
        if y is None:
            arr = validate_data(self, X, reset=reset, dtype=[np.float64, np.float32], accept_sparse=False)
            return (X if frames.is_frame(X) else arr), None
        arr, y = validate_data(self, X, y, reset=reset, dtype=[np.float64, np.float32], y_numeric=y_numeric,
                               accept_sparse=False)
        return (X if frames.is_frame(X) else arr), y

    def _fit_response(self, X, y, sample_weight):
        """Fit (or run the cascade on) the checked X and the float response y."""
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        key = jax.random.key(seed)
        w = None
        if sample_weight is not None:
            if self.cascade:
                raise ValueError("sample_weight: not supported with cascade=True")
            w = _check_sample_weight(sample_weight, np.zeros((len(y), 1)), dtype=np.float64,
                                     ensure_non_negative=True)
            if self._family != "gaussian" and np.any(w == 0):
                # binomial trials and Poisson prior weights are positive: a row
                # of weight 0 takes no part, so it is left out
                keep = w > 0
                X = X[keep] if frames.is_frame(X) else np.asarray(X)[keep]
                y, w = y[keep], w[keep]
        model = self._model(len(y), self.n_features_in_)
        if self.cascade:
            res = _cascade(model, X, y, key=key, n_student=self.n_student, students=self.students)
            self.fit_, self.cascade_ = res.teacher, res
        else:
            self.fit_, self.cascade_ = model.fit(X, y, key=key, weights=w), None
        return self

    def summary(self, X=None):
        """``fit_.summary(X)``."""
        check_is_fitted(self, "fit_")
        return self.fit_.summary(X)


class SSANOVARegressor(RegressorMixin, _SSANOVAEstimator):
    """Smoothing-spline ANOVA regression, scikit-learn style.

    Parameters (as ``kc.SSANOVA``): order, marginals, domains, criterion
    (``SSANOVA``'s ``score``: "gcv", "gml" or "ubr", None for the family's
    default; renamed because ``score`` is scikit-learn's method), alpha, n_basis, basis_draw, stall_tol; and
      family: "gaussian" (default: least squares) or "poisson" (y counts,
        log mu = eta; ``predict`` gives mu and ``score`` is D^2, the fraction
        of Poisson deviance explained, as scikit-learn's
        ``PoissonRegressor``; ``sample_weight`` prior weights);
      cascade: False (select on all rows) or True (``kc.cascade``: select on
        student subsamples, transfer by the law, fit the teacher once);
      n_student, students: the cascade's options (None: its defaults);
      random_state: int, None or a numpy RandomState: the basis draw (and the
        cascade's subsamples).

    With ``n_basis=None`` and fewer rows than gss's basis size plus the
    null space needs, q = n - m (every row but m is a basis point), so
    small data sets fit as scikit-learn expects.

    Attributes after ``fit``: ``fit_`` (the ``SSANOVAFit``; for Poisson the
    ``GSSANOVAFit``), ``cascade_`` (the ``CascadeFit`` or None),
    ``n_features_in_``, ``feature_names_in_`` (for a DataFrame whose column
    names are all strings).
    """

    def __init__(self, order=2, marginals="cubic", domains=None, criterion=None, alpha=1.4, n_basis=None,
                 basis_draw="spread", stall_tol=0.01, cascade=False, n_student=None, students=None, random_state=0,
                 family="gaussian"):
        super().__init__(order=order, marginals=marginals, domains=domains, criterion=criterion, alpha=alpha,
                         n_basis=n_basis, basis_draw=basis_draw, stall_tol=stall_tol, cascade=cascade,
                         n_student=n_student, students=students, random_state=random_state)
        self.family = family

    @property
    def _family(self):
        return self.family

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.positive_only = self.family == "poisson"
        return tags

    def fit(self, X, y, sample_weight=None):
        """Select the smoothing parameters (or run the cascade) and fit.

        Args:
          X: (n_samples, n_features) numbers, or a DataFrame.
          y: (n_samples,) numbers (``family="poisson"``: whole non-negative
            counts).
          sample_weight: None or (n_samples,) non-negative weights (not with
            ``cascade=True``; Poisson: prior weights, rows of weight 0 left
            out).
        """
        if self.family not in ("gaussian", "poisson"):
            raise ValueError(f"family: expected 'gaussian' or 'poisson' (two classes: SSANOVAClassifier), "
                             f"got {self.family!r}")
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        X, y = self._validate(X, y, reset=True)
        return self._fit_response(X, np.asarray(y, np.float64), sample_weight)

    def predict(self, X):
        """(n_samples,) predictions as a numpy array: the fitted function, or
        for Poisson the mean mu = exp(eta)."""
        check_is_fitted(self, "fit_")
        X, _ = self._validate(X, reset=False)
        if self.family == "poisson":
            return np.asarray(self.fit_.predict(X, scale="response"))
        return np.asarray(self.fit_.predict(X))

    def score(self, X, y, sample_weight=None):
        """R^2 (Gaussian), or D^2 (Poisson: 1 - deviance / the deviance of the
        weighted mean, ``sklearn.metrics.d2_tweedie_score(power=1)``)."""
        if self.family != "poisson":
            return super().score(X, y, sample_weight=sample_weight)
        return d2_tweedie_score(y, self.predict(X), sample_weight=sample_weight, power=1)



class SSANOVAClassifier(ClassifierMixin, _SSANOVAEstimator):
    """Two-class smoothing-spline ANOVA (binomial, logit p = eta),
    scikit-learn style.

    Parameters as ``SSANOVARegressor`` (without ``family``): order,
    marginals, domains, criterion, alpha, n_basis, basis_draw, stall_tol,
    cascade, n_student, students, random_state. y holds two classes of any
    labels; ``classes_`` sorts them and p is the probability of
    ``classes_[1]``. Data that separate the classes perfectly end in a
    finite fit with a warning (``kc.SSANOVA``'s binomial family).

    ``sample_weight``: whole numbers, the binomial trials of each row (a
    row of weight k counts as k copies of it; rows of weight 0 are left
    out). Fractional weights raise a ValueError: the binomial family takes
    trials, whose successes must be whole.

    Attributes after ``fit``: ``classes_`` (2,), ``fit_`` (the
    ``GSSANOVAFit``), ``cascade_`` (the ``CascadeFit`` or None),
    ``n_features_in_``, ``feature_names_in_``.
    """

    _family = "binomial"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def fit(self, X, y, sample_weight=None):
        """Select the smoothing parameters (or run the cascade) and fit.

        Args:
          X: (n_samples, n_features) numbers, or a DataFrame.
          y: (n_samples,) labels of two classes.
          sample_weight: None or (n_samples,) whole non-negative numbers (not
            with ``cascade=True``).
        """
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        X, y = self._validate(X, y, reset=True, y_numeric=False)
        check_classification_targets(y)
        kind = type_of_target(y, input_name="y", raise_unknown=True)
        if kind not in ("binary", "multiclass") or len(np.unique(y)) > 2:
            raise ValueError(f"y: Only binary classification is supported. The type of the target is {kind} "
                             f"({len(np.unique(y))} classes).")
        self.classes_, codes = np.unique(y, return_inverse=True)
        present = codes
        if sample_weight is not None:
            w = np.asarray(sample_weight, np.float64).reshape(-1)
            if w.shape == codes.shape and np.all(np.isfinite(w)):
                frac = np.abs(w - np.round(w)) > 1e-9
                if np.any(frac):
                    raise ValueError("sample_weight: expected whole numbers (the binomial trials of each row), "
                                     f"got {w[np.argmax(frac)]:.6g}")
                if not np.any(w > 0):
                    raise ValueError("sample_weight: expected some positive weights, got all weights zero")
                present = codes[w > 0]
        if len(self.classes_) < 2 or len(np.unique(present)) < 2:
            raise ValueError(f"y: expected samples of two classes, got one class "
                             f"({self.classes_[present[0]] if len(present) else self.classes_[0]!r}"
                             f"{' among the rows of positive sample_weight' if len(self.classes_) == 2 else ''})")
        return self._fit_response(X, codes.astype(np.float64), sample_weight)

    def decision_function(self, X):
        """(n_samples,) eta, the log-odds of ``classes_[1]``."""
        check_is_fitted(self, "fit_")
        X, _ = self._validate(X, reset=False)
        return np.asarray(self.fit_.predict(X), np.float64)

    def predict_log_proba(self, X):
        """(n_samples, 2) log probabilities of ``classes_[0]``, ``classes_[1]``."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict_proba(self, X):
        """(n_samples, 2) probabilities of ``classes_[0]``, ``classes_[1]``."""
        eta = self.decision_function(X)
        return np.stack([_expit(-eta), _expit(eta)], axis=1)

    def predict(self, X):
        """(n_samples,) the more probable class (``classes_[1]`` where eta > 0)."""
        eta = self.decision_function(X)
        return self.classes_[(eta > 0).astype(int)]
