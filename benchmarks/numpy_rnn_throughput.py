"""Training throughput of the NumPy char-RNN: vectorised batched BPTT vs min-char-rnn's loop.

Both train the same model (same parameter layout, hidden size, layers, sequence length,
optimizer, clipping) on the same corpus for the same wall time, in one process:

* loop: Karpathy's min-char-rnn, one sequence at a time (batch 1), a Python loop over time
  steps with one-hot vectors in the forward and the backward pass
  (`genlab.char_rnn_numpy.reference.loss_and_grads_loop`);
* batched: `CharRNN.loss_and_grads` over B parallel streams, one matrix product per time step
  for the recurrence and one for all B*T input/output projections.

    python benchmarks/numpy_rnn_throughput.py --seconds 10

prints chars/s of each and the ratio (the goal is >= 10x). BLAS is limited to --blas-threads
(default 1) for both, so the ratio measures vectorisation rather than thread count.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from genlab.char_rnn_numpy.model import CharRNN, RNNConfig
from genlab.char_rnn_numpy.optim import clip_gradients, make_optimizer
from genlab.char_rnn_numpy.reference import loss_and_grads_loop
from genlab.char_rnn_numpy.train import BatchStreams, blas_threads
from genlab.data.text import Vocab, fold_ascii, read_source


def corpus_ids(source: str, max_chars: int) -> tuple[np.ndarray, Vocab]:
    text = fold_ascii(read_source(source))[:max_chars]
    vocab = Vocab.from_text(text)
    return vocab.encode(text), vocab


def run_loop(model: CharRNN, ids: np.ndarray, args: argparse.Namespace) -> tuple[float, float]:
    """min-char-rnn's training loop; returns (chars/s, mean loss of the last 100 steps)."""
    opt = make_optimizer(args.optimizer, args.lr)
    T, p, n, losses = args.seq_length, 0, 0, []
    hprev = [np.zeros(model.cfg.hidden_size, dtype=model.dtype) for _ in range(model.cfg.num_layers)]
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < args.seconds:
        if p + T + 1 >= len(ids):
            p, hprev = 0, [np.zeros_like(h) for h in hprev]
        loss, grads, hprev = loss_and_grads_loop(model.params, ids[p : p + T], ids[p + 1 : p + T + 1], hprev)
        clip_gradients(grads, args.clip)
        opt.step(model.params, grads)
        p, n = p + T, n + T
        losses.append(loss)
    return n / (time.perf_counter() - t0), float(np.mean(losses[-100:]))


def run_batched(model: CharRNN, ids: np.ndarray, args: argparse.Namespace) -> tuple[float, float]:
    """The vectorised trainer's inner loop; returns (chars/s, mean loss of the last 100 steps)."""
    opt = make_optimizer(args.optimizer, args.lr)
    streams = BatchStreams(ids, args.batch_size, args.seq_length)
    h = model.zero_state(args.batch_size)
    n, losses = 0, []
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < args.seconds:
        x, y, wrapped = streams.next()
        if wrapped:
            h = model.zero_state(args.batch_size)
        loss, _, grads, h = model.loss_and_grads(x, y, h)
        clip_gradients(grads, args.clip)
        opt.step(model.params, grads)
        n += x.size
        losses.append(loss)
    return n / (time.perf_counter() - t0), float(np.mean(losses[-100:]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="wall time per variant (default 10)")
    ap.add_argument("--hidden", type=int, default=100, help="hidden size (min-char-rnn: 100)")
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--seq-length", type=int, default=25, help="BPTT length (min-char-rnn: 25)")
    ap.add_argument("--batch-size", type=int, default=32, help="streams of the batched trainer")
    ap.add_argument("--optimizer", default="adam", choices=["sgd", "rmsprop", "adam", "adagrad"])
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--clip", type=float, default=5.0)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--source", default="pydoc", help="text source (pydoc, path:<file>)")
    ap.add_argument("--max-chars", type=int, default=500_000)
    ap.add_argument("--blas-threads", type=int, default=1, help="BLAS threads for both variants (0: default)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    ids, vocab = corpus_ids(args.source, args.max_chars)
    cfg = RNNConfig(vocab.size, args.hidden, args.layers, args.dtype)
    print(f"corpus {args.source}: {len(ids):,} chars, vocab {vocab.size}; model {args.layers}x{args.hidden} tanh RNN, "
          f"seq {args.seq_length}, {args.optimizer} lr {args.lr:g}, {args.dtype}, "
          f"BLAS threads {args.blas_threads or 'default'}, {args.seconds:g} s each")
    with blas_threads(args.blas_threads or None):
        loop_cps, loop_loss = run_loop(CharRNN(cfg, rng=np.random.default_rng(args.seed)), ids, args)
        print(f"loop    (min-char-rnn, batch 1):       {loop_cps:>10,.0f} chars/s   loss {loop_loss:.3f}", flush=True)
        batch_cps, batch_loss = run_batched(CharRNN(cfg, rng=np.random.default_rng(args.seed)), ids, args)
        print(f"batched (vectorised, batch {args.batch_size:>3}):      {batch_cps:>10,.0f} chars/s   loss {batch_loss:.3f}")
    ratio = batch_cps / loop_cps
    print(f"speed-up: {ratio:.1f}x ({'meets' if ratio >= 10 else 'BELOW'} the 10x goal)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
