"""The estimator protocol: what ``kc.cascade``, ``laws.empirical`` and
``distill.targets`` may ask of an estimator, and nothing more.

An *estimator* is a frozen, hashable configuration (a subclass of
``Estimator``); fitting it returns a *fit* (a subclass of ``Fit``, a pytree).
The cascade talks to both only through the members below.

Every estimator provides

- ``supervised``: whether ``fit`` takes responses ``y`` (regression) or not
  (density estimation);
- ``randomized``: whether ``fit`` draws something and so takes a ``key``;
- ``check_data(x, y)``: the input checks of ``fit`` (same messages), run
  before any expensive work; returns ``x`` (and ``y``) as arrays;
- ``fit(x, [y,] *, [key,] hyper=None, ...)``: hyper None selects the
  hyperparameters, a given ``hyper`` fits once at it;
- ``default_law(d)``: the ``scaling.Law`` that carries the scale parameter
  from n_s rows to n rows for data with d columns;
- ``scale_of(hyper)``: the log scale parameter a law acts on (for the
  empirical law's ladder); a hyperparameter value moves by
  ``hyper.transferred(delta_log)``, which shifts the scale parameter and
  copies the relative ones;
- ``capacity(n)``: the size of the estimator's function space at n rows
  (the basis size q), or None where it does not grow with n;
- ``min_rows(d)``: the fewest rows a fit accepts;
- ``for_columns(columns)``: the estimator to fit to a DataFrame's columns
  (``frames.Columns``): by default itself, refusing nominal columns; SS-ANOVA
  makes them nominal covariates.

Optional capabilities, declared in ``capabilities`` (a frozenset of the names
in ``CAPABILITIES``); an option outside it is rejected before any work by
``require``:

- "init": ``fit(..., init=hyper)`` starts the selection from a value (the
  stages of a multi-stage cascade);
- "refine": ``model.refine(x, y, hyper, *, key, steps, mesh=, progress=)``
  takes steps of the estimator's own score from ``hyper``;
- "scale_search": ``fit(..., hyper=h, scale_search=True)`` keeps the relative
  hyperparameters of ``h`` and re-selects the scale parameter from the
  statistics of the single pass (``kc.cascade(teacher_lambda="select")``);
- "group_search": ``fit(..., hyper=h, scale_search="groups")`` also
  re-selects one multiplier per group of relative hyperparameters (SS-ANOVA:
  main effects, interactions) from one pass
  (``kc.cascade(teacher_lambda="groups")``);
- "reselect": ``model.reselect(x, y, *, start, init, key)`` selects every
  hyperparameter once on a subsample at the working model of a fit on all
  rows, from ``init`` (``kc.cascade(teacher_lambda="reselect")``: binomial
  and Poisson SS-ANOVA);
- "warm_start": ``fit(..., hyper=h, start=student_fit)`` starts an
  iterative fit from a smaller fit (or from a tuple of fits: bagged
  students);
- "mesh": ``fit(..., mesh=Mesh)`` splits the pass over the rows over devices;
- "progress": ``fit(..., progress=True)`` reports progress on stderr;
- "source": ``fit(source, None, ...)`` reads the rows from a chunked source
  (``kcascade.sources``) without holding them all.

A fit provides ``hyper``, ``n`` (rows it was fitted on) and
``evaluate(x_new)``: the estimated function at new rows (the regression
function, or the log density).
"""
from __future__ import annotations

import abc
from typing import ClassVar

import numpy as np

CAPABILITIES = {
    "init": "a starting value for the selection (stages)",
    "refine": "refinement of its own score (refine)",
    "refine_on_mesh": "refinement of its own score on a device mesh (refine with mesh)",
    "scale_search": "re-selection of the scale parameter on the teacher's pass (teacher_lambda='select')",
    "group_search": "re-selection of the scale and of group multipliers on the teacher's pass (teacher_lambda='groups')",
    "reselect": "re-selection of every hyperparameter on a subsample at the teacher's working model "
                "(teacher_lambda='reselect')",
    "warm_start": "a warm start from the student's fit (warm_start)",
    "mesh": "a device mesh (mesh)",
    "progress": "progress lines (progress)",
    "source": "rows from a chunked source (kc.NpySource, kc.ParquetSource, kc.ChunkSource)",
}


# the keyword of ``fit`` through which each capability is used
FIT_KEYWORDS = {"init": "init", "scale_search": "scale_search", "start": "warm_start", "mesh": "mesh",
                "progress": "progress"}


class Estimator(abc.ABC):
    """Base of every estimator configuration (see the module docstring)."""

    supervised: ClassVar[bool] = True
    randomized: ClassVar[bool] = True
    capabilities: ClassVar[frozenset] = frozenset()
    # students per cascade stage when ``cascade(students=None)``: chosen by
    # measurement for each estimator (benchmarks/bagged_students.py for SS-ANOVA)
    default_students: ClassVar[int] = 1

    @abc.abstractmethod
    def check_data(self, x, y=None):
        """``fit``'s input checks; returns (x, y) as arrays (y None when unsupervised)."""

    @abc.abstractmethod
    def fit(self, x, *args, **kwargs):
        """Fit; select the hyperparameters unless ``hyper`` is given."""

    @abc.abstractmethod
    def default_law(self, d: int):
        """The ``scaling.Law`` for the scale parameter with d covariates."""

    @abc.abstractmethod
    def scale_of(self, hyper):
        """The log scale parameter of ``hyper`` that a law moves."""

    @abc.abstractmethod
    def min_rows(self, d: int) -> int:
        """The fewest rows a fit on d columns accepts."""

    def capacity(self, n: int) -> int | None:
        """The size of the function space at n rows (None: does not grow with n)."""
        return None

    def precompile(self, x, y=None, *, key=None, **options) -> None:
        """Compile, without running it, the program that ``fit(x, y, key=key,
        hyper=h, **options)`` runs at fixed hyperparameters h (in the data's
        dtype), so that a caller can overlap the compilation with other work
        (``cascade`` compiles the teacher's program while its students run).
        x, y as ``check_data`` returns them. May be called from another
        thread; changes no result. The default does nothing."""
        return None

    def refine(self, x, y, hyper, *, key, steps: int, **options):
        raise NotImplementedError(f"{type(self).__name__} does not declare 'refine'")

    def reselect(self, x, y, *, start, init, key):
        raise NotImplementedError(f"{type(self).__name__} does not declare 'reselect'")

    def for_student(self, d: int, n_student: int, n: int) -> "Estimator":
        """The estimator a cascade's students on ``n_student`` of the ``n`` rows
        (d columns) are fitted with; the default is this one. (``SSDensity``:
        a coarser quadrature rule.)"""
        return self

    def for_teacher(self, d: int, n: int) -> "Estimator":
        """The estimator a cascade's teacher on all ``n`` rows (d columns) is
        fitted with; the default is this one. (Gaussian ``SSANOVA``: a wider
        basis, which the teacher's single fit can afford.)"""
        return self

    def search_groups(self, d: int) -> int:
        """How many groups of relative hyperparameters ``fit(...,
        scale_search="groups")`` re-weighs for d columns (the "group_search"
        capability); below 2 a cascade skips its group pass. Default 1."""
        return 1

    def for_columns(self, columns):
        """This estimator, configured for a DataFrame's ``frames.Columns``.
        The default takes numeric columns only."""
        if columns is not None and columns.nominal:
            cats = [columns.names[v] for v in columns.nominal]
            raise ValueError(f"x: {type(self).__name__} takes numeric columns only; got categorical, string or "
                             f"boolean columns {cats}")
        return self


class Fit(abc.ABC):
    """Base of every fitted result. Besides ``evaluate``, a fit has the
    attributes ``hyper`` (the hyperparameters it was fitted at) and ``n`` (the
    rows it was fitted on)."""

    @abc.abstractmethod
    def evaluate(self, x_new):
        """(m,) the estimated function at the rows of ``x_new`` (m, d)."""


def with_columns(fit, columns):
    """``fit`` carrying the column facts it was fitted on, where its type keeps
    them (a ``columns`` field); otherwise ``fit`` itself."""
    if columns is None or "columns" not in getattr(type(fit), "__dataclass_fields__", {}):
        return fit
    import dataclasses
    return dataclasses.replace(fit, columns=columns)


def require(model, options, how=None):
    """Raise a ValueError unless ``model`` is an ``Estimator`` that declares every
    capability in ``options``. ``how``: the caller's name for each option."""
    if not isinstance(model, Estimator):
        raise ValueError(f"model: expected a kcascade estimator (kc.SSANOVA, kc.SSDensity, kc.KDE, kc.KernelRidge, nets.NetRegressor, ...), "
                         f"got {type(model).__name__}")
    how = how or {}
    for option in options:
        if option not in CAPABILITIES:
            raise ValueError(f"unknown capability {option!r}; expected one of {sorted(CAPABILITIES)}")
        if option not in model.capabilities:
            have = ", ".join(sorted(model.capabilities)) or "none"
            raise ValueError(f"{how.get(option, option)}: {type(model).__name__} does not support "
                             f"{CAPABILITIES[option]} (its capabilities: {have})")


def fit_with(model: Estimator, x, y=None, *, key=None, hyper=None, **options):
    """``model.fit`` called as its declarations say: ``y`` only for supervised
    estimators, ``key`` only for randomized ones, each option only where
    declared (options that are None or False are left out)."""
    given = {k: v for k, v in options.items() if v is not None and v is not False}
    unknown = sorted(set(given) - set(FIT_KEYWORDS))
    if unknown:
        raise ValueError(f"{unknown[0]}: not an option of the estimator protocol; expected one of {sorted(FIT_KEYWORDS)}")
    require(model, [FIT_KEYWORDS[k] for k in given])
    args = (x, y) if model.supervised else (x,)
    if model.randomized:
        given["key"] = key
    return model.fit(*args, hyper=hyper, **given)


def precompile_with(model: Estimator, x, y=None, *, key=None, **options) -> None:
    """``model.precompile`` called as ``fit_with`` calls ``fit`` (options that
    are None or False left out)."""
    given = {k: v for k, v in options.items() if v is not None and v is not False}
    args = (x, y) if model.supervised else (x,)
    if model.randomized:
        given["key"] = key
    model.precompile(*args, **given)


def starts_of(start) -> tuple:
    """A ``start=`` argument as a tuple of fits: one fit, or the cascade's B
    students (a tuple or list, B >= 1); None gives (). ValueError on an empty
    sequence."""
    if start is None:
        return ()
    starts = tuple(start) if isinstance(start, (tuple, list)) else (start,)
    if not starts:
        raise ValueError("start: expected a fit or a non-empty sequence of fits, got an empty sequence")
    return starts


def first_start(start):
    """The first fit of a ``start=`` argument (``starts_of``), or None: the
    estimators that grow from one fit take the first of a cascade's B students."""
    return (starts_of(start) or (None,))[0]


def brief(value) -> str:
    """A short text for a value in a fit's ``repr``: a number to 5 significant
    digits, an array (or a traced or batched value) as dtype[shape]."""
    shape = getattr(value, "shape", None)
    if shape is None:
        return repr(value)
    if len(shape) == 0:
        try:
            return f"{float(value):.5g}"
        except Exception:   # a tracer inside jit or vmap
            pass
    return f"{np.dtype(value.dtype).name}{list(shape)}"


def short_repr(obj, **fields) -> str:
    """``Name(field=brief, ...)``: one line instead of every array in the fit."""
    return f"{type(obj).__name__}(" + ", ".join(f"{k}={brief(v)}" for k, v in fields.items()) + ")"
