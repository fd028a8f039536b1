"""Storage errors a member or admin may cause. Each carries a message fit to show them;
the bot's error handler sends `error.message` and logs nothing else."""

from __future__ import annotations


class StorageError(Exception):
    """Base of the errors that query functions raise on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(StorageError):
    """A value a member typed is out of range (a seed name too long, for instance)."""


class DuplicateSeed(StorageError):
    """A seed with this name or this exact MIDI already exists on the server."""


class DuplicateSeedName(DuplicateSeed):
    def __init__(self, name: str) -> None:
        super().__init__(f'This server already has a seed named "{name}". Pick another name.')
        self.name = name


class DuplicateSeedContent(DuplicateSeed):
    def __init__(self, existing_name: str) -> None:
        super().__init__(f'This MIDI is already saved on this server as "{existing_name}".')
        self.existing_name = existing_name


class NotFound(StorageError):
    """The thing asked for does not exist on this server (or belongs to another one)."""


class SeedNotFound(NotFound):
    def __init__(self, name_or_id: str | int) -> None:
        what = f'named "{name_or_id}"' if isinstance(name_or_id, str) else f"#{name_or_id}"
        super().__init__(f"There is no seed {what} on this server.")


# Worded for both a number a member typed that never existed and one that did and was
# removed: the server cannot tell them apart (nor may it say another server has that number).
class CompositionNotFound(NotFound):
    def __init__(self, composition_id: int) -> None:
        super().__init__(f"There is no composition #{composition_id} on this server.")


class CandidateNotFound(NotFound):
    def __init__(self, candidate_id: int) -> None:
        super().__init__(f"There is no candidate #{candidate_id} on this server.")


class ModelVersionNotFound(NotFound):
    def __init__(self, version_id: int) -> None:
        super().__init__(f"Model version #{version_id} does not exist on this server.")


class FinetuneRunNotFound(NotFound):
    def __init__(self, run_id: int) -> None:
        super().__init__(f"Fine-tuning run #{run_id} does not exist on this server.")


class ModelVersionRejected(StorageError):
    def __init__(self, version_id: int) -> None:
        super().__init__(
            f"Model version #{version_id} did not pass the quality check and cannot be used."
        )


class ModelVersionPruned(StorageError):
    def __init__(self, version_id: int) -> None:
        super().__init__(
            f"Model version #{version_id}'s checkpoint was deleted to save space (only the most "
            "recent versions keep theirs); it cannot be used any more."
        )


class NoEarlierModelVersion(StorageError):
    def __init__(self) -> None:
        super().__init__("This server already uses the base model; there is nothing to roll back.")


class FinetuneAlreadyRunning(StorageError):
    def __init__(self, run_id: int | None) -> None:
        which = f" (run #{run_id})" if run_id is not None else ""
        super().__init__(
            f"A fine-tuning run is already queued or running on this server{which}. "
            "Wait for it to finish."
        )
        self.run_id = run_id


class FinetuneRunFinished(StorageError):
    def __init__(self, run_id: int, status: str) -> None:
        super().__init__(f"Fine-tuning run #{run_id} has already {status}; it cannot change.")
        self.run_id = run_id
        self.status = status


class JamAlreadyRunning(StorageError):
    def __init__(self) -> None:
        super().__init__(
            "A jam is already going on in this channel. Join it, or wait until it ends "
            "(/jam status tells how far it is)."
        )


class NoJam(NotFound):
    def __init__(self) -> None:
        super().__init__("There is no jam going on in this channel. Start one with /jam start.")


class JamRoundClosed(StorageError):
    def __init__(self, number: int) -> None:
        super().__init__(f"Round {number}'s vote has closed; your vote was not counted.")
        self.number = number
