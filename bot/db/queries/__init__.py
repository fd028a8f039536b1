"""Query functions. Each takes the session and, keyword-only, the guild id, and is one
transaction that commits before it returns (see _tx)."""

from __future__ import annotations

from bot.db.queries.compositions import (
    MAX_CANDIDATES,
    NewCandidate,
    PieceRound,
    get_candidate,
    get_composition,
    get_piece,
    record_composition,
    set_composition_message,
)
from bot.db.queries.export import (
    ExportSeed,
    ExportWinner,
    FinetuneExport,
    PreferencePair,
    export_finetune_data,
)
from bot.db.queries.finetune import (
    count_new_finetune_material,
    create_finetune_run,
    fail_interrupted_finetune_runs,
    get_finetune_run,
    get_latest_finetune_run,
    update_finetune_run,
)
from bot.db.queries.guilds import forget_guild
from bot.db.queries.model_versions import (
    activate_model_version,
    add_model_version,
    checkpoints_to_keep,
    get_active_model_version,
    get_model_version,
    list_model_versions,
    mark_model_versions_pruned,
    rollback_model_version,
)
from bot.db.queries.seeds import (
    SEED_MAX_BYTES,
    add_seed,
    autocomplete_seed_names,
    get_seed,
    get_seed_by_id,
    list_seeds,
    midi_sha256,
    normalize_seed_name,
    remove_seed,
    save_candidate_as_seed,
)
from bot.db.queries.votes import (
    TopCandidate,
    VoteResult,
    cast_vote,
    get_member_vote,
    get_tallies,
    top_candidates,
)

__all__ = [
    "MAX_CANDIDATES",
    "SEED_MAX_BYTES",
    "ExportSeed",
    "ExportWinner",
    "FinetuneExport",
    "NewCandidate",
    "PieceRound",
    "PreferencePair",
    "TopCandidate",
    "VoteResult",
    "activate_model_version",
    "add_model_version",
    "add_seed",
    "autocomplete_seed_names",
    "cast_vote",
    "checkpoints_to_keep",
    "count_new_finetune_material",
    "create_finetune_run",
    "export_finetune_data",
    "fail_interrupted_finetune_runs",
    "forget_guild",
    "get_active_model_version",
    "get_candidate",
    "get_composition",
    "get_finetune_run",
    "get_latest_finetune_run",
    "get_member_vote",
    "get_model_version",
    "get_piece",
    "get_seed",
    "get_seed_by_id",
    "get_tallies",
    "list_model_versions",
    "list_seeds",
    "mark_model_versions_pruned",
    "midi_sha256",
    "normalize_seed_name",
    "record_composition",
    "remove_seed",
    "rollback_model_version",
    "save_candidate_as_seed",
    "set_composition_message",
    "top_candidates",
    "update_finetune_run",
]
