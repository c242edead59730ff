import gc

import jax
import pytest

jax.config.update("jax_enable_x64", True)


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop compiled programs after each test module.

    Every XLA:CPU executable keeps its machine code in memory mappings, and a
    process may hold at most vm.max_map_count (65530 by default) of them; the
    whole suite compiles enough programs to pass that limit, and XLA then
    crashes (a segmentation fault inside compilation, seen at ~65,000 maps).
    Test modules share no compiled programs worth keeping, so each starts clean.
    """
    yield
    jax.clear_caches()
    gc.collect()
