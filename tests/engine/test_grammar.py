"""The grammar mask never forbids real music, and it forbids what would break MIDI."""

from __future__ import annotations

import pytest
import torch
from symusic import Score

from bench.member_seeds import SEEDS, bundled
from engine.api.metre import MAX_METRE_PARTS
from engine.generation.grammar import BAR_TOKEN_CAP, NO_LIMIT, NONE, TYPES, GrammarState, T
from engine.generation.prompt import build_prompt


def _walk(grammar, ids, **constraints):
    """Feed ids one by one; return the first id the mask refused (or None)."""
    state = GrammarState.after(grammar, [[ids[0]]], "cpu")
    opts = {"keep_tempo": torch.tensor([False]), "want_program": torch.tensor([NONE])}
    opts.update({k: torch.tensor([v]) for k, v in constraints.items()})
    for i in ids[1:]:
        if not bool(state.allowed(grammar, **opts)[0, i]):
            return i
        state.advance(grammar, torch.tensor([i]))
    return None


def single_id(tok, token: str) -> int:
    """The id of one REMI token alone (BPE keeps the base vocabulary)."""
    ids = [i for i in range(tok.vocab_size) if tok.base_tokens(i) == [token]]
    assert ids, token
    return ids[0]


@pytest.mark.parametrize("name", ["motif.mid", "waltz-violin.mid", "band.mid"])
def test_real_music_passes_the_mask(base_checkpoint, grammar, examples, name):
    tok = base_checkpoint.tokenizer
    ids = [tok.bos_id, *tok.encode(Score(examples / name))]
    assert _walk(grammar, ids) is None


def test_mask_refuses_a_second_note_start_and_backward_positions(base_checkpoint, grammar):
    tok = base_checkpoint.tokenizer
    remi = tok.remi

    def single(token: str) -> int:
        return single_id(tok, token)

    bar, ts = single("Bar_None"), single("TimeSig_4/4")
    p12, p6 = single("Position_12"), single("Position_6")
    prog, pitch = single("Program_0"), single("Pitch_60")
    assert remi is not None
    assert _walk(grammar, [tok.bos_id, bar, ts, p12, prog, pitch]) is None
    assert _walk(grammar, [tok.bos_id, bar, ts, p12, p6]) == p6  # positions go forward
    assert _walk(grammar, [tok.bos_id, bar, prog]) == prog  # a bar states its metre first
    assert _walk(grammar, [tok.bos_id, bar, ts, single("Position_47"), prog]) is None
    assert (
        _walk(
            grammar, [tok.bos_id, single("Bar_None"), single("TimeSig_3/4"), single("Position_40")]
        )
        is not None
    )  # past the end of a 3/4 bar


def test_drums_only_take_drum_pitches(grammar):
    assert bool(grammar.follows[T["ProgramDrum"], T["PitchDrum"]])
    assert not bool(grammar.follows[T["ProgramDrum"], T["Pitch"]])
    assert not bool(grammar.follows[T["Program"], T["PitchDrum"]])


# Liveness: sampling must always have an id to take, and every bar must close. Rather than
# hope sampling finds the holes, walk a superset of every state a row can reach: each type
# an id can end on, each position in each bar length (every metre, or none known yet), with
# room in the bar or crowded, with or without a bar to open; and each metre and program asked,
# at the tightest corner (a crowded bar at its last position, tempo kept, a bar to open).
_LAST_TYPES = [T[k] for k in TYPES if k not in ("EOS", "PAD")]  # an id never ends on these
# How far a note has got; a crowded bar must move forward on it with every id until it closes.
_PROGRESS = {
    "Bar": 0,
    "TimeSig": 1,
    "Position": 1,
    "Tempo": 1,
    "Program": 2,
    "ProgramDrum": 2,
    "Pitch": 3,
    "PitchDrum": 3,
    "Velocity": 4,
    "Duration": 5,
    "BOS": 5,
}


def _grid(**axes: list[int]) -> dict[str, torch.Tensor]:
    columns = torch.cartesian_prod(*(torch.tensor(v) for v in axes.values()))
    return {name: columns[:, i] for i, name in enumerate(axes)}


def _masks(
    grammar,
    last_type,
    position,
    limit,
    crowded,
    open_bar,
    keep_tempo,
    program,
    time_signature,
    first_by=None,
):
    """(state index, its mask) for every state given by the (N,) columns, in chunks."""
    for start in range(0, len(last_type), 4096):
        s = slice(start, start + 4096)
        state = GrammarState(
            last_type=last_type[s],
            position=position[s],
            limit=limit[s],
            bars=torch.zeros_like(last_type[s]),
            bar_tokens=crowded[s] * BAR_TOKEN_CAP,
            time_signature=time_signature[s],
            open_bar=open_bar[s].bool(),
            first_by=(torch.full_like(last_type[s], NONE) if first_by is None else first_by[s]),
            cycle=torch.full((len(last_type[s]), MAX_METRE_PARTS), NONE),
            cycle_len=torch.zeros_like(last_type[s]),
            cycle_at=torch.zeros_like(last_type[s]),
        )
        yield s, state.allowed(grammar, keep_tempo=keep_tempo[s].bool(), want_program=program[s])


def test_every_state_leaves_a_way_to_the_next_bar_line(grammar):
    longest = int(grammar.bar_positions.max())
    limits = [*sorted(set(grammar.bar_positions.tolist())), NO_LIMIT]
    places = torch.tensor([(p, lim) for lim in limits for p in range(NONE, min(lim, longest))])
    g = _grid(
        last_type=_LAST_TYPES, place=list(range(len(places))), crowded=[0, 1], open_bar=[0, 1]
    )
    none = torch.full_like(g["last_type"], NONE)
    progress = torch.zeros(len(TYPES), dtype=torch.long)
    for name, value in _PROGRESS.items():
        progress[T[name]] = value
    ends_on = progress[grammar.last_type]  # (V,)
    for s, mask in _masks(
        grammar,
        g["last_type"],
        places[g["place"], 0],
        places[g["place"], 1],
        g["crowded"],
        g["open_bar"],
        none.bool(),
        none,
        none,
    ):
        dead = ~mask.any(-1)
        assert not dead.any(), f"no id allowed after {TYPES[int(g['last_type'][s][dead][0])]}"
        # A crowded bar takes only ids that open the next bar or carry its note forward, so
        # it closes within 5 ids (Position -> Program -> Pitch -> Velocity -> Duration -> Bar).
        crowded = g["crowded"][s].bool()
        behind = ends_on[None, :] <= progress[g["last_type"][s]][:, None]
        stalls = mask & crowded[:, None] & ~grammar.opens_bar & behind
        assert not stalls.any(), "a crowded bar may take an id that does not bring it nearer"

    # Every metre and program asked, at the tightest corner: crowded at the last position of
    # the shortest bar, tempo kept, a bar to open (each of those only ever removes ids).
    g = _grid(
        last_type=_LAST_TYPES,
        time_signature=[NONE, *range(len(grammar.time_signatures))],
        program=[NONE, *range(128)],
    )
    ones = torch.ones_like(g["last_type"])
    for s, mask in _masks(
        grammar,
        g["last_type"],
        ones * (longest - 1),
        ones * int(grammar.bar_positions.min()),
        ones,
        ones,
        ones,
        g["program"],
        g["time_signature"],
    ):
        dead = ~mask.any(-1)
        assert not dead.any(), (
            f"no id allowed after {TYPES[int(g['last_type'][s][dead][0])]} for program "
            f"{int(g['program'][s][dead][0])}, metre {int(g['time_signature'][s][dead][0])}"
        )


def test_a_continuation_inside_the_seeds_last_bar_always_has_an_onset_to_write(grammar):
    """Going on inside the seed's last bar (engine.generation.prompt.Seam), the first id must be
    an onset between the seam and `first_by`: from every such start, in every metre, with the tempo
    kept and a program asked, some id is allowed, and each allowed one is such an onset.
    (A seed with a seam ends on a finished note: its last bar has notes.)"""
    starts = torch.tensor(
        [
            (first, by, int(lim))
            for lim in grammar.bar_positions.unique()
            for first in range(int(lim))
            for by in {first, min(int(lim) - 1, first + 12)}
        ]
    )
    g = _grid(last_type=[T["Duration"]], start=list(range(len(starts))), program=[NONE, 0, 40])
    first, by, limit = (starts[g["start"], i] for i in range(3))
    zeros, ones = torch.zeros_like(first), torch.ones_like(first)
    for s, mask in _masks(
        grammar,
        g["last_type"],
        first - 1,
        limit,
        zeros,
        zeros,
        ones,
        g["program"],
        torch.full_like(first, NONE),
        first_by=by,
    ):
        assert mask.any(-1).all(), "no onset allowed after the seam"
        onset = (
            (grammar.first_type == T["Position"])[None, :]
            & (grammar.first_position[None, :] >= first[s, None])
            & (grammar.first_position[None, :] <= by[s, None])
        )
        assert not (mask & ~onset).any(), "an id other than an onset by first_by allowed"


def test_a_crowded_bar_after_a_position_still_gets_its_note(base_checkpoint, grammar):
    """The state that stopped a quarter of dense continuations early: 64 ids into a bar, a
    Position just written. REMI wants a note there; the old rule forbade every note start."""
    tok = base_checkpoint.tokenizer
    state = GrammarState.after(grammar, [[tok.bos_id]], "cpu")
    state.advance(grammar, torch.tensor([single_id(tok, "Bar_None")]))
    state.advance(grammar, torch.tensor([single_id(tok, "TimeSig_4/4")]))
    state.advance(grammar, torch.tensor([single_id(tok, "Position_12")]))
    state.bar_tokens[:] = BAR_TOKEN_CAP
    mask = state.allowed(
        grammar, keep_tempo=torch.tensor([True]), want_program=torch.tensor([NONE])
    )[0]
    allowed = {tuple(tok.base_tokens(i)) for i in mask.nonzero()[:, 0].tolist()}
    assert ("Program_0",) in allowed
    # ... but no second note or position rides along in a merged id.
    for tokens in allowed:
        starts = [t for t in tokens if t.split("_")[0] in ("Position", "Program", "Tempo")]
        assert len(starts) == 1 and tokens[0].startswith("Program"), tokens


def test_the_state_after_a_prompt_is_the_state_its_ids_lead_to(base_checkpoint, grammar):
    """GrammarState.after reads a prompt at once; stepping through its ids must agree."""
    tok = base_checkpoint.tokenizer
    scores = [make(bars=4) for make in SEEDS.values()] + list(bundled().values())
    prompts = [build_prompt(tok, grammar, score).ids for score in scores]
    prompts += [p[:cut] for p in prompts for cut in (1, 2, 3, len(p) // 3, len(p) // 2 + 1)]
    at_once = GrammarState.after(grammar, prompts, "cpu")
    for row, prompt in enumerate(prompts):
        state = GrammarState.after(grammar, [[]], "cpu")
        for i in prompt:
            state.advance(grammar, torch.tensor([i]))
        for name in ("last_type", "position", "limit"):
            assert int(getattr(at_once, name)[row]) == int(getattr(state, name)[0]), name
