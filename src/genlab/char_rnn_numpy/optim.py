"""Hand-written optimizers and gradient clipping for NumPy parameter dicts.

Every optimizer updates ``params`` (name -> array) in place from ``grads`` (same names and
shapes) with ``step(params, grads)``; its state (moments) is keyed by parameter name.
The update rules follow the papers and match ``torch.optim`` with the same hyper-parameters:

* SGD with optional (heavy-ball) momentum: ``v = m v + g; p -= lr v``.
* RMSProp (Tieleman & Hinton 2012, lecture 6e): ``s = a s + (1 - a) g^2;
  p -= lr g / (sqrt(s) + eps)``.
* Adam (Kingma & Ba 2015, Algorithm 1): ``m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
  p -= lr m_hat / (sqrt(v_hat) + eps)`` with the bias corrections ``m_hat = m / (1 - b1^t)``,
  ``v_hat = v / (1 - b2^t)``.
* Adagrad (Duchi et al. 2011; min-char-rnn's choice): ``s += g^2; p -= lr g / (sqrt(s) + eps)``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Params = dict[str, np.ndarray]
OptimizerName = Literal["sgd", "rmsprop", "adam", "adagrad"]


def clip_gradients(grads: Params, clip: float) -> float:
    """Clip every gradient element to ``[-clip, clip]`` in place (min-char-rnn's rule);
    return the fraction of elements that were clipped."""
    if clip <= 0:
        raise ValueError(f"clip must be > 0, got {clip}")
    clipped = total = 0
    for g in grads.values():
        clipped += int(np.count_nonzero(np.abs(g) > clip))
        total += g.size
        np.clip(g, -clip, clip, out=g)
    return clipped / max(total, 1)


class Optimizer:
    """Base class: `lr` and a per-parameter state dict."""

    def __init__(self, lr: float):
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        self.lr = float(lr)
        self.state: dict[str, dict[str, np.ndarray]] = {}
        self.t = 0  # number of steps taken

    def _slot(self, name: str, key: str, like: np.ndarray) -> np.ndarray:
        slots = self.state.setdefault(name, {})
        if key not in slots:
            slots[key] = np.zeros_like(like)
        return slots[key]

    def state_dict(self) -> dict[str, np.ndarray]:
        """The step count and every slot as flat ``"<param>/<slot>"`` arrays (for an .npz)."""
        out = {f"{name}/{key}": v for name, slots in self.state.items() for key, v in slots.items()}
        return {"t": np.array(self.t), **out}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.t = int(state["t"])
        self.state = {}
        for flat, v in state.items():
            if flat != "t":
                name, key = flat.rsplit("/", 1)
                self.state.setdefault(name, {})[key] = np.array(v)

    def step(self, params: Params, grads: Params) -> None:
        self.t += 1
        for name, p in params.items():
            self._update(name, p, grads[name])

    def _update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:  # pragma: no cover
        raise NotImplementedError


class SGD(Optimizer):
    def __init__(self, lr: float, momentum: float = 0.0):
        super().__init__(lr)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum = float(momentum)

    def _update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        if self.momentum:
            v = self._slot(name, "v", p)
            v *= self.momentum
            v += g
            g = v
        p -= self.lr * g


class RMSProp(Optimizer):
    def __init__(self, lr: float, alpha: float = 0.99, eps: float = 1e-8):
        super().__init__(lr)
        self.alpha, self.eps = float(alpha), float(eps)

    def _update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        s = self._slot(name, "square_avg", p)
        s *= self.alpha
        s += (1.0 - self.alpha) * g * g
        p -= self.lr * g / (np.sqrt(s) + self.eps)


class Adam(Optimizer):
    def __init__(self, lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        super().__init__(lr)
        for n, b in (("beta1", beta1), ("beta2", beta2)):
            if not 0 <= b < 1:
                raise ValueError(f"{n} must be in [0, 1), got {b}")
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)

    def _update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        m = self._slot(name, "m", p)
        v = self._slot(name, "v", p)
        m *= self.beta1
        m += (1.0 - self.beta1) * g
        v *= self.beta2
        v += (1.0 - self.beta2) * g * g
        m_hat = m / (1.0 - self.beta1 ** self.t)
        v_hat = v / (1.0 - self.beta2 ** self.t)
        p -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


class Adagrad(Optimizer):
    def __init__(self, lr: float, eps: float = 1e-8):
        super().__init__(lr)
        self.eps = float(eps)

    def _update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        s = self._slot(name, "sum", p)
        s += g * g
        p -= self.lr * g / (np.sqrt(s) + self.eps)


OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "rmsprop": RMSProp, "adam": Adam, "adagrad": Adagrad}


def make_optimizer(name: str, lr: float, momentum: float = 0.0) -> Optimizer:
    """An optimizer by name (`sgd`, `rmsprop`, `adam`, `adagrad`); `momentum` is SGD's."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r} (allowed: {', '.join(OPTIMIZERS)})")
    return SGD(lr, momentum) if name == "sgd" else OPTIMIZERS[name](lr)
