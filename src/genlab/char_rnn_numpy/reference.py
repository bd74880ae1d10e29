"""The plain one-sequence-at-a-time loop (Karpathy's min-char-rnn, generalised to L layers).

Same model and parameter layout as :class:`genlab.char_rnn_numpy.model.CharRNN`, but batch 1
and written the way min-char-rnn is: a Python loop over time steps, one-hot input vectors,
vector-matrix products per step in the forward *and* the backward pass, gradients summed
per step. It is the baseline of `benchmarks/numpy_rnn_throughput.py` and an independent
cross-check of the vectorised BPTT in the tests (with the loss averaged instead of summed,
it must give the same gradients as the batched code for B = 1).
"""

from __future__ import annotations

import numpy as np

from genlab.char_rnn_numpy.model import Params, param_names


def loss_and_grads_loop(
    params: Params, inputs: np.ndarray, targets: np.ndarray, hprev: list[np.ndarray]
) -> tuple[float, Params, list[np.ndarray]]:
    """min-char-rnn's `lossFun` for one sequence: `inputs`, `targets` (T,) ids, `hprev` one (H,)
    state per layer. Returns the mean cross-entropy (nats/char), its gradients, and the last state."""
    L = sum(1 for k in params if k.startswith("Whh"))
    V = params["by"].shape[0]
    dt = params["by"].dtype
    T = len(inputs)
    xs, hs, ps = {}, {l: {-1: np.copy(hprev[l])} for l in range(L)}, {}
    loss = 0.0
    for t in range(T):  # forward pass, one time step at a time
        xs[t] = np.zeros(V, dtype=dt)
        xs[t][inputs[t]] = 1.0  # one-hot
        x = xs[t]
        for l in range(L):
            hs[l][t] = np.tanh(x @ params[f"Wxh{l}"] + hs[l][t - 1] @ params[f"Whh{l}"] + params[f"bh{l}"])
            x = hs[l][t]
        y = x @ params["Why"] + params["by"]
        e = np.exp(y - y.max())
        ps[t] = e / e.sum()
        loss += -np.log(ps[t][targets[t]])
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    dhnext = [np.zeros_like(hprev[l]) for l in range(L)]
    for t in reversed(range(T)):  # backward pass, one time step at a time
        dy = np.copy(ps[t])
        dy[targets[t]] -= 1.0
        dy /= T  # mean over the sequence (min-char-rnn sums; the mean matches the batched trainer)
        grads["Why"] += np.outer(hs[L - 1][t], dy)
        grads["by"] += dy
        dh = dy @ params["Why"].T
        for l in reversed(range(L)):
            dh = dh + dhnext[l]
            draw = (1.0 - hs[l][t] * hs[l][t]) * dh
            grads[f"bh{l}"] += draw
            below = xs[t] if l == 0 else hs[l - 1][t]
            grads[f"Wxh{l}"] += np.outer(below, draw)
            grads[f"Whh{l}"] += np.outer(hs[l][t - 1], draw)
            dhnext[l] = draw @ params[f"Whh{l}"].T
            if l > 0:
                dh = draw @ params[f"Wxh{l}"].T
    return float(loss / T), {k: grads[k] for k in param_names(L)}, [hs[l][T - 1] for l in range(L)]
