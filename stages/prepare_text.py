"""Stage prepare_text: fold a text source to ASCII, build the vocabulary, split train/val."""

from genlab.data.text import PrepareTextParams, prepare_text
from genlab.params import load_params_or_exit
from genlab.runtime import seed_everything
from genlab.tracking import data_fingerprint, log_stage

OUT = "data/text"

if __name__ == "__main__":
    common, cfg = load_params_or_exit("prepare_text", PrepareTextParams)
    seed_everything(common.seed)
    try:
        meta = prepare_text(cfg, OUT)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        raise SystemExit(f"error: prepare_text: {exc}") from None
    log_stage(
        "prepare_text", common, cfg,
        metrics={"text/n_chars": meta["n_chars"], "text/vocab_size": meta["vocab_size"],
                 "text/n_train": meta["n_train"], "text/n_val": meta["n_val"]},
        artifacts=[f"{OUT}/meta.json", f"{OUT}/vocab.json"],
        tags={"data_sha256": data_fingerprint(f"{OUT}/meta.json")},
    )
