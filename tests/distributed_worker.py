"""One process of a multi-process fit on loopback (run by test_scale.py).

Usage: python distributed_worker.py PROCESS_ID NUM_PROCESSES PORT OUT.npz
Every process holds its own contiguous block of the rows; the fit runs over
a mesh spanning all processes' devices (CPU collectives through gloo).
"""
import sys

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_cpu_collectives_implementation", "gloo")

pid, nproc, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=nproc, process_id=pid)

import numpy as np  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

import kcascade as kc  # noqa: E402
from distributed_case import case  # noqa: E402

x, y, hyper, model, key, x_new = case()
n = x.shape[0]
rows = slice(pid * n // nproc, (pid + 1) * n // nproc)
mesh = jax.make_mesh((jax.device_count(),), ("data",))
sharding = NamedSharding(mesh, P("data"))
xg = jax.make_array_from_process_local_data(sharding, np.asarray(x)[rows], x.shape)
yg = jax.make_array_from_process_local_data(sharding, np.asarray(y)[rows], y.shape)
fixed = model.fit(xg, yg, key=key, hyper=hyper, mesh=mesh)
selected = model.fit(xg, yg, key=key, mesh=mesh)
if pid == 0:
    np.savez(out, fixed=np.asarray(fixed.predict(x_new)), selected=np.asarray(selected.predict(x_new)),
             score=np.asarray(selected.score))
jax.distributed.shutdown()
