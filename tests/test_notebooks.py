"""The notebooks run top to bottom (small sizes). Slow: the two take ~90 s
on 2 cores, most of it compiling programs the other tests compile too. The
committed notebooks hold the outputs of a full-size run
(``python notebooks/execute.py notebooks/*.ipynb``)."""
import json
import os

import matplotlib
import pytest

matplotlib.use("Agg")
HERE = os.path.join(os.path.dirname(__file__), "..", "notebooks")


@pytest.mark.slow
@pytest.mark.parametrize("name,env", [("cascade.ipynb", {"KCASCADE_NB_N": "3000"}),
                                      ("distill.ipynb", {"KCASCADE_NB_SMALL": "1"})])
def test_notebook_runs(name, env, monkeypatch):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with open(os.path.join(HERE, name)) as fh:
        nb = json.load(fh)
    namespace = {"__name__": "__notebook__"}
    for i, cell in enumerate(c for c in nb["cells"] if c["cell_type"] == "code"):
        src = "".join(cell["source"])
        exec(compile(src, f"{name}[cell {i}]", "exec"), namespace)
    import matplotlib.pyplot as plt

    plt.close("all")
    if name == "cascade.ipynb":
        assert namespace["res"].teacher.n == 3000
    else:
        assert namespace["res"].teacher.net.width == 32 and namespace["gap"] < 1e-4
        assert set(namespace["acc"]) == {"hard", "kd", "kd + PACED", "kd fwd->rev"}
