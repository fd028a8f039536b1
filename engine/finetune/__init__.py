"""Per-server fine-tuning: a server's seeds, winners and votes make its own model version.

    server_data   the server's pieces: a fixed held-out part for the gate, token streams, pairs
    base_data     replay of the base corpus and the base held-out split (built on first use)
    preferences   a DPO step on "members chose this candidate over that one"
    gate          the rule that decides whether the new version may serve
    run           the whole run: tune from the active version, prefer, gate, save

`python -m engine finetune` runs it from a folder of MIDI files; the engine server runs that
command as a low-priority child process per server (engine.serving.finetune_processes).
"""
