"""Thread counts for Numba and BLAS; the batch-parallel machinery lives in
``minicnn.engine.threads``, re-exported here because applications set the counts
through ``minicnn.threads.set_num_threads``."""

from minicnn.engine.threads import (
    blas_threads,
    get_num_threads,
    map_concurrently,
    parallel_parts,
    set_num_threads,
)

__all__ = ["blas_threads", "get_num_threads", "map_concurrently", "parallel_parts",
           "set_num_threads"]
