"""Knowledge Cascade: a student selects, a law transfers, the teacher fits once.

DESIGN.md §2. For data of n rows: draw a student subsample of
n_s = ceil(100 n^{1/4}) rows, select every smoothing parameter on it, carry
the scale parameter to n rows with a scaling law (theta copied), and fit the
teacher once on all rows at the transferred values (by default, where the
estimator can, re-picking the scale parameter from the statistics of that
one pass: ``teacher_lambda``). The teacher may be a wider model than the
students (``Estimator.for_teacher``: a Gaussian SS-ANOVA's teacher has twice
the rule's basis points), since it is fitted once.

The cascade talks to the estimator only through ``kcascade.protocol``: the
options it is given are checked against the estimator's declared
capabilities, and the data against the estimator's own checks, before any
work.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import threading
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from kcascade import checks, compilation, frames, progress as progress_lines, protocol, scaling, sources
from kcascade.scaling import student_size

# the cascade's name for each estimator capability, for error messages
_OPTION_NAMES = {"init": "stages", "refine": "refine", "refine_on_mesh": "refine with mesh", "scale_search": "teacher_lambda='select'",
                 "group_search": "teacher_lambda='groups'", "reselect": "teacher_lambda='reselect'",
                 "warm_start": "warm_start", "mesh": "mesh", "progress": "progress", "source": "x"}


def transfer(hyper, law: scaling.Law, n_from, n_to):
    """Carry ``hyper`` selected on ``n_from`` rows to ``n_to`` rows by ``law``.

    The scale parameter (log lambda, or log bandwidths) moves by
    ``law.log_factor(n_from, n_to)``; relative weights are copied.
    """
    if not isinstance(law, scaling.Law):
        raise ValueError(f"law: expected a kcascade.laws.Law, got {type(law).__name__}")
    return hyper.transferred(law.log_factor(n_from, n_to))


class Stage(NamedTuple):
    """One student stage: its rows, its capacity (basis size, or None) and the
    hyperparameters it selected."""

    n: int
    capacity: int | None
    hyper: Any


@dataclasses.dataclass(frozen=True)
class CascadeFit:
    """The result of ``cascade``.

    Attributes:
      student: the fit on the (last-stage, first) student subsample.
      teacher: the fit on all rows.
      stages: one ``Stage`` per student stage, in order.
      law: the scaling law used.
      timings: wall seconds per phase: "student", "transfer", "groups", "reselect", "refine", "teacher",
        "total" ("groups" and "reselect": 0 where that pass did not run; "reselect": its selections and
        scores, "teacher": every fit of the teacher, the reselect pass's included).
    """

    student: Any
    teacher: Any
    stages: tuple
    law: scaling.Law
    timings: dict

    def __repr__(self):
        return (f"CascadeFit(n={self.n}, students={[s.n for s in self.stages]}, law={self.law.name} "
                f"(exponent {self.law.exponent:.4g}), seconds={self.timings.get('total', float('nan')):.3g}, "
                f"teacher={self.teacher!r})")

    def summary(self, x=None) -> "CascadeSummary":
        """The cascade on one screen: student sizes and counts, the law, the
        scale parameter selected and transferred, seconds per phase, and the
        teacher's own ``summary(x)`` where it has one (``x``: the training
        rows, for per-term df)."""
        model = getattr(self.teacher, "model", None)
        scale = (lambda h: float(model.scale_of(h))) if model is not None and hasattr(model, "scale_of") else None
        lines = [f"Knowledge Cascade: n = {self.n}, students on "
                 + ", ".join(f"{s.n} rows" + (f" (q = {s.capacity})" if s.capacity else "") for s in self.stages)
                 + f"; law {self.law.name}, exponent {self.law.exponent:.4g}"]
        if scale is not None:
            try:
                lines.append(f"  scale parameter (log): student {scale(self.hyper_student):.4g} -> teacher "
                             f"{scale(self.hyper_teacher):.4g}")
            except (TypeError, ValueError):
                pass
        lines.append("  seconds: " + ", ".join(f"{k} {v:.3g}" for k, v in self.timings.items()))
        teacher = self.teacher.summary(x) if hasattr(self.teacher, "summary") else None
        return CascadeSummary("\n".join(lines), teacher)

    def save(self, path) -> str:
        """Write the cascade (student, teacher, stages, law, timings) to ``path``
        (.npz + JSON, no pickle); ``kc.load`` reads it."""
        from kcascade import persist
        return persist.save(self, path)

    @property
    def n(self) -> int:
        """Rows of the teacher."""
        return int(self.teacher.n)

    @property
    def n_student(self) -> int:
        """Rows of the (last) student."""
        return int(self.student.n)

    @property
    def hyper_student(self):
        """The hyperparameters the (last) stage selected: its one student's, or
        the median of its students' (``students``)."""
        return self.stages[-1].hyper

    @property
    def hyper_teacher(self):
        """The hyperparameters the teacher was fitted at (transferred, refined or
        re-scaled)."""
        return self.teacher.hyper


@dataclasses.dataclass(frozen=True)
class CascadeSummary:
    """``CascadeFit.summary()``: ``text`` (the cascade's lines) and ``teacher``
    (the teacher fit's own summary, or None); ``print`` shows both."""

    text: str
    teacher: Any

    def __str__(self):
        return self.text + ("" if self.teacher is None else "\nteacher:\n" + str(self.teacher))

    __repr__ = __str__


def _sizes(n, n_student, stages):
    if stages is not None and n_student is not None:
        raise ValueError("stages: give either n_student or stages, not both")
    sizes = tuple(stages) if stages is not None else (student_size(n) if n_student is None else n_student,)
    if not sizes:
        raise ValueError("stages: expected at least one student size, got ()")
    for s in sizes:
        if not (isinstance(s, (int, np.integer)) and 1 <= s <= n):
            raise ValueError(f"{'stages' if stages is not None else 'n_student'}: expected integers in [1, n = {n}], got {s!r}")
    if any(b <= a for a, b in zip(sizes, sizes[1:])):
        raise ValueError(f"stages: expected strictly increasing sizes, got {sizes}")
    return tuple(int(s) for s in sizes)


@functools.partial(compilation.jit, static_argnums=(1, 2))
def _keys(key, stages, students):
    """(subsample key, the students' keys [stage][student], teacher key): one
    compiled program (eager, each split and fold_in compiled apart)."""
    k_sub, k_student, k_teacher = jax.random.split(key, 3)
    return k_sub, [[jax.random.fold_in(jax.random.fold_in(k_student, i), b) for b in range(students)]
                   for i in range(stages)], k_teacher


def teacher_key(key):
    """The key with which ``cascade(..., key=key)`` fits its teacher (and so
    draws the teacher's basis points), whatever its stages and students.
    ``model.fit(x, y, key=teacher_key(key))`` is full selection on the
    teacher's own basis: the comparison that leaves out the spread of the
    basis draw itself (``benchmarks/bagged_students.py``)."""
    checks.random_key(key)
    return _keys(key, 1, 1)[2]


@functools.partial(compilation.jit, static_argnums=(3, 4, 5))
def _blocks_of(x, y, key, size, students, head=0):
    """The rows of the first ``students`` blocks of ``size`` of a random order
    of the rows (drawn with ``key``): a tuple of B (x_b, y_b) (y None stays
    None); with ``head`` > 0, (that tuple, the first ``head`` rows of the
    same order): the group pass's rows from the students' one permutation
    (at 1e6 rows a permutation takes 0.4 s). One compiled program: eager,
    the permutation, each slice and gather were compiled apart in a fresh
    process."""
    order = jax.random.permutation(key, x.shape[0])
    idx = order[:students * size].reshape(students, size)
    blocks = tuple((x[i], None if y is None else y[i]) for i in idx)
    if not head:
        return blocks
    return blocks, (x[order[:head]], None if y is None else y[order[:head]])


@compilation.jit
def combine(hypers):
    """The element-wise median of several students' hyperparameters (pytrees
    of log values: log lambda and log theta, or log bandwidths)."""
    return jax.tree.map(lambda *leaves: jnp.median(jnp.stack(leaves), axis=0), *hypers)


def _compile_beside(jobs):
    """A started thread compiling the programs of later phases
    (``model.precompile``; ``jobs``: (model, x, y, key, options) each, in
    order) while the students run: XLA compiles on one core, so on a machine
    with two or more their compilation costs no wall time in a fresh
    process. A failure there is left for the phase's own call to meet."""
    def run():
        for model, x, y, key, options in jobs:
            try:
                protocol.precompile_with(model, x, y, key=key, **options)
            except Exception:   # noqa: BLE001 (the phase's call compiles, and reports, itself)
                pass
    thread = threading.Thread(target=run, name="kcascade-teacher-compile", daemon=True)
    thread.start()
    return thread


# teacher_lambda="groups": the group pass runs on GROUP_ROWS of the teacher's
# rows, and on no fewer than GROUP_MIN_ROWS (all of them below that), with the
# students' model (the rule's q). Its statistics, m + 2 q wide, cost per row
# about what the teacher's own pass (m + 2 q wide: TEACHER_BASIS) costs, so on
# a quarter of the rows it costs about a quarter of a teacher fit. Measured
# (benchmarks/bagged_students.py, B = 3, teacher test MSE over full
# selection's, the group pass on 1 / 0.5 / 0.25 of the rows): at 1e6 add4
# 1.397 (no group pass) -> 1.176 / 1.172 / 1.174 (group pass 4.8 / 2.1 / 1.2 s
# against the teacher's 4.1 s), mixed4 1.305 -> 1.256 / 1.247 / 1.258,
# friedman4 1.145 -> 1.138 / 1.139 / 1.145; at 1e5 add4 seed 1 1.328 -> 1.126
# / 1.126 / 1.18. On fewer rows the ratio is poorly determined: at 1e4 (3000
# rows, the students' own count) near_linear3 went 1.007 -> 1.349 and 0.810 ->
# 1.107 (seeds 1, 2); on all 1e4 rows 1.003 and 0.814, the worst of 24 data
# sets 1.18. Hence the floor, between those two counts. The pass runs only
# where those rows are at most half of the data (n >= 4e4): below, on (nearly)
# all rows, it took 40-75% more time (1e4 bed: cascade 0.26 s against 0.18 s;
# elecdemand, 14,016 rows: 0.28 s against 0.16 s, full selection 0.31 s) and
# changed nothing that the targets measure (1e4, 24 data sets: median 0.874
# against 0.872, worst 1.198 against 1.238); the teacher picks lambda alone.
GROUP_ROWS, GROUP_MIN_ROWS = 0.25, 20_000

# teacher_lambda="reselect": at most this many selections, each on its own
# block of group_rows(n) rows (the next rows of the students' random order),
# at the working model of the teacher fitted at the values before it, and
# kept only where the teacher's score on all rows prefers it (else the pass
# stops). Measured (benchmarks/glm_cascade.py, n = 1e5, KCas / full selection
# MSE over seeds 0-4 of ref3, pois3, binom4, pois4): one selection, median
# 0.944, worst 1.997 (binom4 seed 4: its teacher at the transferred values
# 4.06x, its working model far from the final one); a second on the same
# rows changed no fit; on the next block binom4 seed 4 went to 1.041 (the
# README's table for all 20). Below 4e4 rows the pass does not run: there it
# would select on all rows, the work of full selection (measured at 3000
# and 1e4, the four cases x 5 seeds: KCas / full median 0.99 / 1.00, worst
# 1.31 / 1.39, but 0.67x / 1.01x full selection's speed, against 1.11 /
# 1.07, worst 3.37 / 4.53, at 1.05x / 2.23x without it). Tried at 1e6 and
# not taken: the selections' rows capped at 1e5 (half the pass's time; pois3
# seeds 0 / 1 1.16x / 1.59x the MSE of the pass on 2.5e5 rows); below 4e4
# on the students' pooled rows (median 1.02 / 1.03, worst 1.33 / 2.38 at
# 0.66x / 1.26x full selection's speed).
RESELECT_ROUNDS = 2


def group_rows(n: int, n_student: int, students: int) -> int:
    """Rows of the group pass of ``teacher_lambda="groups"``: GROUP_ROWS of n,
    no fewer than GROUP_MIN_ROWS nor than the students had together, and no
    more than n."""
    return int(min(n, max(math.ceil(GROUP_ROWS * n), GROUP_MIN_ROWS, n_student * students)))


def cascade(model, x, y=None, *, key, n_student=None, law=None, stages=None, students: int | None = None,
            refine: int = 0, teacher_lambda: str | None = None, warm_start: bool = False, mesh=None,
            progress: bool = False) -> CascadeFit:
    """Select on a student subsample, transfer, fit the teacher once.

    Args:
      model: an estimator (``kc.SSANOVA``, ``kc.SSDensity``, ``kc.KDE``, ``kc.KernelRidge``,
        ``nets.NetRegressor``).
      x: (n, d) covariates, or a pandas DataFrame (named and categorical
        columns as in ``model.fit``: the model is ``model.for_columns`` of
        them, and both fits keep the columns), or a chunked source of rows
        (``kc.NpySource``, ``kc.ParquetSource``, ``kc.ChunkSource``; models
        with the "source" capability): the students' rows are drawn with
        ``source.take`` and the teacher streams the rest (no refine, no
        mesh); y: (n,) responses (None for density estimators and sources). Checked by the model's own checks (the messages
        of ``model.fit``) before the student runs.
      key: a ``jax.random`` key (subsample, basis points).
      n_student: student rows; default ``student_size(n)``.
      law: a ``laws.Law``; default the model's own (``model.default_law(d)``).
      stages: (n_1, n_2, ...) increasing student sizes: each stage's selection
        starts from the previous stage's values transferred to its size
        (models with the "init" capability).
      students: B >= 1 students per stage, each fitted with
        ``model.for_student(d, n_s, n)`` (the model itself, except
        ``SSDensity``: a coarser quadrature rule) (default the model's
        ``default_students``: 3 for SS-ANOVA, 1 otherwise), on disjoint subsamples while
        B n_s <= n (else on independent ones), selected one after another
        with the same compiled fit; their hyperparameters are combined by the
        element-wise median of the log values (``combine``). ``student`` is
        the first one's fit.
      (The teacher is fitted with ``model.for_teacher(d, n)``: the model
        itself, except Gaussian ``SSANOVA`` with the rule's basis size, whose
        teacher gets ``TEACHER_BASIS`` = 2 times as many basis points; give
        ``n_basis`` to fix q for students and teacher alike.)
      refine: gradient steps of the teacher's own score taken from the
        transferred values (0 = none: the teacher is fitted once; models with
        the "refine" capability).
      teacher_lambda: "law" (the reference rule: lambda as transferred),
        "select": the teacher keeps the transferred relative weights and picks
        its scale parameter by its own score from the statistics of its single
        pass (models with the "scale_search" capability), "groups": before
        the teacher, a group pass with the students' model on
        ``group_rows(n, n_s, B)`` rows (GROUP_ROWS = 1/4 of them, at least
        2e4: the first rows of the first stage's random order, so its
        students' rows among them; run only where they are at most half of
        the rows, n >= 4e4, else as "select") picks lambda and one
        multiplier of the interactions' thetas against the main effects' by
        its own score
        (``SSANOVA.fit(..., scale_search="groups")``), then the teacher
        picks lambda along those thetas as with "select" (models with the
        "group_search" capability: Gaussian SS-ANOVA on rows in memory), or
        "reselect": the teacher is fitted at the transferred values, then
        every smoothing parameter is selected once on ``group_rows(n, n_s,
        B)`` of its rows (the group pass's rule; the first rows of the
        first stage's random order) at its working model, from the
        transferred values (``model.reselect``), and carried back to n rows
        by the law; the teacher's own score on all n rows at that working
        model (``model.score_at(..., start=)``) then chooses between its
        values and the re-selected ones. Where the latter win, the teacher
        is fitted again at them (from its eta) and the step repeats on the
        next block of as many rows, at most ``RESELECT_ROUNDS`` = 2
        selections; where they lose, the teacher is the fit at hand (models with the "reselect"
        capability: binomial and Poisson SS-ANOVA; run only where those
        rows are at most half of the rows, n >= 4e4, and without a mesh,
        else as "law"), or
        None (default): "groups" where the model declares "group_search",
        "reselect" where it declares "reselect", else "select" where it
        declares "scale_search" (SSDensity, a chunked source), else "law".
        Measured for "reselect" against "law": see the README's binomial
        and Poisson section (``benchmarks/glm_cascade.py``). Measured for "groups" against "select": see
        the README's bagged-students tables. Measured for the default: teacher test MSE over full
        selection's, median (worst) over bed truths, law -> select: 1.052
        (1.527) -> 1.043 (1.257) at n = 1e5 and 1.757 (2.036) -> 1.205 (1.986)
        at 1e6 (``benchmarks/bagged_students.py``), at the same cost (no
        extra pass); 1.05 -> 1.04 at 1e4 and 2.14 -> 1.48 at 1e6 in
        ``benchmarks/ssanova_cascade.py``.
      warm_start: the student's fit starts the teacher's iterative fit (models
        with the "warm_start" capability: a network grown from the student;
        with B > 1 students the model gets the tuple of the last stage's B
        fits: binomial / Poisson SS-ANOVA starts from the median of their
        etas, a network or kernel ridge from the first).
      mesh: a ``jax.sharding.Mesh`` for the teacher's pass over all rows (and
        ``refine``); the student runs on one device.
      progress: print progress lines during the teacher's pass.
    Returns:
      A ``CascadeFit``.
    Raises:
      ValueError: bad data (as ``model.fit``), bad options, or an option the
        model does not declare, before any fitting.
    """
    students = getattr(type(model), "default_students", 1) if students is None else students
    if not (isinstance(students, (int, np.integer)) and students >= 1):
        raise ValueError(f"students: expected an integer >= 1, got {students!r}")
    if not (isinstance(refine, (int, np.integer)) and refine >= 0):
        raise ValueError(f"refine: expected an integer >= 0, got {refine!r}")
    checks.random_key(key)
    if teacher_lambda is None:
        able = getattr(model, "capabilities", ())
        teacher_lambda = ("groups" if "group_search" in able and not sources.is_source(x) else
                          "reselect" if "reselect" in able else
                          "select" if "scale_search" in able else "law")
    if teacher_lambda not in ("law", "select", "groups", "reselect"):
        raise ValueError(f"teacher_lambda: expected None, 'law', 'select', 'groups' or 'reselect', got "
                         f"{teacher_lambda!r}")
    if law is not None and not isinstance(law, scaling.Law):
        raise ValueError(f"law: expected a kcascade.laws.Law, got {type(law).__name__}")
    teacher_options = dict(scale_search=teacher_lambda in ("select", "groups"), mesh=mesh, progress=progress)
    wanted = dict(teacher_options, scale_search=teacher_lambda == "select", group_search=teacher_lambda == "groups",
                  reselect=teacher_lambda == "reselect", refine=refine > 0, warm_start=warm_start,
                  refine_on_mesh=refine > 0 and mesh is not None)
    protocol.require(model, [name for name, on in wanted.items() if on is not None and on is not False],
                     _OPTION_NAMES)
    src = x if sources.is_source(x) else None
    if src is not None:
        protocol.require(model, ["source"], _OPTION_NAMES)
        if y is not None:
            raise ValueError("y: a chunked source holds the responses; give y=None")
        if refine or mesh is not None:
            raise ValueError("refine, mesh: not available with a chunked source yet; give refine=0 and mesh=None")
        if teacher_lambda == "groups":
            raise ValueError("teacher_lambda: 'groups' is not available with a chunked source yet; give 'select'")
        columns, n, d = None, src.n_rows, src.n_columns
    else:
        x, columns = frames.split(x)
        model = model.for_columns(columns)
        x, y = model.check_data(x, y)
        n, d = x.shape
    sizes = _sizes(n, n_student, stages)
    if len(sizes) > 1:
        protocol.require(model, ["init"], _OPTION_NAMES)
    law = model.default_law(d) if law is None else law
    k_sub, k_students, k_teacher = _keys(key, len(sizes), students)
    teacher_model = model.for_teacher(d, n)

    def stage_rows(i, size):
        """The B students' rows of stage i: disjoint blocks of one random
        order while B n_s <= n (a source: B n_s rows drawn once and dealt
        out at random), else independent draws."""
        if src is None:
            if i == 0 and (group_pass or reselect_pass):
                blocks, head["rows"] = _blocks_of(x, y, k_sub, size, students, n_head)
                return list(blocks)
            if students * size <= n:
                return list(_blocks_of(x, y, jax.random.fold_in(k_sub, i) if i else k_sub, size, students))
            return [(x[idx], None if y is None else y[idx]) for idx in (
                jax.random.permutation(jax.random.fold_in(k_sub, 1000 * i + b), n)[:size]
                for b in range(students))]
        if students * size <= n:
            drawn = sources.draw_rows(jax.random.fold_in(k_sub, i), n, students * size)
            dealt = np.asarray(jax.random.permutation(jax.random.fold_in(k_sub, 10_000 + i), drawn.shape[0]))
            return [src.take(np.sort(drawn[dealt[b * size:(b + 1) * size]])) for b in range(students)]
        return [src.take(sources.draw_rows(jax.random.fold_in(k_sub, 1000 * i + b), n, size))
                for b in range(students)]
    t_start = time.perf_counter()
    # (no thread where the model keeps the protocol's no-op precompile)
    ahead = src is None and type(model).precompile is not protocol.Estimator.precompile
    # the group pass: a fit of the students' model (its q; the teacher's
    # grouped statistics, m + 4q wide at twice the q, cost 0.45 s at 1e4
    # where the whole cascade with the students' q took 0.26 s)
    # (else, teacher_lambda "groups" is "select": see GROUP_ROWS)
    n_group = group_rows(n, sizes[-1], students)
    group_pass = teacher_lambda == "groups" and model.search_groups(d) > 1 and 2 * n_group <= n
    # the reselect pass: each round on its own n_group rows, the first
    # RESELECT_ROUNDS n_group of the students' order ("reselect" below 4e4
    # rows is "law"; its selections and scores run on one device: with a
    # mesh, "law" too)
    reselect_pass = teacher_lambda == "reselect" and RESELECT_ROUNDS * n_group <= n and mesh is None
    n_head = RESELECT_ROUNDS * n_group if reselect_pass else n_group
    head = {}   # "rows": the pass's rows, drawn with the first stage's students (stage_rows)
    if group_pass or reselect_pass:
        pass_options = dict(scale_search="groups", mesh=mesh) if group_pass else dict(selection=True)
        shapes = (jax.ShapeDtypeStruct((n_group, d), x.dtype), jax.ShapeDtypeStruct((n_group,), y.dtype))
    # (in the order of use: the group pass, the teacher (whose first fit
    # comes before the reselect pass's selection), that selection)
    jobs = (([(model, *shapes, k_teacher, pass_options)] if group_pass else [])
            + [(teacher_model, x, y, k_teacher, teacher_options)]
            + ([(model, *shapes, k_teacher, pass_options)] if reselect_pass else []))
    compiling = _compile_beside(jobs) if ahead else None
    staged, hyper, prev, student = [], None, None, None
    for i, size in enumerate(sizes):
        init = None if hyper is None else transfer(hyper, law, prev, size)
        student_model = model.for_student(d, size, n)
        fits = []
        for b, (x_b, y_b) in enumerate(stage_rows(i, size)):
            with progress_lines.phase(f"student {b + 1} of {students} on {size} rows", on=bool(progress)):
                fits.append(jax.block_until_ready(protocol.fit_with(
                    student_model, x_b, y_b,
                    key=k_students[i][b], init=init)))
        student = fits[0]
        hyper = fits[0].hyper if students == 1 else combine([f.hyper for f in fits])
        hyper, prev = jax.block_until_ready(hyper), size
        staged.append(Stage(size, student_model.capacity(size), hyper))
    t_student = time.perf_counter()
    hyper_teacher = jax.block_until_ready(transfer(hyper, law, prev, n))
    t_transfer = time.perf_counter()
    if group_pass:
        # (a pass runs only where 2 n_group <= n, and n_group >= B n_s: the
        # first stage drew disjoint blocks, and these rows with them)
        x_g, y_g = head["rows"]
        with progress_lines.phase(f"group pass on {n_group} rows", on=bool(progress)):
            grouped = jax.block_until_ready(protocol.fit_with(model, x_g, y_g, key=k_teacher,
                                                              hyper=transfer(hyper, law, prev, n_group),
                                                              **pass_options))
        hyper_teacher = jax.block_until_ready(transfer(grouped.hyper, law, n_group, n))
    t_groups = time.perf_counter()
    start = (student if students == 1 else tuple(fits)) if warm_start else None
    teacher, teacher_s = None, 0.0     # teacher_s: seconds of the reselect pass's teacher fits
    if reselect_pass:
        # (rows as the group pass's: the first stage drew disjoint blocks, and these rows with them)
        x_head, y_head = head["rows"]
        if compiling is not None:
            compiling.join()
        for round_ in range(RESELECT_ROUNDS):
            rows = slice(round_ * n_group, (round_ + 1) * n_group)
            x_g, y_g = x_head[rows], y_head[rows]
            t_fit = time.perf_counter()
            with progress_lines.phase(f"teacher on {n} rows at the {'re-selected' if round_ else 'transferred'} "
                                      "values", on=bool(progress)):
                teacher = jax.block_until_ready(protocol.fit_with(
                    teacher_model, x, y, key=k_teacher, hyper=hyper_teacher, start=start, **teacher_options))
            teacher_s += time.perf_counter() - t_fit
            with progress_lines.phase(f"selection on {n_group} of its rows", on=bool(progress)):
                chosen = jax.block_until_ready(model.reselect(x_g, y_g, start=teacher, key=k_teacher,
                                                              init=transfer(hyper_teacher, law, n, n_group)))
                chosen = jax.block_until_ready(transfer(chosen, law, n_group, n))
                # the teacher's own score on all its rows, at its working model, decides
                scores = [float(teacher_model.score_at(x, y, h, key=k_teacher, start=teacher))
                          for h in (hyper_teacher, chosen)]
            if not scores[1] < scores[0]:
                break
            hyper_teacher, start, teacher = chosen, teacher, None
    t_reselect = time.perf_counter()
    if refine:
        scale_options = {k: v for k, v in dict(mesh=mesh, progress=progress).items() if v is not None and v is not False}
        hyper_teacher = jax.block_until_ready(teacher_model.refine(x, y, hyper_teacher, key=k_teacher, steps=refine,
                                                           **scale_options))
    t_refine = time.perf_counter()
    if compiling is not None:
        compiling.join()
    if teacher is None:
        with progress_lines.phase(f"teacher on {n} rows at the " + ("re-selected" if reselect_pass else "transferred")
                                  + " values", on=bool(progress)):
            teacher = jax.block_until_ready(protocol.fit_with(
                teacher_model, x if src is None else src, y, key=k_teacher, hyper=hyper_teacher, start=start,
                **teacher_options))
    t_end = time.perf_counter()
    timings = dict(student=t_student - t_start, transfer=t_transfer - t_student, groups=t_groups - t_transfer,
                   reselect=t_reselect - t_groups - teacher_s, refine=t_refine - t_reselect,
                   teacher=t_end - t_refine + teacher_s, total=t_end - t_start)
    student, teacher = protocol.with_columns(student, columns), protocol.with_columns(teacher, columns)
    return CascadeFit(student, teacher, tuple(staged), law, timings)
