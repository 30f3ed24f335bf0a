"""A uint8 dataset kept as uint8: an uncompressed .npz (numpy.savez, not savez_compressed) is
memory-mapped by the engine and scaled per batch by the declared scale/offset, never held as float32.

    python examples/uint8_npz.py && shears remote datasets upload --options '{"scale": 0.00392156862745098}' u8.npz
"""

import numpy as np

rng = np.random.default_rng(0)
x = rng.integers(0, 256, (1000, 32, 32, 3), dtype=np.uint8)
y = rng.integers(0, 10, 1000)
np.savez("u8.npz", x_train=x[:800], y_train=y[:800], x_val=x[800:], y_val=y[800:])
