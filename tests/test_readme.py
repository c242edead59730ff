"""The README's API tour is one script: every ```python block between
"## API tour" and "## Conventions" (except those fenced ```python not-run,
which need several hosts) runs top to bottom, in order, in a fresh process."""
import os
import subprocess
import sys

import pytest

README = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")


def tour_script() -> str:
    text = open(README).read()
    text = text[text.index("## API tour"):text.index("## Conventions")]
    blocks, pos = [], 0
    while True:
        start = text.find("```python", pos)
        if start < 0:
            break
        line_end = text.index("\n", start)
        end = text.index("```", line_end)
        if text[start:line_end].strip() == "```python":
            blocks.append(text[line_end + 1:end])
        pos = end + 3
    return "\n".join(blocks)


def test_tour_has_the_blocks():
    script = tour_script()
    assert script.count("import jax, kcascade as kc") == 1 and "jax.distributed.initialize" not in script
    compile(script, "README tour", "exec")


@pytest.mark.slow
def test_readme_tour_runs_top_to_bottom(tmp_path):
    path = tmp_path / "tour.py"
    path.write_text(tour_script())
    proc = subprocess.run([sys.executable, str(path)], cwd=tmp_path, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-4000:]
