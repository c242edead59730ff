"""One process of a multi-process fit on loopback (run by test_scale.py).

Usage: python distributed_worker.py PROCESS_ID NUM_PROCESSES PORT OUT.npz ROWS
Every process reads its own file of the Parquet dataset ROWS (part-PID.parquet:
a contiguous block of the rows in several row groups) with kc.ParquetSource;
the fit runs over a mesh spanning all processes' devices (CPU collectives
through gloo).
"""
import sys

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_cpu_collectives_implementation", "gloo")

pid, nproc, port, out, folder = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=nproc, process_id=pid)

import numpy as np  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

import kcascade as kc  # noqa: E402
from distributed_case import case  # noqa: E402

x, y, hyper, model, key, x_new = case()
src = kc.ParquetSource(f"{folder}/part-{pid}.parquet", x=["x0", "x1", "x2"], y="y", chunk_rows=100)
x_local, y_local = (np.concatenate(parts) for parts in zip(*src.chunks(100)))   # this process's row groups
mesh = jax.make_mesh((jax.device_count(),), ("data",))
sharding = NamedSharding(mesh, P("data"))
xg = jax.make_array_from_process_local_data(sharding, x_local, x.shape)
yg = jax.make_array_from_process_local_data(sharding, y_local, y.shape)
fixed = model.fit(xg, yg, key=key, hyper=hyper, mesh=mesh)
selected = model.fit(xg, yg, key=key, mesh=mesh)
if pid == 0:
    np.savez(out, fixed=np.asarray(fixed.predict(x_new)), selected=np.asarray(selected.predict(x_new)),
             score=np.asarray(selected.score))
jax.distributed.shutdown()
