"""The flat parameter vector: every Linear's W (row-major, (out, in)) and b, then BN's γ and β, in
PyTorch's order and shapes; :func:`layer_table` gives the offsets, :func:`unpack` the per-layer arrays.
"""
import numpy as np

# Columns of the layer table ``lay``.
FIN, FOUT, OW, OB, OG, OBETA = 0, 1, 2, 3, 4, 5


def layer_table(n_in, n_out, depth, width, bn):
    """Sizes and offsets of each Linear (and BN) in the flat parameter vector.

    Returns
    -------
    lay : ndarray of shape (depth + 1, 6), int64
        Per Linear l: fan_in, fan_out, offset of W (shape (fan_out, fan_in),
        row-major), of b, of γ and of β (−1 without BN, and for the output layer).
    size : int
        Length of the parameter vector.
    """
    lay = np.full((depth + 1, 6), -1, dtype=np.int64)
    off = 0
    for layer in range(depth + 1):
        fin = n_in if layer == 0 else width
        fout = n_out if layer == depth else width
        lay[layer, FIN], lay[layer, FOUT] = fin, fout
        lay[layer, OW] = off
        off += fin * fout
        lay[layer, OB] = off
        off += fout
        if bn and layer < depth:
            lay[layer, OG] = off
            off += fout
            lay[layer, OBETA] = off
            off += fout
    return lay, off


def unpack(theta, lay):
    """The parameters as a list of per-layer dicts ``{"W", "b", ("gamma", "beta")}`` (copies)."""
    out = []
    for layer in range(lay.shape[0]):
        fin, fout, ow, ob, og, obeta = (int(v) for v in lay[layer])
        entry = {"W": theta[ow:ow + fin * fout].reshape(fout, fin).copy(), "b": theta[ob:ob + fout].copy()}
        if og >= 0:
            entry["gamma"] = theta[og:og + fout].copy()
            entry["beta"] = theta[obeta:obeta + fout].copy()
        out.append(entry)
    return out
