"""Stage train_char_rnn_numpy: a vanilla char-RNN from scratch in NumPy (hand-written BPTT and
optimizers), the optimizer comparison, and text samples (library: genlab.char_rnn_numpy.train)."""

from pathlib import Path

from genlab.char_rnn_numpy.train import CharRNNNumpyParams, comparison_rows, plot_optimizer_comparison, run_char_rnn_numpy
from genlab.data.text import load_text_data
from genlab.runtime import save_figure, seed_everything, write_json, write_text, write_tsv
from genlab.stage import load_stage_params, run_stage
from genlab.tracking import data_fingerprint, log_stage

DATA, MODEL = Path("data/text"), "models/char_rnn_numpy/model.npz"
RESUME = Path(".genlab/resume/train_char_rnn_numpy.npz")  # outside DVC's outputs: survives a killed run
PLOTS, REPORTS, METRICS = "plots/char_rnn_numpy", "reports/char_rnn_numpy", "metrics/char_rnn_numpy.json"


def main() -> int:
    common, cfg = load_stage_params("char_rnn_numpy", CharRNNNumpyParams)
    seed_everything(common.seed)
    train_ids, val_ids, vocab = load_text_data(DATA)
    fingerprint = data_fingerprint(DATA / "meta.json")
    out = run_char_rnn_numpy(train_ids, val_ids, vocab, cfg, common.seed, resume_path=RESUME,
                             data_fingerprint=fingerprint)
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
        tags={"data_sha256": fingerprint, "framework": "numpy"},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
