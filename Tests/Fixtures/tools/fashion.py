"""Fashion-MNIST from Debian's dataset-fashion-mnist, for the fixture tools."""
import gzip

import numpy as np

root = "/usr/share/datasets/fashion-mnist"


def idx(name):
    """The gzipped IDX file `name` (without .gz) as a uint8 array of its declared shape."""
    with gzip.open(f"{root}/{name}.gz") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)
