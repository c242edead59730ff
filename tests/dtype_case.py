"""Fits every estimator on float32 and float64 inputs; run by test_dtypes.py
in a fresh process with JAX_ENABLE_X64 set to 0 or 1. Prints one line per
case: estimator, input dtype, computed dtype, finite."""
import os
import warnings

import jax
import numpy as np

jax.config.update("jax_enable_x64", os.environ["JAX_ENABLE_X64"] == "1")
import kcascade as kc  # noqa: E402
from kcascade import nets  # noqa: E402

warnings.simplefilter("ignore")
x64, y64, _ = (np.asarray(a) for a in kc.datasets.sine_interaction(jax.random.key(0), 300))
key = jax.random.key(1)
for dt in (np.float32, np.float64):
    x, y = x64.astype(dt), y64.astype(dt)
    fit = kc.SSANOVA(order=1).fit(x, y, key=key)
    p = np.asarray(fit.predict(x[:5]))
    print("ssanova", np.dtype(dt).name, p.dtype.name, bool(np.all(np.isfinite(p))))
    kde = kc.KDE().fit(x)
    ld = np.asarray(kde.log_density(x[:5]))
    print("kde", np.dtype(dt).name, ld.dtype.name, bool(np.all(np.isfinite(ld))))
    net = nets.NetRegressor(width=8, select_width=8, epochs=1, lr_grid=(1e-2,), wd_grid=(1e-4,)).fit(x, y, key=key)
    pn = np.asarray(net.predict(x[:5]))
    print("net", np.dtype(dt).name, pn.dtype.name, bool(np.all(np.isfinite(pn))))
