"""Fits on one device and on a 4-device CPU mesh (run by test_scale.py with
XLA_FLAGS=--xla_force_host_platform_device_count=4). Prints one JSON line."""
import json

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402

import kcascade as kc  # noqa: E402
from distributed_case import case  # noqa: E402

x, y, hyper, model, key, x_new = case()
x, y = x[:997], y[:997]  # not a multiple of the 4 devices: padded rows must not count
mesh = jax.make_mesh((4,), ("data",))
out = {"devices": jax.device_count()}
for stats in ("gram", "qr"):
    m = kc.SSANOVA(order=model.order, chunk=model.chunk, statistics=stats)
    one = m.fit(x, y, key=key, hyper=hyper).predict(x_new)
    four = m.fit(x, y, key=key, hyper=hyper, mesh=mesh).predict(x_new)
    out[stats] = float(jnp.max(jnp.abs(one - four)) / jnp.max(jnp.abs(one)))
# binomial: every IRLS iteration is one weighted pass over the mesh
yb = (y > jnp.median(y)).astype(y.dtype)
binom = kc.SSANOVA(order=model.order, chunk=model.chunk, family="binomial")
one = binom.fit(x, yb, key=key, hyper=hyper).predict(x_new)
four = binom.fit(x, yb, key=key, hyper=hyper, mesh=mesh).predict(x_new)
out["binomial"] = float(jnp.max(jnp.abs(one - four)) / jnp.max(jnp.abs(one)))
# kernel ridge: the Gram pass (direct) and every CG iteration's pass over the mesh
for solver in ("direct", "cg"):
    krr = kc.KernelRidge(basis="nystrom", n_basis=40, solver=solver, chunk=64)
    one = krr.fit(x, y, key=key, lam=1e-4, lengthscale=0.5).predict(x_new)
    four = krr.fit(x, y, key=key, lam=1e-4, lengthscale=0.5, mesh=mesh).predict(x_new)
    out[f"krr_{solver}"] = float(jnp.max(jnp.abs(one - four)) / jnp.max(jnp.abs(one)))
sel_one, sel_four = model.fit(x, y, key=key), model.fit(x, y, key=key, mesh=mesh)
out["score"] = float(abs(sel_one.score - sel_four.score) / sel_one.score)
print(json.dumps(out))
