"""An independent dense numpy implementation of the SS-ANOVA problem, written
from DESIGN.md §1 without using kcascade's kernels, terms or solver."""
import itertools

import numpy as np


def k1(u):
    return u - 0.5


def k2(u):
    return (k1(u) ** 2 - 1 / 12) / 2


def k4(u):
    a = k1(u)
    return (a ** 4 - a ** 2 / 2 + 7 / 240) / 24


def marginal_pieces(kind, u, z, levels=None):
    """(null functions at u (n, j), at z (q, j), penalized kernel (n, q))."""
    du = np.abs(u[:, None] - z[None, :])
    if kind == "cubic":
        return k1(u)[:, None], k1(z)[:, None], k2(u)[:, None] * k2(z)[None, :] - k4(du)
    if kind == "linear":
        return np.zeros((len(u), 0)), np.zeros((len(z), 0)), k1(u)[:, None] * k1(z)[None, :] + k2(du)
    if kind == "periodic":
        return np.zeros((len(u), 0)), np.zeros((len(z), 0)), -k4(du)
    if kind == "nominal":
        return np.zeros((len(u), 0)), np.zeros((len(z), 0)), (u[:, None] == z[None, :]) - 1.0 / levels
    raise ValueError(kind)


def design(kinds, order, u, z, levels):
    """S (n, m), list of R_beta (n, q) over terms up to ``order``."""
    d = len(kinds)
    pieces = [marginal_pieces(kinds[v], u[:, v], z[:, v], levels[v]) for v in range(d)]
    s_cols, r_blocks = [np.ones(len(u))], []
    for size in range(1, order + 1):
        for sub in itertools.combinations(range(d), size):
            opts = [[("n", j) for j in range(pieces[v][0].shape[1])] + [("r", None)] for v in sub]
            for choice in itertools.product(*opts):
                if all(c[0] == "n" for c in choice):
                    col = np.ones(len(u))
                    for v, (_, j) in zip(sub, choice):
                        col = col * pieces[v][0][:, j]
                    s_cols.append(col)
                else:
                    blk = np.ones((len(u), len(z)))
                    for v, (kind, j) in zip(sub, choice):
                        blk = blk * (pieces[v][2] if kind == "r" else np.outer(pieces[v][0][:, j], pieces[v][1][:, j]))
                    r_blocks.append(blk)
    return np.column_stack(s_cols), r_blocks


def _penalized_system(kinds, order, u, z, levels, log_theta):
    """Z = [S, R_theta] (n, m+q) and L' (q, m+q) with L L' = blockdiag(0, Q_theta)."""
    theta = np.exp(log_theta)
    s, rb = design(kinds, order, u, z, levels)
    r = sum(t * b for t, b in zip(theta, rb))
    _, qb = design(kinds, order, z, z, levels)
    qm = sum(t * b for t, b in zip(theta, qb))
    m, q = s.shape[1], len(z)
    w, v = np.linalg.eigh(0.5 * (qm + qm.T))
    lt = np.zeros((q, m + q))
    lt[:, m:] = (v * np.sqrt(np.clip(w, 0, None))).T
    return np.column_stack([s, r]), lt, m


def dense_fit(kinds, order, u, y, z, levels, log_lambda, log_theta, weights=None):
    """Solve (Z'WZ + n lambda P) b = Z'Wy by least squares on [W^1/2 Z; sqrt(n lambda) L'],
    n the number of rows of positive weight (W = I without ``weights``).

    Returns a function mapping scaled rows (k, d) to (mean (k,), posterior
    variance factor (k,) so that var = sigma2 * factor), the hat trace and b.
    """
    wts = np.ones(len(y)) if weights is None else np.asarray(weights, float)
    n = int(np.sum(wts > 0))
    theta = np.exp(log_theta)
    zz, lt, m = _penalized_system(kinds, order, u, z, levels, log_theta)
    q = len(z)
    lam = np.exp(log_lambda)
    root = np.sqrt(wts)
    big = np.vstack([root[:, None] * zz, np.sqrt(n * lam) * lt])
    b, *_ = np.linalg.lstsq(big, np.concatenate([root * y, np.zeros(q)]), rcond=None)
    ztz = zz.T @ (wts[:, None] * zz)
    h = ztz + n * lam * lt.T @ lt
    hinv = np.linalg.pinv(h, rcond=1e-13, hermitian=True)
    trace = np.trace(hinv @ ztz)

    def predict(u_new):
        s2, rb2 = design(kinds, order, u_new, z, levels)
        z2 = np.column_stack([s2, sum(t * bb for t, bb in zip(theta, rb2))])
        return z2 @ b, np.einsum("ij,jk,ik->i", z2, hinv, z2)

    return predict, trace, b


def dense_scores(kinds, order, u, y, z, levels, log_lambda, log_theta, alpha):
    """GCV, GML and UBR from the n x n hat matrix A = Z (Z'Z + n lambda P)^+ Z'.

    GCV = (RSS/n) / (1 - alpha tr A / n)^2 (Craven & Wahba 1979; gss's alpha).
    GML (Wahba 1985) = y'(I - A)y / det+(I - A)^(1/(n - m0)), with det+ the
    product of the n - m0 non-zero eigenvalues of I - A; returned on kcascade's
    scale: log GML - log(n - m0). UBR (Mallows' C_L with variance 1, gss's
    method "u") = RSS/n + 2 alpha tr A / n.
    """
    n = len(y)
    zz, lt, _ = _penalized_system(kinds, order, u, z, levels, log_theta)
    h = zz.T @ zz + n * np.exp(log_lambda) * lt.T @ lt
    hat = zz @ np.linalg.pinv(h, rcond=1e-13, hermitian=True) @ zz.T
    resid = y - hat @ y
    gcv = (resid @ resid / n) / (1 - alpha * np.trace(hat) / n) ** 2
    eig = np.linalg.eigvalsh(np.eye(n) - 0.5 * (hat + hat.T))
    nonzero = eig[eig > 1e-8]
    dof = len(nonzero)
    gml = np.log(y @ (y - hat @ y)) - np.log(dof) - np.sum(np.log(nonzero)) / dof
    ubr = resid @ resid / n + 2 * alpha * np.trace(hat) / n
    return gcv, gml, ubr
