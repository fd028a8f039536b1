"""The fine-tuning defaults as plain numbers, for the CLI's help (no torch import).

engine.finetune.run.FinetuneConfig and PreferenceConfig take theirs from here."""

DEFAULTS = {
    "steps": 120,
    "batch_size": 16,
    "seq_len": 256,
    "lr": 3e-4,  # a tenth of the base model's: move it, do not retrain it
    "eval_every": 20,
    "server_share": 0.5,  # of each batch; the rest replays the base corpus
    "preference_steps": None,  # None: a third of the tuning steps (at least 2)
    "min_pairs": 8,  # fewer votes than this say too little to move a model
    "base_eval_tokens": 24_000,
    "replay_pieces": 600,
}
