import gc
import os

import jax
import pytest

jax.config.update("jax_enable_x64", True)

# Every XLA:CPU executable keeps its machine code in memory mappings, and a
# process may hold at most vm.max_map_count of them (65530 by default). The
# whole suite compiles enough programs to pass that limit, and XLA then crashes
# with a segmentation fault inside compilation (seen at ~65,000 mappings).
# Between modules, when the process holds more than a third of the limit, the
# compiled programs are dropped; below that, modules keep sharing them.
_MAPS = "/proc/self/maps"


def _limit():
    try:
        with open("/proc/sys/vm/max_map_count") as fh:
            return int(fh.read())
    except (OSError, ValueError):
        return None


_MAX_MAPS = _limit()


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    yield
    if _MAX_MAPS is None or not os.path.exists(_MAPS):
        jax.clear_caches()   # cannot tell how close we are: always release
        return
    with open(_MAPS) as fh:
        held = sum(1 for _ in fh)
    if held > _MAX_MAPS // 3:
        jax.clear_caches()
        gc.collect()
