"""Training at scale on a tiny model: two processes over gloo (DistributedDataParallel) end with
the same weights, a stopped run resumes to exactly the weights of one that never stopped, and a
deeper LSTM than the shipped one composes through the engine's own decoding."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from symusic import Score
from torch import distributed as dist
from torch import multiprocessing as mp

from engine.api.schema import ComposeRequest
from engine.model.checkpoint import Checkpoint, save_checkpoint
from engine.model.lstm import LSTMLanguageModel, ModelConfig
from engine.training.loop import TrainConfig, load_train_state, train

SMALL = {"embed_dim": 16, "hidden_dim": 24, "num_layers": 2}
CONFIG = {"batch_size": 4, "seq_len": 16, "lr": 1e-2, "warmup_steps": 1, "eval_every": 2}


def token_stream(tokenizer, examples: Path) -> np.ndarray:
    ids = []
    for name in ("motif.mid", "waltz-violin.mid", "band.mid"):
        ids += [tokenizer.bos_id, *tokenizer.encode(Score(examples / name)), tokenizer.eos_id]
    return np.asarray(ids * 4, dtype=np.int32)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_rank(rank: int, world: int, port: int, folder: str, vocab: int) -> None:
    """One process of a two-process run (spawned: a module-level function)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        out = Path(folder)
        torch.manual_seed(100 + rank)  # each process starts from other weights: DDP aligns them
        model = LSTMLanguageModel(ModelConfig(vocab_size=vocab, **SMALL))
        torch.save(model.state_dict(), out / f"initial-{rank}.pt")
        ids = np.load(out / "ids.npy")
        result = train(
            model,
            ids,
            ids,
            TrainConfig(steps=4, accumulate=2, **CONFIG),
            state_path=out / "state.pt",
        )
        torch.save(model.state_dict(), out / f"final-{rank}.pt")
        (out / f"history-{rank}.json").write_text(json.dumps(result.history))
    finally:
        dist.destroy_process_group()


def test_two_processes_train_one_model_and_leave_a_state_to_resume(
    base_checkpoint, examples, tmp_path
):
    tokenizer = base_checkpoint.tokenizer
    np.save(tmp_path / "ids.npy", token_stream(tokenizer, examples))
    mp.spawn(
        one_rank,
        args=(2, free_port(), str(tmp_path), tokenizer.vocab_size),
        nprocs=2,
        join=True,
    )
    initial = [torch.load(tmp_path / f"initial-{r}.pt") for r in range(2)]
    final = [torch.load(tmp_path / f"final-{r}.pt") for r in range(2)]
    assert any(not torch.equal(initial[0][k], initial[1][k]) for k in initial[0])
    for name in final[0]:
        assert torch.equal(final[0][name], final[1][name]), name
    assert any(not torch.equal(final[0][k], initial[0][k]) for k in final[0])
    # Process 0 evaluates (steps 2 and 4); the other only trains.
    histories = [json.loads((tmp_path / f"history-{r}.json").read_text()) for r in range(2)]
    assert [h["step"] for h in histories[0]] == [2, 4] and histories[1] == []

    state = load_train_state(tmp_path / "state.pt")
    assert state["step"] == 4 and state["world_size"] == 2
    assert state["rng"][0]["numpy"] != state["rng"][1]["numpy"]  # each draws its own windows
    for name, value in state["model"].items():
        assert torch.equal(value, final[0][name]), name
    # One process goes on from the two's state.
    model = LSTMLanguageModel(ModelConfig(vocab_size=tokenizer.vocab_size, **SMALL))
    ids = np.load(tmp_path / "ids.npy")
    result = train(
        model,
        ids,
        ids,
        TrainConfig(steps=6, accumulate=2, **CONFIG),
        state_path=tmp_path / "state.pt",
        resume=True,
    )
    assert result.steps_done == 6
    assert [h["step"] for h in result.history] == [2, 4, 6]


def test_a_stopped_run_resumes_to_the_weights_of_one_that_never_stopped(
    base_checkpoint, examples, tmp_path
):
    tokenizer = base_checkpoint.tokenizer
    ids = token_stream(tokenizer, examples)
    config = TrainConfig(steps=6, accumulate=2, **CONFIG)  # dropout on: its generator counts

    def fresh(seed: int) -> LSTMLanguageModel:
        torch.manual_seed(seed)
        return LSTMLanguageModel(ModelConfig(vocab_size=tokenizer.vocab_size, **SMALL))

    whole = fresh(0)
    straight = train(whole, ids, ids, config)
    steps: list[int] = []
    stopped = train(
        fresh(0),
        ids,
        ids,
        config,
        on_step=lambda step, bits, lr: steps.append(step),
        should_stop=lambda: len(steps) >= 3,
        state_path=tmp_path / "state.pt",
    )
    assert stopped.steps_done == 3
    assert load_train_state(tmp_path / "state.pt")["step"] == 3
    resumed_model = fresh(1)  # other weights: all of them must come from the state
    resumed = train(resumed_model, ids, ids, config, state_path=tmp_path / "state.pt", resume=True)
    assert resumed.steps_done == 6
    for (name, a), b in zip(
        whole.state_dict().items(), resumed_model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    assert [h["valid_bits"] for h in resumed.history] == [h["valid_bits"] for h in straight.history]


def test_resume_without_a_state_is_a_clear_error(base_checkpoint, tmp_path):
    model = LSTMLanguageModel(ModelConfig(vocab_size=base_checkpoint.tokenizer.vocab_size))
    ids = np.arange(100, dtype=np.int32)
    with pytest.raises(FileNotFoundError, match="no training state to resume"):
        train(model, ids, ids, TrainConfig(steps=2), state_path=tmp_path / "x.pt", resume=True)


def test_a_deeper_lstm_composes_through_the_engines_decoding(base_checkpoint, examples, tmp_path):
    from engine.core.composer import Composer

    tokenizer = base_checkpoint.tokenizer
    torch.manual_seed(0)
    deep = LSTMLanguageModel(
        ModelConfig(vocab_size=tokenizer.vocab_size, embed_dim=16, hidden_dim=40, num_layers=4)
    )
    ids = token_stream(tokenizer, examples)
    train(deep, ids, ids, TrainConfig(steps=4, **CONFIG))
    deep.eval()
    # The fused decode step is nn.LSTM's maths for every layer.
    state = deep.zero_state(3)
    tokens = torch.as_tensor(ids[:3], dtype=torch.long)
    fused, (h, c) = deep.step(tokens, state)
    reference, (h_ref, c_ref) = deep.step_reference(tokens, state)
    assert h.shape == (4, 3, 40)
    torch.testing.assert_close(fused, reference, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(c, c_ref, rtol=1e-4, atol=1e-5)

    path = tmp_path / "deep.pt"
    save_checkpoint(path, Checkpoint(deep, tokenizer, {"step": 4}), half=True)
    composer = Composer(path, device="cpu")
    try:
        result = composer.compose(
            (examples / "band.mid").read_bytes(),
            ComposeRequest(bars=2, candidates=2, seed=3),
        )
    finally:
        composer.close()
    assert composer.model.config.num_layers == 4
    assert len(result.candidates) == 2
    for candidate in result.candidates:
        assert candidate.bars == 2
        assert candidate.notes > 0 and candidate.audio
        assert Score.from_midi(candidate.midi).note_num() > 0
