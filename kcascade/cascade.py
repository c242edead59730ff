"""Knowledge Cascade: a student selects, a law transfers, the teacher fits once.

DESIGN.md §2. For data of n rows: draw a student subsample of
n_s = ceil(100 n^{1/4}) rows, select every smoothing parameter on it, carry
the scale parameter to n rows with a scaling law (theta copied), and fit the
teacher once on all rows at the transferred values.
"""
from __future__ import annotations

import dataclasses
import inspect
import time
from typing import Any

import jax
import numpy as np

from kcascade import laws as laws_mod
from kcascade.laws import fit_model as _fit, student_size


def transfer(hyper, law: laws_mod.Law, n_from, n_to):
    """Carry ``hyper`` selected on ``n_from`` rows to ``n_to`` rows by ``law``.

    The scale parameter (log lambda, or log bandwidths) moves by
    ``law.log_factor(n_from, n_to)``; relative weights are copied.
    """
    if not isinstance(law, laws_mod.Law):
        raise ValueError(f"law: expected a kcascade.laws.Law, got {type(law).__name__}")
    return hyper.transferred(law.log_factor(n_from, n_to))


@dataclasses.dataclass(frozen=True)
class CascadeFit:
    """The result of ``cascade``.

    Attributes:
      student: the fit on the (last-stage) student subsample.
      teacher: the fit on all rows at ``hyper_teacher``.
      hyper_student, hyper_teacher: selected and transferred hyperparameters.
      n, n_student: rows of the teacher and of the (last) student.
      stages: ((n_i, hyper_i), ...) selected at each stage.
      law: the scaling law used.
      timings: wall seconds per phase: "student", "transfer", "refine", "teacher", "total".
    """

    student: Any
    teacher: Any
    hyper_student: Any
    hyper_teacher: Any
    n: int
    n_student: int
    stages: tuple
    law: laws_mod.Law
    timings: dict


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


def cascade(model, x, y=None, *, key, n_student=None, law=None, stages=None, refine: int = 0,
            teacher_lambda: str = "law", warm_start: bool = False, mesh=None,
            progress: bool = False) -> CascadeFit:
    """Select on a student subsample, transfer, fit the teacher once.

    Args:
      model: an estimator configuration (``kc.SSANOVA``, ...).
      x: (n, d) covariates; y: (n,) responses (None for density estimators).
      key: a ``jax.random`` key (subsample, basis points).
      n_student: student rows; default ``student_size(n)``.
      law: a ``laws.Law``; default the model's own (``model.default_law(d)``).
      stages: (n_1, n_2, ...) increasing student sizes: each stage's selection
        starts from the previous stage's values transferred to its size.
      refine: gradient steps of the teacher's own score taken from the
        transferred values (0 = none: the teacher is fitted once).
      teacher_lambda: "law" (the reference rule: lambda as transferred) or
        "select": the teacher keeps the transferred thetas and picks lambda by
        its own score from the statistics of its single pass (models with a
        ``lambda_search`` fit option).
      warm_start: give the student's fit to the teacher as its starting point
        (``fit(..., start=student)``: a network grown from the student by
        ``nets.widen``); models without a ``start`` option reject it.
      mesh: a ``jax.sharding.Mesh`` for the teacher's pass over all rows (and
        ``refine``); the student runs on one device.
      progress: print progress lines during the teacher's pass.
    Returns:
      A ``CascadeFit``.
    """
    n = int(np.shape(x)[0])
    sizes = _sizes(n, n_student, stages)
    if not (isinstance(refine, (int, np.integer)) and refine >= 0):
        raise ValueError(f"refine: expected an integer >= 0, got {refine!r}")
    if teacher_lambda not in ("law", "select"):
        raise ValueError(f"teacher_lambda: expected 'law' or 'select', got {teacher_lambda!r}")
    if warm_start and "start" not in inspect.signature(model.fit).parameters:
        raise ValueError(f"warm_start: {type(model).__name__}.fit takes no start= (it has no iterative fit to warm-start)")
    law = model.default_law(np.shape(x)[1]) if law is None else law
    if not isinstance(law, laws_mod.Law):
        raise ValueError(f"law: expected a kcascade.laws.Law, got {type(law).__name__}")
    scale_options = {k: v for k, v in dict(mesh=mesh, progress=progress).items() if v}
    k_sub, k_student, k_teacher = jax.random.split(key, 3)
    order = jax.random.permutation(k_sub, n)
    t_start = time.perf_counter()
    staged, hyper, prev, student = [], None, None, None
    for i, size in enumerate(sizes):
        idx = order[:size]
        init = None if hyper is None else transfer(hyper, law, prev, size)
        student = _fit(model, x[idx], None if y is None else y[idx],
                       key=jax.random.fold_in(k_student, i), init=init)
        hyper, prev = jax.block_until_ready(student.hyper), size
        staged.append((size, hyper))
    t_student = time.perf_counter()
    hyper_teacher = jax.block_until_ready(transfer(hyper, law, prev, n))
    t_transfer = time.perf_counter()
    if refine:
        hyper_teacher = jax.block_until_ready(model.refine(x, y, hyper_teacher, key=k_teacher, steps=refine,
                                                           **scale_options))
    t_refine = time.perf_counter()
    extra = dict(lambda_search=True) if teacher_lambda == "select" else {}
    extra.update(scale_options)
    if warm_start:
        extra["start"] = student
    teacher = jax.block_until_ready(_fit(model, x, y, key=k_teacher, hyper=hyper_teacher, **extra))
    hyper_teacher = teacher.hyper if teacher_lambda == "select" else hyper_teacher
    t_end = time.perf_counter()
    timings = dict(student=t_student - t_start, transfer=t_transfer - t_student,
                   refine=t_refine - t_transfer, teacher=t_end - t_refine, total=t_end - t_start)
    return CascadeFit(student, teacher, hyper, hyper_teacher, n, prev, tuple(staged), law, timings)
