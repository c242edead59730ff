"""SS-ANOVA for binomial and Poisson responses (``SSANOVA(family=...)``):
penalized likelihood fitted by iteratively reweighted least squares, with the
smoothing parameters selected inside the iteration (Gu 1992).

Model: y_i ~ Binomial(m_i, p_i) / m_i with logit p_i = eta(x_i), or
y_i ~ Poisson(mu_i) with log mu_i = o_i + eta(x_i) (o an optional offset);
eta is an SS-ANOVA function on the model's terms, marginals and basis. The
fit minimises

    D(eta) / n + lambda sum_b theta_b^{-1} ||P_b eta||^2

(D the deviance, -2 times the log-likelihood up to a constant: the Gaussian
objective with the weighted squared residuals replaced by it)

by Newton's method in its IRLS form: at the current eta, the pseudo-data
z_i = eta_i + (y_i - mu_i) / v_i with weights w_i = m_i v_i (v the variance
function: p(1 - p), or mu; m_i the binomial trials or the Poisson prior
weights) define a weighted Gaussian SS-ANOVA problem, whose solution is the
next eta. Each iteration is one ``SSANOVA.fit`` of the Gaussian family with
those weights: one weighted pass of the streamed statistics (chunks, the
float32 QR path and device meshes work as for Gaussian fits).
At fixed smoothing parameters each step is halved while it raises the
penalized deviance D + n lambda c'Q c (as gss's ``ngreg`` and mgcv's
``gam.fit3`` control it): from a far start (a selection's eta, a student's)
plain IRLS can run off to the bound and stay there.

With ``hyper=None`` the smoothing parameters are selected inside the
iteration (Gu's "performance-oriented iteration", gss's ``gssanova0``): the
selection engine runs on the weighted pseudo-data with the model's ``score``
("ubr": unbiased risk with dispersion 1, gss's method "u"; "gcv"; "gml"),
first once IRLS has settled at a pilot's values (lambda the best on a grid
at thetas that give every kernel the same trace, chosen afresh in each
iteration from the narrow pass: no search; at most 4 iterations; measured
on the KCas reference example, 10 seeds: 3 selections -> 2 on 9 of them,
median seconds 0.56 -> 0.39, MSE of the probabilities equal to 1% on 8,
lower on 2), then again each time IRLS at the current values has
settled (eta moving by less than 1e-3 relative), from the previous values,
until a new selection moves eta by less than a tenth of its standard error
(weighted root mean square: sum_i w_i (change_i)^2 <= 0.01 tr A, the
posterior variance of eta summed in the same weights, dispersion 1; at
least two selections, at most 8); then IRLS at the last values runs to
convergence. A change that small moves eta's mean squared error by about
1% of its variance part. (The earlier rule, a change below 1e-3 relative
in the max norm, took 3-7 selections on the KCas reference example where
this one takes 3-4, at the same MSE of the probabilities to 1%: the
fixed point is approached by ~15% per selection there, moving eta by
~5e-3 each time, far inside its standard error.) Plain POI
(a selection in every iteration) does not converge: the selected values
wander along the score's flat valley by ~0.01 in log lambda from one
iteration to the next, moving eta by ~1e-5, and the final fit is then
defined by no fixed smoothing parameters. Once eta has reached the bound
+-ETA_MAX somewhere (perfect separation) no selection runs: the values at
hand (the pilot's or the last selection's) are kept, with the warning that
ends such a fit (there the working weights are ~e^-30, and a selection took
two separated blobs from deviance 24 to 1726, 6x the constant model's).
With ``hyper`` given the iteration is penalized IRLS at fixed values: a
cascade's teacher.

Conventions: binomial ``y`` holds proportions in [0, 1] (0/1 for single
trials) and ``weights`` the trials m_i (default 1; m_i y_i must be whole
numbers); Poisson ``y`` holds counts, ``weights`` prior weights (default 1)
and ``offset`` o_i. ``evaluate`` and ``predict(scale="link")`` give eta (the
log-odds, or log mu without the offset); ``scale="response"`` p or mu.
"""
from __future__ import annotations

import dataclasses
import functools
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from kcascade import checks, compilation, progress as progress_lines, protocol
from kcascade.estimators.ssanova_fit import Hyper, SSANOVAFit

FAMILIES = ("gaussian", "binomial", "poisson")
ETA_MAX = 30.0    # |eta| is held within this: p within 1e-13 of 0 or 1, mu within e^+-30
TOL = 1e-6        # the iteration stops when eta is within TOL (1 + max |eta|) of the optimum (max norm): its last
                  # change was that small, or Newton's quadratic convergence puts it there (``_close_enough``)
MAX_ITER = 30     # gss's gssanova0 default maxiter
SELECT_TOL = 1e-3     # re-select when IRLS at the current values moves eta by less than this (relative)
SELECT_SE = 0.1       # stop selecting when a selection moves eta by less than this fraction of its standard
                      # error (weighted root mean square: sum_i w_i change_i^2 <= SELECT_SE^2 df)
MAX_SELECTIONS = 8
HALVINGS = 10         # a step raising the penalized deviance is halved at most this often (to ~1e-3: gss's line
                      # search tolerance in ngreg)
MAX_PILOTS = 4        # iterations at the pilot's smoothing parameters (lambda on a grid at equal-trace thetas) before
                      # the first selection


def mean_of(family: str, eta):
    """The inverse link: p = 1 / (1 + e^-eta), or mu = e^eta."""
    eta = jnp.clip(eta, -ETA_MAX, ETA_MAX)
    return jax.nn.sigmoid(eta) if family == "binomial" else jnp.exp(eta)


def _xlogx_over(a, b):
    """a log(a / b), 0 where a = 0."""
    return jnp.where(a > 0, a * jnp.log(jnp.where(a > 0, a, 1.0) / b), 0.0)


def deviance(family: str, y, mu, m):
    """Total deviance 2 sum_i m_i [l(y_i; y_i) - l(y_i; mu_i)]."""
    if family == "binomial":
        return 2.0 * jnp.sum(m * (_xlogx_over(y, mu) + _xlogx_over(1.0 - y, 1.0 - mu)))
    return 2.0 * jnp.sum(m * (_xlogx_over(y, mu) - (y - mu)))


def variance(family: str, mu):
    """The family's variance function V(mu): mu (1 - mu) or mu."""
    return mu * (1.0 - mu) if family == "binomial" else mu


@compilation.jit
def _working_binomial(y, eta, m, offset):
    mu = mean_of("binomial", eta)
    v = jnp.maximum(variance("binomial", mu), 1e-12)
    return eta + (y - mu) / v, m * v


@compilation.jit
def _working_poisson(y, eta, m, offset):
    mu = mean_of("poisson", eta + offset)
    v = jnp.maximum(variance("poisson", mu), 1e-12)
    return eta + (y - mu) / v, m * v


_WORKING = {"binomial": _working_binomial, "poisson": _working_poisson}


def check_response(family: str, y, m):
    """The family's value checks of y (and of the trials m for binomial)."""
    if not checks.is_concrete(y, m):
        return
    yn, mn = np.asarray(y, np.float64), np.asarray(m, np.float64)
    low = float(yn.min())
    if low < 0:
        raise ValueError(f"y: expected non-negative values for family={family!r}, got a minimum of {low}")
    if family == "binomial":
        high = float(yn.max())
        if high > 1:
            raise ValueError(f"y: expected proportions in [0, 1] for family='binomial' (successes / trials, "
                             f"with the trials as weights=), got a maximum of {high}")
        successes = yn * mn
        bad = np.abs(successes - np.round(successes)) > 1e-6 * np.maximum(mn, 1.0)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"y: expected y * weights (successes) to be whole numbers for family='binomial', "
                             f"got {successes[i]:.6g} at row {i} (y = {yn[i]:.6g}, weights = {mn[i]:.6g})")
    else:
        bad = np.abs(yn - np.round(yn)) > 1e-9
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"y: expected whole-number counts for family='poisson', got {yn[i]:.6g} at row {i}")


def fit(model, x, y, *, key, hyper, init, start, weights, offset, mesh, progress) -> "GSSANOVAFit":
    """``model.fit`` for a binomial or Poisson ``model`` (see the module
    docstring). x, y, weights, offset are checked arrays; mesh as the
    Gaussian fit's."""
    family = model.family
    gaussian = dataclasses.replace(model, family="gaussian")
    m, o, eta, total, events = _begin(family, y, weights, offset)
    total, events = float(total), float(events)
    if events == 0 or (family == "binomial" and events == total):
        # the likelihood's optimum is at eta = -+infinity: start at the bound
        eta = jnp.full_like(y, ETA_MAX if events else -ETA_MAX)
    elif start is not None:
        # (a start only: the iteration converges to the same fit from any start)
        eta = _start_from(start, x)
    n = x.shape[0]
    what = ("penalized IRLS at fixed smoothing parameters" if hyper is not None else
            "IRLS with selection in every iteration")
    working = _WORKING[family]
    from kcascade.estimators.ssanova import fit_rows, pilot_fit   # (ssanova imports this module)
    from kcascade.estimators.ssanova_engine import no_init
    # every selection runs in the program that takes a start (the first from
    # no_init, the selection's own): one compilation for all of them
    first = no_init(gaussian.structure(x.shape[1]).k, y.dtype) if init is None else init
    inner, change, converged, it, selections, pilots, scale = None, np.inf, False, 0, 0, 0, np.inf
    before = np.inf      # the change of the iteration before (a step towards the same optimum)
    full_step = True     # whether that iteration's step was Newton's own (not halved)
    selecting, fixed = hyper is None, hyper
    at_edge = False      # whether the last iteration's eta reached +-ETA_MAX somewhere
    piloting = selecting and init is None
    with progress_lines.phase(f"{family} SS-ANOVA on {n} rows: {what}", on=bool(progress)):
        for it in range(1, MAX_ITER + 1):
            z, w = working(y, eta, m, o)
            # select on pseudo-data whose IRLS has settled at the current values
            settled = inner is None or change <= SELECT_TOL * scale
            if selecting and settled and not piloting and at_edge:
                # eta at the bound somewhere (perfect separation): those rows'
                # working weights are ~e^-30, and a selection there is free to
                # move their eta anywhere (blobs of sklearn's classifier checks:
                # a selection took the deviance from 24 to 1726, 6x the constant
                # model's, and the iteration never came back): the values at
                # hand (the pilot's, or the last selection's) are kept
                selecting = False
            prev = inner
            if piloting:
                inner, mode = pilot_fit(gaussian, x, z, w, key, mesh), "pilot"
                pilots += 1
            elif selecting and settled:
                inner = fit_rows(gaussian, x, z, w, key, init=first if selections == 0 else inner.hyper, mesh=mesh)
                selections, mode = selections + 1, "select"
            else:
                inner, mode = fit_rows(gaussian, x, z, w, key, hyper=fixed, mesh=mesh, pilot=True), "fixed"
            # at fixed values after a fit at the same values (whose eta this
            # is), the step is halved while it raises the penalized deviance
            halve = mode == "fixed" and prev is not None
            eta, moved, coef_null, coef_basis = _moved(family, inner, prev if halve else inner, x, eta, w, y, m, o,
                                                       halve)
            latest, moved_sq, size, df, step = (float(v) for v in np.asarray(moved))
            if step < 1.0:
                inner = dataclasses.replace(inner, coef_null=coef_null, coef_basis=coef_basis)
            # (a halved step says nothing of Newton's quadratic convergence)
            fixed, before, change = inner.hyper, (change if full_step else np.inf), latest
            full_step = step == 1.0
            within_se = moved_sq <= SELECT_SE ** 2 * df
            scale = 1.0 + size
            at_edge = size >= ETA_MAX * (1 - 1e-9)
            if mode == "pilot" and (change <= SELECT_TOL * scale or pilots >= MAX_PILOTS):
                piloting = False
            if mode == "select" and selections > 1 and (within_se or selections >= MAX_SELECTIONS):
                selecting = False          # a new selection no longer moves eta: keep these values
            if mode == "fixed" and not selecting and full_step and _close_enough(change, before, TOL * scale):
                converged = True
                break
    dev, null_dev = _deviances(family, y, eta, m, o)
    if at_edge or not converged:
        if events == 0 or (family == "binomial" and events == total):
            why = f"every response is {'1' if events else '0'} (all-zero counts for poisson): eta is at its bound"
        elif at_edge:
            why = (f"eta reached the bound +-{ETA_MAX:g} somewhere (fitted "
                   + ("probabilities of 0 or 1: perfect separation)" if family == "binomial" else
                      "means of e^-30 or e^30)"))
        else:
            why = f"the largest change of eta was {change:.3g} after {it} iterations"
        warnings.warn(f"{family} SS-ANOVA: {why}; the fit is finite but its smoothing parameters and standard "
                      "errors there are not reliable", RuntimeWarning, stacklevel=3)
    return GSSANOVAFit(model=model, inner=inner, deviance=dev, null_deviance=null_dev,
                       iterations=it, selections=selections, converged=converged)


def reselect(model, x, y, *, start, init, key, mesh=None):
    """One selection of every smoothing parameter on the rows (x, y), at the
    working model of the fit ``start`` (``SSANOVA.reselect``): the IRLS
    pseudo-data z and weights w at ``start``'s eta on these rows (see the
    module docstring), and the weighted Gaussian selection on them from
    ``init``, in the program that full selection's selections run. Unit
    prior weights, no offset. Returns the selected ``Hyper``."""
    from kcascade.estimators.ssanova import fit_rows   # (ssanova imports this module)
    gaussian, z, w = _working_problem(model, x, y, start)
    return fit_rows(gaussian, x, z, w, key, init=init, mesh=mesh).hyper


def working_score(model, x, y, *, hyper, start, key, mesh=None):
    """The selection score at ``hyper`` of the working model of the fit
    ``start`` on the rows (x, y) (``SSANOVA.score_at``): the weighted
    Gaussian fit at ``hyper`` to the pseudo-data, in the program of the IRLS
    iterations at fixed values (no compilation of its own). Unit prior
    weights, no offset."""
    from kcascade.estimators.ssanova import fit_rows   # (ssanova imports this module)
    gaussian, z, w = _working_problem(model, x, y, start)
    return fit_rows(gaussian, x, z, w, key, hyper=hyper, mesh=mesh, pilot=True).score


def _working_problem(model, x, y, start):
    """The Gaussian model and the IRLS pseudo-data z and weights w at the fit
    ``start``'s eta on the rows (x, y) (unit prior weights, no offset)."""
    z, w = _WORKING[model.family](y, _start_from((start,), x), jnp.ones_like(y), jnp.zeros_like(y))
    return dataclasses.replace(model, family="gaussian"), z, w


# The iteration's array work outside the Gaussian fits, one compiled program
# each (eager, every operation compiles apart in a fresh process).
@functools.partial(compilation.jit, static_argnums=0)
def _begin(family, y, weights, offset):
    """Prior weights m, offset o, the standard start eta, total weight and events."""
    m = jnp.ones_like(y) if weights is None else weights
    o = jnp.zeros_like(y) if offset is None else offset
    if family == "binomial":
        eta = jax.scipy.special.logit((m * y + 0.5) / (m + 1.0))
    else:
        eta = jnp.log(y + 0.1) - o
    return m, o, eta, jnp.sum(m), jnp.sum(m * y)


@compilation.jit
def _start_from(starts, x):
    """The start from fits ``starts`` (a tuple: a cascade's B students): the
    median over them of their eta at x moved onto each one's domain (beyond
    it a fit's eta is an unbounded polynomial extrapolation, so such rows take
    its value at the domain's edge), within +-ETA_MAX. The median of three
    students' etas was 1.5-3x closer to the teacher's than the first
    student's alone on the KCas reference example (weighted RMS 0.07-0.16
    against 0.15-0.46, 4 seeds)."""
    def eta_of(start):
        dom = jnp.asarray(start.inner.domains, x.dtype)
        return jnp.clip(start.evaluate(jnp.clip(x, dom[:, 0], dom[:, 1])), -ETA_MAX, ETA_MAX)

    return jnp.median(jnp.stack([eta_of(s) for s in starts]), axis=0)


@functools.partial(compilation.jit, static_argnums=0)
def _moved(family, inner, prev, x, eta, w, y, m, o, halve):
    """The Newton step from ``eta`` to ``inner``'s eta at x (within
    +-ETA_MAX), halved while it raises the penalized deviance
    D + n lambda c'Q_theta c (at most HALVINGS times) when ``halve`` (a
    traced bool: ``inner`` and ``prev``, the fit whose eta ``eta`` is, share
    the smoothing parameters and basis, so eta and the coefficients are linear
    along the step; gss's ``ngreg`` and mgcv's ``gam.fit3`` control the step
    the same way: plain IRLS can run off to the bound +-ETA_MAX, as it did on
    741 rows of the KCas reference example at a selection's values). Returns
    the new eta; stacked, its largest change, the weighted squared change
    sum_i w_i change_i^2, its largest size, ``inner``'s df and the step length
    t; and the coefficients at t (``inner``'s when t = 1)."""
    new = jnp.clip(inner.predict(x), -ETA_MAX, ETA_MAX)
    q = inner.design.penalty(jnp.exp(inner.hyper.log_theta))
    n_lambda = inner.n * jnp.exp(inner.hyper.log_lambda)
    c0, dc = prev.coef_basis, inner.coef_basis - prev.coef_basis
    q_c0 = q @ c0
    pen0, pen1, pen2 = c0 @ q_c0, 2.0 * (dc @ q_c0), dc @ (q @ dc)

    def objective(t):
        return (deviance(family, y, mean_of(family, eta + t * (new - eta) + o), m)
                + n_lambda * (pen0 + t * (pen1 + t * pen2)))

    start = objective(0.0)
    rises = lambda t: halve & (objective(t) > start + 1e-7 * (1.0 + jnp.abs(start))) & (t > 0.5 ** HALVINGS)
    t = jax.lax.while_loop(rises, lambda t: 0.5 * t, jnp.asarray(1.0, eta.dtype))
    stepped = jnp.where(t == 1.0, new, eta + t * (new - eta))
    d = stepped - eta
    moved = jnp.stack([jnp.max(jnp.abs(d)), jnp.sum(w * d * d), jnp.max(jnp.abs(stepped)),
                       jnp.asarray(inner.df, eta.dtype), t])
    coef_null = prev.coef_null + t * (inner.coef_null - prev.coef_null)
    return stepped, moved, coef_null, prev.coef_basis + t * dc    # (used only when t < 1)


@functools.partial(compilation.jit, static_argnums=0)
def _deviances(family, y, eta, m, o):
    """The fit's deviance and the constant model's (with the offset)."""
    null_eta = jnp.log(jnp.sum(m * y) / jnp.sum(m * jnp.exp(o))) if family == "poisson" else 0.0
    null_mu = (jnp.full_like(y, jnp.sum(m * y) / jnp.sum(m)) if family == "binomial" else
               jnp.exp(null_eta + o))
    return deviance(family, y, mean_of(family, eta + o), m), deviance(family, y, null_mu, m)


def _close_enough(change, before, tol) -> bool:
    """Whether eta, after a Newton step of max-norm size ``change`` that
    followed one of size ``before`` on the same problem, is within ``tol`` of
    the optimum. Newton's error falls quadratically, e_k ~ C e_{k-1}^2, and a
    step is about the error before it, so C ~ change / before^2 and eta's
    distance to the optimum is about change^3 / before^2. Taken with a
    safety factor of 10, and only once the steps fall quadratically (change
    <= before / 10); else the change itself must be below ``tol``. Saves the
    pass that would only confirm convergence."""
    if change <= tol:
        return True
    return bool(np.isfinite(before) and change <= 0.1 * before and 10.0 * change ** 3 / before ** 2 <= tol)


@dataclasses.dataclass(frozen=True)
class GSSANOVAFit(protocol.Fit):
    """A fitted binomial or Poisson SS-ANOVA (a pytree).

    Attributes:
      model: the ``SSANOVA`` configuration (its ``family``).
      inner: the weighted Gaussian ``SSANOVAFit`` of the last iteration: its
        coefficients are eta's, its score the last selection's.
      deviance, null_deviance: total deviance of the fit and of the constant
        model (with the offset) on the training rows.
      iterations: IRLS iterations run (each one weighted pass); selections:
        how many of them selected the smoothing parameters; converged:
        whether the iteration at fixed values ended within 1e-6 (1 + max |eta|)
        of the optimum (max norm; its last change, or the quadratic
        convergence of its last two steps, ``_close_enough``).
    """

    model: Any
    inner: SSANOVAFit
    deviance: jax.Array
    null_deviance: jax.Array
    iterations: int
    selections: int
    converged: bool

    def __repr__(self):
        return protocol.short_repr(self, n=self.n, log_lambda=self.hyper.log_lambda, deviance=self.deviance,
                                   iterations=self.iterations) + f" of {self.model!r}"

    @property
    def hyper(self) -> Hyper:
        return self.inner.hyper

    @property
    def n(self):
        return self.inner.n

    @property
    def terms(self) -> tuple:
        return self.inner.terms

    @property
    def deviance_explained(self):
        """1 - deviance / null deviance."""
        return 1.0 - self.deviance / self.null_deviance

    def predict(self, x_new, scale: str = "link", se: bool = False, terms=None, offset=None):
        """eta (``scale="link"``, the default) or p / mu (``"response"``) at
        ``x_new`` (m, d); with ``se=True`` also the Bayesian standard errors
        of eta (dispersion 1), both (m,). ``offset``: (m,) Poisson offsets
        added to eta (both scales). ``terms`` as ``SSANOVAFit.predict``."""
        if scale not in ("link", "response"):
            raise ValueError(f"scale: expected 'link' or 'response', got {scale!r}")
        eta, sd = self.inner.predict(x_new, se=True, terms=terms) if se else (self.inner.predict(x_new, terms=terms), None)
        if offset is not None:
            if self.model.family != "poisson":
                raise ValueError(f"offset: only for family='poisson', got family={self.model.family!r}")
            checks.float_vector(checks.as_array(offset), "offset", eta.shape[0], "x_new.shape[0]")
            eta = eta + jnp.asarray(offset, eta.dtype)
        out = eta if scale == "link" else mean_of(self.model.family, eta)
        return (out, sd / jnp.sqrt(self.inner.sigma2)) if se else out

    def summary(self, x=None, weights=None, offset=None):
        """The fit on one screen: family, deviance (null, explained), log
        lambda, df, iterations, and per ANOVA term its log theta, effective
        df (with the training rows ``x``, at the last IRLS weights) and
        importance pi on the link scale (``ssanova_summary``). ``weights``
        and ``offset``: those of the fit, with ``x``."""
        from kcascade.estimators import ssanova_summary
        w = None
        if x is not None:
            eta = self.predict(x, offset=offset) if offset is not None else self.evaluate(x)
            mu = mean_of(self.model.family, eta)
            v = variance(self.model.family, mu)
            w = np.asarray(v if weights is None else v * jnp.asarray(weights, v.dtype), np.float64)
        base = ssanova_summary.summarize(self.inner, x, w)
        header = dict(base.header, family=self.model.family, deviance=float(self.deviance),
                      null_deviance=float(self.null_deviance), deviance_explained=float(self.deviance_explained),
                      iterations=self.iterations, selections=self.selections, converged=self.converged)
        return dataclasses.replace(base, header=header)

    def save(self, path) -> str:
        """Write this fit to ``path`` (.npz, no pickle); ``kc.load(path)`` reads it."""
        from kcascade import persist
        return persist.save(self, path)

    def evaluate(self, x_new):
        """(m,) eta, the fitted function on the link scale."""
        return self.inner.predict(x_new)


jax.tree_util.register_dataclass(GSSANOVAFit, data_fields=["inner", "deviance", "null_deviance"],
                                 meta_fields=["model", "iterations", "selections", "converged"])
