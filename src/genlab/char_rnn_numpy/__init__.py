"""A character-level vanilla RNN written from scratch in NumPy (no torch anywhere here).

* :mod:`.model`: :class:`CharRNN` (forward, hand-written truncated BPTT, one-character
  `step` for sampling, `.npz` save) and :func:`load_model`.
* :mod:`.optim`: SGD, RMSProp, Adam, Adagrad and element-wise gradient clipping.
* :mod:`.reference`: min-char-rnn's one-sequence-at-a-time loop (benchmark baseline, test oracle).
* :mod:`.train`: batched streams, the training loop, the optimizer comparison, the stage's run.
"""

from genlab.char_rnn_numpy.model import CharRNN, RNNConfig, load_model
from genlab.char_rnn_numpy.optim import SGD, Adagrad, Adam, RMSProp, clip_gradients, make_optimizer

__all__ = ["CharRNN", "RNNConfig", "load_model", "SGD", "RMSProp", "Adam", "Adagrad", "clip_gradients",
           "make_optimizer"]
