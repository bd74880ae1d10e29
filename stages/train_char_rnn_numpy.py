"""Stage train_char_rnn_numpy: a vanilla char-RNN from scratch in NumPy (hand-written BPTT and
optimizers), the optimizer comparison, and text samples."""

from genlab.char_rnn_numpy.train import CharRNNNumpyParams, comparison_rows, plot_optimizer_comparison, run_char_rnn_numpy
from genlab.data.text import load_text_data
from genlab.params import load_params_or_exit
from genlab.runtime import save_figure, seed_everything, write_json, write_text, write_tsv
from genlab.tracking import data_fingerprint, log_stage

DATA, MODEL = "data/text", "models/char_rnn_numpy/model.npz"
PLOTS, REPORTS, METRICS = "plots/char_rnn_numpy", "reports/char_rnn_numpy", "metrics/char_rnn_numpy.json"

if __name__ == "__main__":
    common, cfg = load_params_or_exit("char_rnn_numpy", CharRNNNumpyParams)
    seed_everything(common.seed)
    try:
        train_ids, val_ids, vocab = load_text_data(DATA)
        out = run_char_rnn_numpy(train_ids, val_ids, vocab, cfg, common.seed)
    except (ValueError, FileNotFoundError, FloatingPointError) as exc:
        raise SystemExit(f"error: train_char_rnn_numpy: {exc}") from None
    out.model.save(MODEL, extra={"params": cfg.model_dump(mode="json"), "steps": out.result.steps,
                                 "metrics": out.metrics})
    write_json(METRICS, out.metrics)
    write_tsv(f"{PLOTS}/loss.tsv", out.result.history)
    write_tsv(f"{PLOTS}/val.tsv", out.result.val_history)
    write_tsv(f"{PLOTS}/optimizers.tsv", comparison_rows(out.comparison))
    write_text(f"{REPORTS}/generated.txt", out.generated + "\n")
    write_text(f"{REPORTS}/temperature_sweep.txt", out.temperature_sweep)
    figure = save_figure(plot_optimizer_comparison(out.comparison, cfg.compare_lr), f"{REPORTS}/optimizers.png")
    log_stage(
        "train_char_rnn_numpy", common, cfg, metrics=out.metrics,
        history={"loss": out.result.history, "val": out.result.val_history},
        artifacts=[MODEL, f"{REPORTS}/generated.txt", f"{REPORTS}/temperature_sweep.txt", figure],
        tags={"data_sha256": data_fingerprint(f"{DATA}/meta.json"), "framework": "numpy"},
    )
