"""The anti-diagonal storage: packing round-trips and reads every anti-diagonal."""

import jax.numpy as jnp
import numpy as np
import pytest

from sdtw._wavefront import Diagonals


@pytest.mark.parametrize("shape", [(1, 2), (3, 2), (2, 7), (5, 5), (9, 4), (4, 9)])
def test_pack_reads_anti_diagonals_and_round_trips(shape):
    n, m = shape
    x = np.arange(n * m, dtype=np.float32).reshape(shape)
    layout = Diagonals(n, m)
    packed = layout.pack(jnp.asarray(x))
    np.testing.assert_array_equal(layout.unpack(packed), x)
    for k in range(n + m - 1):
        expected = [x[i, k - i] if 0 <= k - i < m else -1 for i in range(n)]
        np.testing.assert_array_equal(layout.read(packed, jnp.asarray(k), -1), expected)
    assert packed.size < n * m + (n + m) * (m - 1)  # about N * M values


def test_write_touches_only_its_own_cells():
    layout = Diagonals(4, 5)
    packed = layout.full(0.0, jnp.float32)
    for k in range(8):
        packed = layout.write(packed, jnp.asarray(k), jnp.full((4,), float(k + 1)))
    rows, cols = np.indices((4, 5))
    np.testing.assert_array_equal(layout.unpack(packed), rows + cols + 1)
