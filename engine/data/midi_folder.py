"""Any folder of MIDI files into the corpus: walked in parallel, checked, deduplicated, resumable.

`engine data build --midi DIR` reads every .mid/.midi/.kar file under DIR in a process pool
(one worker per core). A worker reads one file and says whether it is fit to learn from and
what it holds: the hash of its bytes, the hash of its notes (engine.data.corpus's
fingerprint: onset, pitch and duration in twelfths of a beat, so a re-saved or re-named copy
is found), its notes, seconds, tracks and programs. A file is dropped as

- unreadable: the MIDI parser refuses it (truncated, not MIDI at all);
- empty: no notes;
- absurd: more notes, a longer duration or a tempo outside what the engine accepts in a seed
  (engine.api.limits: a piece the engine would refuse to continue is not one to learn from);
- a duplicate: the same bytes, or the same notes, as a file met earlier (sources in the order
  given, files in path order; music21's pieces come first).

Each result is appended to a journal in the data dir (`<corpus>/journal/<source>-<hash>.jsonl`,
one line a file, keyed by its path, size and modification time), so a rerun after Ctrl-C
or with one more folder reads only the files it has not seen. Kept files are copied to
`<corpus>/folders/<source>/<path>`: the corpus does not depend on the folder staying mounted.
Drums, programs, velocities, tempos and metres stay as the file has them; the tokenizer keeps
them all (engine/model/tokenizer.py). The held-out split is a stable hash of the notes, not of
the path, so the same music lands on the same side whatever its file is called.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from engine.api.limits import MAX_SEED_NOTES, MAX_SEED_SECONDS, TEMPO_BPM

MIDI_SUFFIXES = (".mid", ".midi", ".kar")
DEFAULT_LICENCE = "unknown: check before publishing"
# Bump when what a worker checks changes: journals of another version are not reused.
INSPECT_VERSION = 1
FOLDERS = "folders"  # kept files, under the corpus dir
JOURNAL = "journal"

# Why a file is left out (the keys of the manifest's table of reasons).
UNREADABLE = "unreadable"
EMPTY = "empty"
TOO_MANY_NOTES = f"over {MAX_SEED_NOTES:,} notes"
TOO_LONG = f"over {MAX_SEED_SECONDS // 60} minutes"
ABSURD_TEMPO = f"a tempo outside {TEMPO_BPM.low:g}-{TEMPO_BPM.high:g} bpm"
SAME_BYTES = "duplicate (same bytes)"
SAME_NOTES = "duplicate (same notes)"
REASONS = (UNREADABLE, EMPTY, TOO_MANY_NOTES, TOO_LONG, ABSURD_TEMPO, SAME_BYTES, SAME_NOTES)


@dataclass(frozen=True)
class MidiSource:
    """One folder given to `engine data build --midi`, named for the corpus (its collection)."""

    root: Path
    name: str
    licence: str = DEFAULT_LICENCE

    @property
    def journal_name(self) -> str:
        """By the folder's own path (not its name in this build, which may change)."""
        root = self.root.resolve()
        where = hashlib.sha1(str(root).encode()).hexdigest()[:8]
        return f"{root.name}-{where}-v{INSPECT_VERSION}.jsonl"


@dataclass
class FileResult:
    """What a worker found in one file (a line of the journal)."""

    rel: str  # path under the source's root, with '/'
    size: int
    mtime_ns: int
    reason: str | None = None  # why it is left out; None: fit to learn from
    bytes_hash: str = ""
    notes_hash: str = ""
    notes: int = 0
    seconds: float = 0.0
    tracks: int = 0
    drums: bool = False
    programs: list[int] = field(default_factory=list)


@dataclass
class FolderScan:
    """A source after its walk: every file's result, in path order."""

    source: MidiSource
    results: list[FileResult]
    reused: int = 0  # results read from the journal instead of the file


def name_sources(
    dirs: Sequence[Path], licences: Sequence[str] = (), taken: Sequence[str] = ()
) -> list[MidiSource]:
    """Sources named after their folders (made unique, and never a music21 collection's
    name); the n-th licence goes with the n-th folder, the default with the rest."""
    if len(licences) > len(dirs):
        raise ValueError(
            f"--licence is given once per --midi folder (received {len(licences)} licences "
            f"for {len(dirs)} folders)"
        )
    used = set(taken)
    sources = []
    for i, root in enumerate(dirs):
        root = Path(root)
        if not root.is_dir():
            raise ValueError(f"--midi must be a folder (received {str(root)!r})")
        base = root.resolve().name or "midi"
        name, n = base, 2
        while name in used:
            name, n = f"{base}-{n}", n + 1
        used.add(name)
        sources.append(
            MidiSource(root, name, licences[i] if i < len(licences) else DEFAULT_LICENCE)
        )
    return sources


def find_midi_files(root: Path) -> list[Path]:
    """Every MIDI file under root, in a stable order (hidden folders left out)."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(folder) / f for f in sorted(files) if f.lower().endswith(MIDI_SUFFIXES)]
    return found


def inspect_file(path: str, rel: str) -> FileResult:
    """Worker: read one file and judge it (never raises for a bad file)."""
    from symusic import Score

    from engine.data.corpus import score_fingerprint

    try:
        stat = os.stat(path)
        data = Path(path).read_bytes()
    except OSError:  # gone or unreadable since the walk
        return FileResult(rel, 0, 0, reason=UNREADABLE)
    result = FileResult(rel, stat.st_size, stat.st_mtime_ns)
    result.bytes_hash = hashlib.sha1(data).hexdigest()
    if not data:
        result.reason = EMPTY
        return result
    try:
        score = Score.from_midi(data)
    except Exception:  # symusic raises several types on a malformed file
        result.reason = UNREADABLE
        return result
    result.notes = score.note_num()
    result.tracks = sum(1 for t in score.tracks if t.note_num())
    result.drums = any(t.is_drum and t.note_num() for t in score.tracks)
    result.programs = sorted({t.program for t in score.tracks if t.note_num() and not t.is_drum})
    if not result.notes:
        result.reason = EMPTY
        return result
    if result.notes > MAX_SEED_NOTES:
        result.reason = TOO_MANY_NOTES
        return result
    if any(t.qpm not in TEMPO_BPM for t in score.tempos):
        result.reason = ABSURD_TEMPO
        return result
    try:
        result.seconds = round(float(score.to("second").end()), 2)
    except Exception:
        result.reason = UNREADABLE
        return result
    if result.seconds > MAX_SEED_SECONDS:
        result.reason = TOO_LONG
        return result
    result.notes_hash = score_fingerprint(score) or ""
    if not result.notes_hash:
        result.reason = EMPTY
    return result


def _inspect_job(job: tuple[str, str]) -> FileResult:
    return inspect_file(*job)


def _ignore_interrupts() -> None:
    """Workers leave Ctrl-C to the main process, which stops the pool and keeps the journal."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _read_journal(path: Path) -> dict[str, FileResult]:
    done: dict[str, FileResult] = {}
    if not path.exists():
        return done
    with open(path) as lines:
        for line in lines:
            try:
                result = FileResult(**json.loads(line))
            except (ValueError, TypeError):
                continue  # a line cut short by an interrupted run
            done[result.rel] = result
    return done


def scan_source(source: MidiSource, corpus: Path, *, workers: int | None = None) -> FolderScan:
    """Inspect every file of a source, reusing the journal's results for unchanged files."""
    journal_path = Path(corpus) / JOURNAL / source.journal_name
    journal_path.parent.mkdir(parents=True, exist_ok=True)
    done = _read_journal(journal_path)
    files = find_midi_files(source.root)
    results: dict[str, FileResult] = {}
    jobs = []
    for path in files:
        rel = path.relative_to(source.root).as_posix()
        stat = path.stat()
        known = done.get(rel)
        if known and (known.size, known.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
            results[rel] = known
        else:
            jobs.append((str(path), rel))
    reused = len(results)
    if jobs:
        workers = workers or max(1, os.cpu_count() or 2)
        chunksize = max(1, min(64, len(jobs) // (workers * 8)))
        bar = tqdm(
            total=len(files),
            initial=reused,
            desc=f"midi {source.name}",
            unit="file",
            file=sys.stderr,
            mininterval=1.0,
            smoothing=0.05,
        )
        pool = ProcessPoolExecutor(max_workers=workers, initializer=_ignore_interrupts)
        try:
            with open(journal_path, "a+b") as journal:
                journal.seek(0, os.SEEK_END)
                if journal.tell():  # a line cut short by a killed run ends here first
                    journal.seek(-1, os.SEEK_END)
                    if journal.read(1) != b"\n":
                        journal.write(b"\n")
                for result in pool.map(_inspect_job, jobs, chunksize=chunksize):
                    results[result.rel] = result
                    journal.write(json.dumps(asdict(result)).encode() + b"\n")
                    bar.update(1)
        except KeyboardInterrupt:
            # What was judged is in the journal; a rerun goes on from there.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            bar.close()
        pool.shutdown()
    ordered = [results[p.relative_to(source.root).as_posix()] for p in files]
    return FolderScan(source, ordered, reused)


def kept_path(corpus: Path, source: MidiSource, rel: str) -> Path:
    return Path(corpus) / FOLDERS / source.name / rel


def copy_kept(corpus: Path, source: MidiSource, rel: str) -> Path:
    """The corpus's copy of a kept file (made once; a rerun finds it there)."""
    target = kept_path(corpus, source, rel)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(target.name + ".part")
        shutil.copyfile(source.root / rel, part)
        os.replace(part, target)
    return target


def iter_kept(scan: FolderScan) -> Iterator[FileResult]:
    return (r for r in scan.results if r.reason is None)


def reasons_table(dropped: Counter[str], total: int) -> str:
    """The table `engine data build` prints: files left out by reason."""
    rows = [(r, dropped[r]) for r in REASONS if dropped.get(r)]
    rows += [(r, n) for r, n in sorted(dropped.items()) if r not in REASONS and n]
    width = max([len("reason"), *(len(r) for r, _ in rows)])
    lines = [f"{'reason':<{width}}  files", f"{'-' * width}  -----"]
    lines += [f"{r:<{width}}  {n:>5,}" for r, n in rows]
    lines.append(f"{'left out':<{width}}  {sum(dropped.values()):>5,} of {total:,}")
    return "\n".join(lines)
