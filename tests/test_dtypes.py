"""float32 and float64 inputs under both x64 settings, for every estimator:
each fits and predicts finite values, in float64 only where x64 is on and
the data are float64 (networks keep float32 parameters)."""
import os
import subprocess
import sys

import pytest

CASE = os.path.join(os.path.dirname(__file__), "dtype_case.py")


@pytest.mark.slow
@pytest.mark.parametrize("x64", ["0", "1"])
def test_every_estimator_under_both_x64_settings(x64):
    env = dict(os.environ, JAX_ENABLE_X64=x64)
    proc = subprocess.run([sys.executable, CASE], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line.split() for line in proc.stdout.splitlines() if line.split()[0] in ("ssanova", "kde", "net")]
    assert len(rows) == 6, proc.stdout
    for name, given, computed, finite in rows:
        assert finite == "True", (name, given, computed)
        if name != "net":
            expected = "float64" if (x64 == "1" and given == "float64") else "float32"
            assert computed == expected, (name, given, computed)
