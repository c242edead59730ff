"""Forward distillation: a compact student learns from a large teacher.

- Hinton, Vinyals and Dean (2015): per example,
      (1 - alpha) CE(y, s) + alpha T^2 KL(p_t^T || p_s^T),
  p^T = softmax(logits / T); an ensemble teacher's p_t^T is the average of
  its members' softmax(logits_m / T).
- PACED (2026): each example weighted by w(p) = p^a (1 - p)^b, p the
  student's pass rate on it (the fraction of ``samples`` draws from its
  predictive distribution softmax(s) that equal the label); the loss is the
  normalized weighted mean sum w_i l_i / sum w_i (uniform when every weight is
  0). Weights carry no gradient.
- The two-stage schedule: forward KL(p_t || p_s) for the first ``switch``
  share of the steps, then reverse KL(p_s || p_t).
- Regression teachers (a fitted SS-ANOVA, a KDE's log density, a network):
  (1 - alpha) MSE(y, s) + alpha MSE(teacher(x), s), or alpha = 1 on
  unlabeled inputs.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from kcascade import checks, compilation, nets, protocol

_DIVERGENCES = ("forward", "reverse")
_SCHEDULES = ("forward", "reverse", "forward_then_reverse")


def ensemble_probs(member_logits, temperature: float = 1.0):
    """(M, n, k) member logits -> (n, k) averaged probabilities at temperature T."""
    member_logits = jnp.asarray(member_logits)
    if member_logits.ndim == 2:
        member_logits = member_logits[None]
    if member_logits.ndim != 3:
        raise ValueError(f"member_logits: expected shape (M, n, k) or (n, k), got {member_logits.shape}")
    _check_temperature(temperature)
    return jnp.mean(jax.nn.softmax(member_logits / temperature, axis=-1), axis=0)


def _check_temperature(temperature):
    if not (isinstance(temperature, (int, float, np.floating)) and temperature > 0):
        raise ValueError(f"temperature: expected a number > 0, got {temperature!r}")


def kd_terms(student_logits, labels, teacher_probs, *, temperature: float, alpha: float,
             divergence: str = "forward"):
    """(n,) per-example Hinton loss (1 - alpha) CE + alpha T^2 KL.

    Args:
      student_logits: (n, k); labels: (n,) integers in [0, k).
      teacher_probs: (n, k) the teacher's probabilities at ``temperature``.
      divergence: "forward" KL(p_t || p_s) or "reverse" KL(p_s || p_t).
    """
    if divergence not in _DIVERGENCES:
        raise ValueError(f"divergence: expected one of {_DIVERGENCES}, got {divergence!r}")
    log_s = jax.nn.log_softmax(student_logits, axis=-1)
    ce = -jnp.take_along_axis(log_s, labels[:, None], axis=-1)[:, 0]
    log_sT = jax.nn.log_softmax(student_logits / temperature, axis=-1)
    log_t = jnp.log(jnp.clip(teacher_probs, 1e-30, 1.0))
    if divergence == "forward":
        kl = jnp.sum(teacher_probs * (log_t - log_sT), axis=-1)
    else:
        kl = jnp.sum(jnp.exp(log_sT) * (log_sT - log_t), axis=-1)
    return (1.0 - alpha) * ce + alpha * temperature ** 2 * kl


def kd_loss(student_logits, labels, teacher_probs, *, temperature: float = 4.0, alpha: float = 0.9,
            divergence: str = "forward", weights=None):
    """Scalar Hinton KD loss: the mean of ``kd_terms``, or the normalized
    weighted mean sum w l / sum w with (n,) ``weights``."""
    terms = kd_terms(student_logits, labels, teacher_probs, temperature=temperature, alpha=alpha,
                     divergence=divergence)
    return weighted_mean(terms, weights)


def weighted_mean(terms, weights=None):
    """sum w l / sum w (weights without gradient); the plain mean when
    ``weights`` is None or sums to 0."""
    if weights is None:
        return jnp.mean(terms)
    w = jax.lax.stop_gradient(weights)
    total = jnp.sum(w)
    return jnp.where(total > 0, jnp.sum(w * terms) / jnp.where(total > 0, total, 1.0), jnp.mean(terms))


def pass_rate(key, student_logits, labels, samples: int = 8):
    """(n,) fraction of ``samples`` draws from softmax(student_logits) equal to the label."""
    if not (isinstance(samples, (int, np.integer)) and samples >= 1):
        raise ValueError(f"samples: expected an integer >= 1, got {samples!r}")
    draws = jax.random.categorical(key, student_logits, axis=-1, shape=(samples,) + labels.shape)
    return jnp.mean(draws == labels[None, :], axis=0)


def paced_weights(p, a: float = 1.0, b: float = 1.0):
    """w(p) = p^a (1 - p)^b: small for mastered (p ~ 1) and hopeless (p ~ 0) examples."""
    _check_paced(a, b)
    return p ** a * (1.0 - p) ** b


def _check_paced(a, b):
    if not (a >= 0 and b >= 0):
        raise ValueError(f"paced: expected exponents a, b >= 0, got {(a, b)!r}")


def train(net, params, x, labels, *, key, steps: int, lr: float = 1e-2, batch: int = 128, weight_decay: float = 0.0,
          teacher_probs=None, temperature: float = 4.0, alpha: float = 0.9, paced=None, samples: int = 8,
          schedule: str = "forward", switch: float = 0.5, eval_data=None, eval_every: int = 0) -> nets.Trained:
    """Train a classifier ``net`` (logits out) by hard labels or distillation.

    Args:
      net, params: a ``nets.MLP`` with ``out`` = classes, and its parameters.
      x: (n, d); labels: (n,) integers in [0, k).
      key: minibatches and the pass-rate draws.
      teacher_probs: (n, k) teacher probabilities at ``temperature`` (e.g.
        ``ensemble_probs``); None trains on the hard labels alone.
      paced: None, or (a, b) exponents of the PACED weights.
      schedule: "forward", "reverse" or "forward_then_reverse" (forward KL
        for the first ``switch`` share of the steps).
      eval_data: (x_eval, labels_eval); ``curve`` then holds held-out accuracy.
    Returns:
      ``nets.Trained``.
    """
    n, _ = checks.float_matrix(x, "x")
    labels = jnp.asarray(labels)
    if labels.shape != (n,) or not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(f"labels: expected ({n},) integers, got shape {labels.shape} dtype {labels.dtype}")
    k = net.out
    if checks.is_concrete(labels):
        lo, hi = int(np.min(np.asarray(labels))), int(np.max(np.asarray(labels)))
        if lo < 0 or hi >= k:
            raise ValueError(f"labels: expected values in [0, {k}) for a net with out = {k}, got range [{lo}, {hi}]")
    if schedule not in _SCHEDULES:
        raise ValueError(f"schedule: expected one of {_SCHEDULES}, got {schedule!r}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha: expected in [0, 1], got {alpha!r}")
    if not 0 <= switch <= 1:
        raise ValueError(f"switch: expected in [0, 1], got {switch!r}")
    _check_temperature(temperature)
    if teacher_probs is not None:
        teacher_probs = jnp.asarray(teacher_probs)
        if teacher_probs.shape != (n, k):
            raise ValueError(f"teacher_probs: expected shape ({n}, {k}), got {teacher_probs.shape}")
        if checks.is_concrete(teacher_probs):
            checks.finite(teacher_probs, "teacher_probs")
    if paced is not None:
        if len(paced) != 2:
            raise ValueError(f"paced: expected None or two exponents (a, b), got {paced!r}")
        _check_paced(*paced)
    cut = int(round(switch * steps)) if schedule == "forward_then_reverse" else (steps if schedule == "forward" else 0)
    cfg = (steps, batch, float(temperature), float(alpha), None if paced is None else tuple(float(v) for v in paced),
           samples, cut, eval_every)
    eval_data = None if eval_data is None else (jnp.asarray(eval_data[0]), jnp.asarray(eval_data[1]))
    return _classify_jit(net, cfg, params, jnp.asarray(x), labels, teacher_probs, key, lr, weight_decay, eval_data)


def _classify_impl(net, cfg, params, x, labels, teacher_probs, key, lr, weight_decay, eval_data):
    steps, batch, temperature, alpha, paced, samples, cut, eval_every = cfg
    k = net.out

    def batch_loss(p, idx, k_loss, t):
        logits = net.apply(p, x[idx])
        y = labels[idx]
        if teacher_probs is None:
            terms = kd_terms(logits, y, jax.nn.one_hot(y, k), temperature=1.0, alpha=0.0)
        else:
            fwd = kd_terms(logits, y, teacher_probs[idx], temperature=temperature, alpha=alpha, divergence="forward")
            if cut >= steps:
                terms = fwd
            else:
                rev = kd_terms(logits, y, teacher_probs[idx], temperature=temperature, alpha=alpha,
                               divergence="reverse")
                terms = jnp.where(t < cut, fwd, rev)
        weights = None
        if paced is not None:
            weights = paced_weights(pass_rate(k_loss, jax.lax.stop_gradient(logits), y, samples), *paced)
        return weighted_mean(terms, weights)

    evaluate_fn = None
    if eval_data is not None:
        xe, ye = eval_data
        evaluate_fn = lambda p: jnp.mean(jnp.argmax(net.apply(p, xe), -1) == ye)  # noqa: E731
    return nets.run_steps(nets.optimizer(net, params, lr, weight_decay), params, batch_loss, x.shape[0], key=key,
                          steps=steps, batch=batch, evaluate_fn=evaluate_fn, eval_every=eval_every)


_classify_jit = compilation.jit(_classify_impl, static_argnums=(0, 1))


def targets(teacher, x):
    """(m,) the values a regression student learns from a fitted teacher: a
    ``protocol.Fit``'s ``evaluate`` (predictions of SS-ANOVA and network fits,
    the log density of a KDE fit), or a callable's values."""
    if isinstance(teacher, protocol.Fit):
        return jnp.asarray(teacher.evaluate(x))
    if callable(teacher):
        return jnp.asarray(teacher(x))
    raise ValueError(f"teacher: expected a kcascade fit or a callable; got {type(teacher).__name__}")


def train_regression(net, params, x, teacher_values, *, key, steps: int, y=None, alpha: float = 1.0, lr: float = 1e-2,
                     batch: int = 128, weight_decay: float = 0.0, eval_data=None, eval_every: int = 0) -> nets.Trained:
    """Distill a regression teacher into ``net`` (out = 1):
    (1 - alpha) MSE(y, s) + alpha MSE(teacher_values, s).

    Args:
      x: (n, d) inputs (labelled or not); teacher_values: (n,), e.g. ``targets(fit, x)``.
      y: (n,) responses, needed when alpha < 1.
      eval_data: (x_eval, f_eval): ``curve`` holds the mean squared error to f_eval.
    """
    n, _ = checks.float_matrix(x, "x")
    checks.float_vector(teacher_values, "teacher_values", n, "n")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha: expected in [0, 1], got {alpha!r}")
    if alpha < 1:
        if y is None:
            raise ValueError("y: expected responses when alpha < 1 (the hard-label share), got None")
        checks.float_vector(y, "y", n, "n")
    x = jnp.asarray(x)
    tv = jnp.asarray(teacher_values, x.dtype)
    yy = tv if y is None else jnp.asarray(y, x.dtype)
    eval_data = None if eval_data is None else (jnp.asarray(eval_data[0], x.dtype), jnp.asarray(eval_data[1], x.dtype))
    return _regress_jit(net, (steps, batch, float(alpha), eval_every), params, x, tv, yy, key, lr, weight_decay,
                        eval_data)


def _regress_impl(net, cfg, params, x, tv, yy, key, lr, weight_decay, eval_data):
    steps, batch, alpha, eval_every = cfg

    def batch_loss(p, idx, k_loss, t):
        s = net.apply(p, x[idx])[:, 0]
        return (1.0 - alpha) * jnp.mean((s - yy[idx]) ** 2) + alpha * jnp.mean((s - tv[idx]) ** 2)

    evaluate_fn = None
    if eval_data is not None:
        xe, fe = eval_data
        evaluate_fn = lambda p: jnp.mean((net.apply(p, xe)[:, 0] - fe) ** 2)  # noqa: E731
    return nets.run_steps(nets.optimizer(net, params, lr, weight_decay), params, batch_loss, x.shape[0], key=key,
                          steps=steps, batch=batch, evaluate_fn=evaluate_fn, eval_every=eval_every)


_regress_jit = compilation.jit(_regress_impl, static_argnums=(0, 1))
