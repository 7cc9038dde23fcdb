"""The Adam update of one parameter array, in place, in the Numba tier. Its NumPy tier
is ``minicnn.optim.Adam``'s own textbook formulas, which make about ten passes over the
parameter with temporaries; the Numba tier makes one, reading p, g, m and v and writing
p, m and v once each.
"""

from __future__ import annotations

import numpy as np

from minicnn.kernels import dispatch
from minicnn.kernels._numba import parallel_njit, prange


@parallel_njit(nogil=True, cache=True)
def adam_update_numba(p, g, m, v, keep, l2, b1, c1, b2, c2, step, bias2, eps):
    """``optim.Adam``'s update in one parallel pass: p = p * keep (AdamW's decay),
    g + l2 * p (Adam's), m and v the moments' running means (c1 = 1 - b1, c2 = 1 - b2),
    p -= step * m / (sqrt(v / bias2) + eps). The scalars come in p's dtype, rounded as
    NumPy rounds them, so float32 results equal the NumPy passes' bit for bit."""
    fp, fg, fm, fv = p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1)
    n = fp.size
    block = 16384
    for b in prange((n + block - 1) // block):
        for i in range(b * block, min(n, (b + 1) * block)):
            gi = fg[i] + l2 * fp[i]
            mi = fm[i] * b1 + c1 * gi
            vi = fv[i] * b2 + c2 * (gi * gi)
            fm[i] = mi
            fv[i] = vi
            fp[i] = fp[i] * keep - step * mi / (np.sqrt(vi / bias2) + eps)


def adam_update(p, g, m, v, lr, b1, b2, eps, bias1, bias2, wd=0.0, decoupled=False,
                tier=None) -> bool:
    """One Adam (``decoupled``: AdamW) step of parameter p with gradient g and moments m,
    v, all in place, bias1 = 1 - b1**t, bias2 = 1 - b2**t, when the Numba tier runs and the
    arrays are alike and contiguous; False (nothing done) otherwise."""
    arrays = (p, g, m, v)
    if dispatch.resolve(tier) != "numba" or not all(
            a.flags.c_contiguous and a.dtype == p.dtype and a.shape == p.shape for a in arrays):
        return False
    s = p.dtype.type
    keep, l2 = (1 - lr * wd, 0.0) if decoupled else (1.0, wd)
    dispatch.run(adam_update_numba, p.nbytes, p, g, m, v, s(keep), s(l2), s(b1), s(1 - b1),
                 s(b2), s(1 - b2), s(lr / bias1), s(bias2), s(eps))
    return True
