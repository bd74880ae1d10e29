"""Stage train_char_rnn: train the torch char-RNN on data/text, keep the best checkpoint,
write metrics, the loss curve, a primed sample and a temperature sweep."""

from genlab.data.text import Vocab, load_text_data
from genlab.params import load_params_or_exit
from genlab.runtime import resolve_device, seed_everything, write_json, write_text, write_tsv
from genlab.tracking import data_fingerprint, log_stage
from genlab.train.char_rnn import CharRNNParams, sample_reports, train_char_rnn

CKPT = "models/char_rnn/checkpoint.pt"
METRICS = "metrics/char_rnn.json"
LOSS = "plots/char_rnn/loss.tsv"
REPORTS = "reports/char_rnn"

if __name__ == "__main__":
    common, cfg = load_params_or_exit("char_rnn", CharRNNParams)
    seed_everything(common.seed)
    device = resolve_device(common.device)
    train_ids, val_ids, vocab = load_text_data("data/text")
    try:
        result = train_char_rnn(cfg, train_ids, val_ids, vocab.chars, device, CKPT, seed=common.seed)
    except ValueError as exc:
        raise SystemExit(f"error: train_char_rnn: {exc}") from None
    generated, sweep = sample_reports(result.model, Vocab(vocab.chars), cfg, seed=common.seed)
    write_json(METRICS, result.metrics)
    write_tsv(LOSS, result.history)
    write_text(f"{REPORTS}/generated.txt", generated)
    write_text(f"{REPORTS}/temperature_sweep.txt", sweep)
    log_stage(
        "train_char_rnn", common, cfg, metrics=result.metrics, history={"loss": result.history},
        artifacts=[CKPT, f"{REPORTS}/generated.txt", f"{REPORTS}/temperature_sweep.txt", LOSS],
        models={"char_rnn": result.model.cpu()},
        tags={"data_sha256": data_fingerprint("data/text/meta.json"), "device": str(device)},
    )
