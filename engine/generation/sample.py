"""Sampling continuations: prefill once, then decode every sequence of a batch together.

A `DecodeBatch` holds the running rows (one per candidate) with their LSTM state, grammar
state and sampling options as (B, ...) tensors. Rows join after their prompt is prefilled
and leave as soon as they finish, so the same structure serves one request (all its
candidates in one batch) and the engine server's continuous batching of many requests.
Randomness comes from one generator per request, so a request's output depends on its
sampling seed only, not on what else shares the batch.

A request's `Guidance` steers its rows toward the seed (engine.generation.steering: a mask and
a bias on top of the grammar's mask) and plans its form (engine.api.form): at a planned bar,
the row takes the ids of an earlier bar (the seed's or its own) instead of sampling them, and
the model reads them like its own, so what follows a return is written knowing it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from engine.api.form import Reuse

# MAX_TOKENS_PER_BAR: a last resort only; the grammar closes a bar within BAR_TOKEN_CAP + 5
# ids, well below it.
from engine.api.limits import DEFAULT_BARS, DEFAULT_TEMPERATURE, DEFAULT_TOP_P, MAX_TOKENS_PER_BAR
from engine.generation.bars import split_bars
from engine.generation.grammar import NONE, Grammar, GrammarState
from engine.generation.steering import RowSteering, SteeringRows
from engine.model.lstm import LSTMLanguageModel

if TYPE_CHECKING:
    from engine.api.schema import ComposeRequest


@dataclass
class SamplingOptions:
    """A row's sampling options: the request's share (checked when it arrived, by
    engine.api.schema.ComposeRequest) and what the prompt fixed (metre, cycle)."""

    bars: int = DEFAULT_BARS
    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = DEFAULT_TOP_P
    program: int | None = None  # force every generated note onto this GM program
    time_signature: int = NONE  # grammar index of the metre to keep; NONE: first one chosen
    keep_tempo: bool = True  # no Tempo tokens: the seed's (or the chosen) tempo holds
    # A seed metre the vocabulary lacks (engine.api.metre.bar_parts): the grammar indices of the
    # metres each of its bars is written as, which one the next bar states, and how many such
    # bars finish the seed's unfinished bar before the bars asked (counted in its metre).
    metre_cycle: tuple[int, ...] = ()
    cycle_at: int = 0
    extra_bars: int = 0

    @classmethod
    def of(cls, params: ComposeRequest, time_signature: int) -> SamplingOptions:
        """The sampler's share of a composition's options."""
        return cls(
            bars=params.bars,
            temperature=params.temperature,
            top_p=params.top_p,
            program=params.program,
            time_signature=time_signature,
        )

    @property
    def grammar_bars(self) -> int:
        """Bars the sampler writes: the bars asked, each as its cycle of metres, and those
        that finish the seed's bar."""
        return self.bars * max(1, len(self.metre_cycle)) + self.extra_bars

    def bars_of(self, grammar_bars: int) -> int:
        """How many of the bars asked `grammar_bars` written bars are."""
        return max(0, grammar_bars - self.extra_bars) // max(1, len(self.metre_cycle))


@dataclass
class Guidance:
    """What a request asks of its rows beyond valid ids (shared by the request's rows)."""

    steering: RowSteering = field(default_factory=RowSteering)
    form: list[Reuse | None] = field(default_factory=list)  # per continuation bar
    # The seed's bars' ids (in its final metre), for Reuse.seed_bar; None: a bar the rows may
    # not copy (another metre, or instruments they may not write).
    seed_bars: list[list[int] | None] = field(default_factory=list)

    def material(
        self, bar: int, written: list[int], opens_bar: list[bool]
    ) -> tuple[list[int], bool]:
        """The ids bar `bar` (0-based) of a row copies ([] to write it freely), and whether
        they are the whole bar (then the bar closes after them)."""
        reuse = self.form[bar] if bar < len(self.form) else None
        if reuse is None:
            return [], False
        ids: list[int] | None = None
        if reuse.seed_bar is not None and reuse.seed_bar < len(self.seed_bars):
            ids = self.seed_bars[reuse.seed_bar]
        elif reuse.own_bar is not None and reuse.own_bar < bar:
            own = split_bars(written, opens_bar)
            ids = own[reuse.own_bar] if reuse.own_bar < len(own) else None
        if not ids:
            return [], False
        # Varied: the first half of the bar's ids; the model writes the rest from wherever
        # they stop (the grammar state follows copied ids like sampled ones).
        if reuse.varied:
            return list(ids[: max(1, (len(ids) + 1) // 2)]), False
        return list(ids), True


@dataclass
class Row:
    """One sequence being generated; `tokens` grows as it decodes."""

    request: object  # who asked (the batch groups random draws by it)
    generator: torch.Generator
    options: SamplingOptions
    tokens: list[int] = field(default_factory=list)
    invalid_mass: float = 0.0  # summed probability the model gave to invalid ids
    steps: int = 0
    done: bool = False
    stop_reason: str = ""  # "bars" (all written), "token cap" or "dead end" (both: a bug)
    bars: int = 0  # bars written to their end; set when the row finishes
    guidance: Guidance | None = None
    forced: list[int] = field(default_factory=list)  # ids still to copy in this bar
    close_after_copy: bool = False  # the copy is a whole bar: the next id opens a bar
    copied: int = 0  # ids copied from earlier bars (form), not sampled


def _cat(a: torch.Tensor | None, b: torch.Tensor, dim: int = 0) -> torch.Tensor:
    return b if a is None else torch.cat([a, b], dim=dim)


class DecodeBatch:
    def __init__(self, model: LSTMLanguageModel, grammar: Grammar) -> None:
        self.model, self.grammar = model, grammar
        self.device = next(model.parameters()).device
        self.rows: list[Row] = []
        self.h: torch.Tensor | None = None  # (L, B, H)
        self.c: torch.Tensor | None = None
        self.logits: torch.Tensor | None = None  # (B, V): the next token's logits
        self.gstate: GrammarState | None = None
        self.steer: SteeringRows | None = None
        self._opts: dict[str, torch.Tensor] = {}
        self._opens_bar: list[bool] = grammar.opens_bar.tolist()

    def __len__(self) -> int:
        return len(self.rows)

    @torch.no_grad()
    def prefill(self, prompt: list[int]) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Run a prompt in one pass: (last logits (V,), state (L, 1, H) x2)."""
        tokens = torch.tensor([prompt], dtype=torch.long, device=self.device)  # (1, T)
        logits, state = self.model(tokens)
        return logits[0, -1], state

    @torch.no_grad()
    def add(
        self,
        prompt: list[int],
        rows: list[Row],
        *,
        open_bar: bool = True,
        first_onset: tuple[int, int] | None = None,
    ) -> None:
        """Prefill `prompt` once and start every row of `rows` from it.

        With `open_bar` the first generated token starts a new bar. With `first_onset`
        (engine.generation.prompt.Prompt.first_onset) the rows go on inside the prompt's last
        bar, their first onset at one of those positions, and their bars are counted from its end.
        """
        last, (h, c) = self.prefill(prompt)
        n = len(rows)
        self.h = _cat(self.h, h.expand(-1, n, -1).contiguous(), dim=1)
        self.c = _cat(self.c, c.expand(-1, n, -1).contiguous(), dim=1)
        self.logits = _cat(self.logits, last.expand(n, -1).clone())
        o = [r.options for r in rows]
        g = GrammarState.after(
            self.grammar,
            [prompt] * n,
            self.device,
            time_signatures=[x.time_signature for x in o],
            open_bar=open_bar,
            first_onset=first_onset,
            cycles=[(x.metre_cycle, x.cycle_at) for x in o],
        )
        if self.gstate is None:
            self.gstate = g
        else:
            for name in GrammarState.FIELDS:
                setattr(
                    self.gstate, name, torch.cat([getattr(self.gstate, name), getattr(g, name)])
                )
        new = {
            "temperature": torch.tensor([x.temperature for x in o], device=self.device),
            "top_p": torch.tensor([x.top_p for x in o], device=self.device),
            "bars": torch.tensor([x.grammar_bars for x in o], device=self.device),
            "keep_tempo": torch.tensor([x.keep_tempo for x in o], device=self.device),
            "program": torch.tensor(
                [NONE if x.program is None else x.program for x in o], device=self.device
            ),
        }
        for k, v in new.items():
            self._opts[k] = _cat(self._opts.get(k), v)
        if self.grammar.steering is not None:
            guidance = rows[0].guidance if rows else None
            steer = SteeringRows.of(
                self.grammar.steering,
                guidance.steering if guidance else RowSteering(),
                n,
                self.device,
            )
            self.steer = steer if self.steer is None else self.steer.cat(steer)
        self.rows.extend(rows)

    def _draws(self) -> torch.Tensor:
        """One uniform number per row, from its own request's generator."""
        out = torch.empty(len(self.rows))
        i = 0
        while i < len(self.rows):
            j = i
            while j < len(self.rows) and self.rows[j].request is self.rows[i].request:
                j += 1
            out[i:j] = torch.rand(j - i, generator=self.rows[i].generator)
            i = j
        return out.to(self.device)

    @torch.no_grad()
    def step(self) -> list[Row]:
        """Sample one token for every row; returns (and drops) the rows that finished."""
        if not self.rows:
            return []
        g, o = self.grammar, self._opts
        st = self.gstate
        assert st is not None and self.logits is not None
        mask = st.allowed(g, keep_tempo=o["keep_tempo"], want_program=o["program"])
        logits = self.logits.float()
        raw = torch.softmax(logits, dim=-1)
        invalid = (raw * ~mask).sum(-1)  # (B,)
        logits = logits / o["temperature"][:, None]
        if self.steer is not None and g.steering is not None:
            fits = mask & self.steer.mask(g.steering)
            # Steering narrows what is valid, never to nothing: the grammar's mask always
            # leads to the next bar line, a steered one might not from every state.
            mask = torch.where(fits.any(-1, keepdim=True), fits, mask)
            logits = logits + self.steer.bias(g.steering)
        logits = logits.masked_fill(~mask, float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        # Top-p: keep the smallest set of ids whose mass reaches p (always the best one).
        sorted_p, order = probs.sort(dim=-1, descending=True)
        cum = sorted_p.cumsum(-1)
        sorted_p = sorted_p.masked_fill(cum - sorted_p >= o["top_p"][:, None], 0.0)
        cdf = sorted_p.cumsum(-1)
        u = self._draws() * cdf[:, -1]
        pick = torch.searchsorted(cdf, u[:, None]).clamp(max=cdf.shape[1] - 1)
        tokens = order.gather(1, pick)[:, 0]  # (B,)
        tokens = self._copy_planned_bars(tokens, st.bars)
        dead = ~mask.any(-1)
        # A token that opens the bar after the last requested one ends the row unsent.
        ends = (g.opens_bar[tokens] & (st.bars >= o["bars"])) | dead
        before = st.bars
        st.advance(g, tokens)
        if self.steer is not None and g.steering is not None:
            self.steer.advance(g.steering, tokens)
        self._close_copied_bars(st)
        tok_list, ends_list, inv_list = tokens.tolist(), ends.tolist(), invalid.tolist()
        dead_list = dead.tolist()
        for i, (row, tok, end, inv, is_dead) in enumerate(
            zip(self.rows, tok_list, ends_list, inv_list, dead_list, strict=True)
        ):
            row.invalid_mass += inv
            row.steps += 1
            if end:  # the id that ended the row is not written
                row.done, row.stop_reason = True, "dead end" if is_dead else "bars"
                # Reaching the next bar line finishes the last bar; a dead end leaves it open.
                row.bars = max(0, int(before[i]) - int(is_dead))
                continue
            row.tokens.append(tok)
            if len(row.tokens) >= row.options.grammar_bars * MAX_TOKENS_PER_BAR:
                row.done, row.stop_reason = True, "token cap"
                row.bars = max(0, int(st.bars[i]) - 1)  # the bar under way is left open
        finished = [r for r in self.rows if r.done]
        keep = torch.tensor([not r.done for r in self.rows], device=self.device)
        if finished:
            self._select(keep)
        if self.rows:
            live = tokens[keep] if finished else tokens
            assert self.h is not None and self.c is not None
            self.logits, (self.h, self.c) = self.model.step(live, (self.h, self.c))
        return finished

    def _copy_planned_bars(self, tokens: torch.Tensor, bars: torch.Tensor) -> torch.Tensor:
        """Replace sampled ids by copied ones where the form plans a bar of earlier material:
        a row that just opened such a bar takes that bar's ids instead, one per step."""
        changed = False
        picked = tokens.tolist()
        opened = bars.tolist()
        for i, row in enumerate(self.rows):
            if row.forced:
                picked[i] = row.forced.pop(0)
            elif (
                row.guidance is not None
                and row.guidance.form
                and self._opens_bar[picked[i]]
                and opened[i] < row.options.grammar_bars
            ):
                material, whole = row.guidance.material(opened[i], row.tokens, self._opens_bar)
                if not material:
                    continue
                picked[i], row.forced = material[0], material[1:]
                row.close_after_copy = whole
            else:
                continue
            row.copied += 1
            changed = True
        return torch.tensor(picked, device=tokens.device) if changed else tokens

    def _close_copied_bars(self, st: GrammarState) -> None:
        """A bar copied whole ends where its source ended: the row's next id opens a bar."""
        closing = [i for i, row in enumerate(self.rows) if row.close_after_copy and not row.forced]
        for i in closing:
            self.rows[i].close_after_copy = False
        if closing:
            st.open_bar[closing] = True

    def _select(self, keep: torch.Tensor) -> None:
        self.rows = [r for r, k in zip(self.rows, keep.tolist(), strict=True) if k]
        assert self.h is not None and self.c is not None and self.gstate is not None
        self.h, self.c = self.h[:, keep], self.c[:, keep]
        self.logits = self.logits[keep] if self.logits is not None else None
        for name in GrammarState.FIELDS:
            setattr(self.gstate, name, getattr(self.gstate, name)[keep])
        for k in self._opts:
            self._opts[k] = self._opts[k][keep]
        if self.steer is not None:
            self.steer = self.steer.select(keep)

    def cancel(self, request: object) -> int:
        """Drop every row of `request` (its caller went away); returns how many."""
        keep = torch.tensor([r.request is not request for r in self.rows], device=self.device)
        dropped = int((~keep).sum())
        if dropped:
            self._select(keep)
        return dropped


def generate(
    model: LSTMLanguageModel,
    grammar: Grammar,
    prompt: list[int],
    n: int,
    options: SamplingOptions,
    *,
    seed: int | None = None,
    must_open_bar: bool = True,
    guidance: Guidance | None = None,
    first_onset: tuple[int, int] | None = None,
) -> list[Row]:
    """All `n` candidates of one request, decoded as one batch."""
    gen = torch.Generator()
    gen.manual_seed(seed if seed is not None else torch.seed())
    request = object()
    rows = [
        Row(request=request, generator=gen, options=options, guidance=guidance) for _ in range(n)
    ]
    batch = DecodeBatch(model, grammar)
    batch.add(prompt, rows, open_bar=must_open_bar, first_onset=first_onset)
    while len(batch):
        batch.step()
    return rows
