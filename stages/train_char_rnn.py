"""Stage train_char_rnn: train the torch char-RNN on data/text, keep the best weights, write
metrics, the loss curve, a primed sample and a temperature sweep (library: genlab.train.char_rnn)."""

from pathlib import Path

from genlab.data.text import Vocab, load_text_data
from genlab.models import char_rnn as char_rnn_model
from genlab.runtime import resolve_device, seed_everything, write_json, write_text, write_tsv
from genlab.distributed import is_main_process
from genlab.stage import load_stage_params, run_stage
from genlab.tracking import LiveCurve, data_fingerprint, live_stage_run, log_stage
from genlab.train.char_rnn import CharRNNParams, sample_reports, train_char_rnn

DATA = Path("data/text")
CHECKPOINT = Path("models/char_rnn/checkpoint.pt")
RESUME = Path(".genlab/resume/train_char_rnn.pt")  # outside DVC's outputs: never hashed, survives a killed run
METRICS = "metrics/char_rnn.json"
LOSS = "plots/char_rnn/loss.tsv"
REPORTS = Path("reports/char_rnn")


def main() -> int:
    common, cfg = load_stage_params("char_rnn", CharRNNParams)
    seed_everything(common.seed)
    device = resolve_device(common.device)
    train_ids, val_ids, vocab = load_text_data(DATA)
    # the MLflow run is open while it trains: loss.tsv and the run's curves grow every eval_interval
    with live_stage_run("train_char_rnn", common, cfg) as run:
        curve = LiveCurve(LOSS, run, name="loss", columns=("step", "train_loss", "val_loss", "val_acc"))
        result = train_char_rnn(cfg, train_ids, val_ids, vocab.chars, device, seed=common.seed, resume_path=RESUME,
                                data_fingerprint=data_fingerprint(DATA / "meta.json"), history_sinks={"eval": curve})
        if not is_main_process():
            return 0  # under DDP, rank 0 writes the outputs
        char_rnn_model.save(CHECKPOINT, result.model, vocab={"chars": list(vocab.chars)}, prime=cfg.prime,
                            step=int(result.metrics["char_rnn/best_step"]), metrics=result.metrics)
        generated, sweep = sample_reports(result.model, Vocab(vocab.chars), cfg, seed=common.seed)
        write_json(METRICS, result.metrics)
        write_tsv(LOSS, result.history)
        write_text(REPORTS / "generated.txt", generated)
        write_text(REPORTS / "temperature_sweep.txt", sweep)
        log_stage(
            "train_char_rnn", common, cfg, metrics=result.metrics, history={"loss": result.history},
            artifacts=[REPORTS / "generated.txt", REPORTS / "temperature_sweep.txt", LOSS],
            models={"char_rnn": CHECKPOINT}, run=run,
            datasets={"train": train_ids, "val": val_ids}, data_dir=DATA,
            tags={"data_sha256": data_fingerprint(DATA / "meta.json"), "device": str(device),
                  "resumed_from_step": result.resumed_from_step},
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_stage(main, distributed=True))  # distributed.nproc > 1: torchrun
