"""Run a notebook top to bottom in this process and store its outputs (text
and figures as small PNGs) in the file, so that the committed notebooks show
what they print and draw. No Jupyter needed.

    python notebooks/execute.py notebooks/cascade.ipynb [more.ipynb ...]

Each code cell runs in one shared namespace; printed text becomes a stream
output (stdout, and stderr with kcascade's progress lines, which are also
shown on this terminal as they come), every open matplotlib figure becomes a
PNG (72 dpi) and is closed.
"""
from __future__ import annotations

import base64
import contextlib
import io
import json
import sys
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DPI = 72


class _Tee(io.StringIO):
    """Keeps what is written and passes it on to ``stream``."""

    def __init__(self, stream):
        super().__init__()
        self.stream = stream

    def write(self, text):
        self.stream.write(text)
        return super().write(text)


def run(path: str) -> float:
    nb = json.load(open(path))
    namespace = {"__name__": "__notebook__"}
    t0 = time.perf_counter()
    count = 0
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        count += 1
        out, err = io.StringIO(), _Tee(sys.stderr)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            exec(compile("".join(cell["source"]), f"{path}[cell {count}]", "exec"), namespace)
        outputs = []
        for name, buf in (("stderr", err), ("stdout", out)):
            if buf.getvalue():
                outputs.append(dict(output_type="stream", name=name, text=buf.getvalue().splitlines(keepends=True)))
        for num in plt.get_fignums():
            buf = io.BytesIO()
            plt.figure(num).savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
            outputs.append(dict(output_type="display_data", metadata={},
                                data={"image/png": base64.b64encode(buf.getvalue()).decode("ascii"),
                                      "text/plain": ["<Figure>"]}))
        plt.close("all")
        cell["outputs"], cell["execution_count"] = outputs, count
    with open(path, "w") as fh:
        fh.write(json.dumps(nb, indent=1) + "\n")
    return time.perf_counter() - t0


if __name__ == "__main__":
    for p in sys.argv[1:]:
        print(f"{p}: {run(p):.0f} s")
