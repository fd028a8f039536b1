"""Build the training corpus from music21's bundled scores (offline).

Folk collections in ABC go through the `abc2midi` binary that symusic ships (thousands a
second); polyphonic scores go through music21 in a process pool, with a per-file time limit
because a few (Beethoven quartets) take a minute each. Output lands in the data dir:

    <data>/corpus/midi/<collection>/<piece>.mid
    <data>/corpus/augmented-v<N>/<collection>/<piece>~<copy>.mid   (engine/data/augment.py)
    <data>/corpus/manifest.json   counts, split and the list of pieces (and their copies)

The held-out split is fixed by hashing the piece's id, so it never moves between builds and
one piece never straddles train and validation; an augmented copy takes its piece's split.
Re-running resumes: converted and augmented files are kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import tempfile
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

if TYPE_CHECKING:
    from engine.data.midi_folder import FolderScan

# Collections in ABC: monophonic folk tunes (with abc2midi's guitar-chord accompaniment).
ABC_SUFFIX = ".abc"
# Formats music21 converts to MIDI; roman-numeral analyses (.rntxt) are not music to learn.
SCORE_SUFFIXES = (".mxl", ".krn", ".xml", ".musicxml")
# Collections whose pieces take about a minute each to convert and add little variety.
SKIPPED_COLLECTIONS = frozenset({"beethoven"})
SCORE_TIMEOUT_SECONDS = 20
VALID_PERCENT = 5  # held-out share of pieces
# Augmented copies of every piece that `engine data build` writes beside the piece itself
# (which stays as it is): the plain corpus is a third of what the model trains on.
AUGMENTED_COPIES = 2
MUSIC21 = "music21"  # the name of music21's corpus among the manifest's sources
# README, "Data and licences": the software is BSD, some of its encodings are not for sale.
MUSIC21_LICENCE = (
    "music21 (BSD-3-Clause); some encodings, the Essen collection and the Humdrum ones among "
    "them, are for non-commercial use only"
)
CONVERSION_FAILED = "conversion failed"  # a music21 score that did not convert to MIDI


@dataclass(frozen=True)
class Piece:
    collection: str
    name: str  # unique within its collection
    path: Path  # the converted MIDI file

    @property
    def id(self) -> str:
        return f"{self.collection}/{self.name}"

    @property
    def split(self) -> str:
        return split_of(self.id)


def split_of(piece_id: str) -> str:
    """Stable train/valid assignment by piece id (not by file order or a random state)."""
    digest = hashlib.sha1(piece_id.encode()).digest()
    return "valid" if digest[0] * 100 // 256 < VALID_PERCENT else "train"


def music21_corpus_dir() -> Path:
    import music21

    return Path(music21.__file__).parent / "corpus"


def abc2midi_binary() -> Path:
    import symusic

    path = Path(symusic.__file__).parent / "bin" / "abc2midi"
    if not path.exists():
        raise FileNotFoundError(f"symusic's abc2midi is missing at {path}; reinstall symusic")
    return path


def corpus_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "corpus"


def convert_abc_file(abc_path: Path, out_dir: Path, binary: Path) -> int:
    """Convert every tune of one ABC file; abc2midi names them <stem><X>.mid."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = abc_path.stem
    if any(out_dir.glob(f"{stem}*.mid")):
        return 0  # resumed: this book is done
    with tempfile.TemporaryDirectory() as tmp:
        # abc2midi writes beside its input, so it works on a copy in a scratch dir.
        local = Path(tmp) / abc_path.name
        local.write_bytes(abc_path.read_bytes())
        subprocess.run(
            [str(binary), local.name, "-silent"],
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
            check=False,  # abc2midi exits non-zero on warnings yet writes good files
        )
        made = 0
        for mid in Path(tmp).glob("*.mid"):
            os.replace(mid, out_dir / mid.name)
            made += 1
    return made


def _raise_timeout(signum, frame):  # pragma: no cover - signal handler
    raise TimeoutError


def convert_score_file(score_path: str, out_path: str) -> str | None:
    """Worker: one music21 score to MIDI, or the reason it was skipped."""
    import music21

    signal.signal(signal.SIGALRM, _raise_timeout)
    signal.alarm(SCORE_TIMEOUT_SECONDS)
    try:
        score = music21.converter.parse(score_path)
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        tmp = out_path + ".part"
        score.write("midi", fp=tmp)
        os.replace(tmp, out_path)
        return None
    except TimeoutError:
        return f"took over {SCORE_TIMEOUT_SECONDS}s"
    except Exception as exc:  # music21 raises many types on odd scores; skip them
        return f"{type(exc).__name__}: {exc}"[:200]
    finally:
        signal.alarm(0)


def _score_jobs(
    src: Path, midi_dir: Path, only: Collection[str] | None = None
) -> list[tuple[str, str]]:
    jobs = []
    for path in sorted(src.rglob("*")):
        if path.suffix not in SCORE_SUFFIXES:
            continue
        rel = path.relative_to(src)
        collection = rel.parts[0]
        if collection in SKIPPED_COLLECTIONS or collection.startswith("_"):
            continue
        if only is not None and collection not in only:
            continue
        name = "-".join(rel.with_suffix("").parts[1:]) or rel.stem
        out = midi_dir / collection / f"{name}.mid"
        if not out.exists():
            jobs.append((str(path), str(out)))
    return jobs


def note_fingerprint(midi_path: Path) -> str | None:
    """Hash of the notes (onset, pitch, duration in beats) to find duplicate tunes."""
    import symusic

    try:
        score = symusic.Score(str(midi_path))
    except Exception:
        return None
    return score_fingerprint(score)


def score_fingerprint(score) -> str | None:
    """`note_fingerprint` of a parsed score (None when it has no notes)."""
    tpq = score.ticks_per_quarter or 1
    notes = sorted(
        (n.time * 12 // tpq, n.pitch, n.duration * 12 // tpq)
        for track in score.tracks
        for n in track.notes
    )
    if not notes:
        return None
    return hashlib.sha1(repr(notes).encode()).hexdigest()


def build_corpus(
    data_dir: Path,
    *,
    workers: int | None = None,
    scores: bool = True,
    score_collections: Collection[str] | None = None,
    copies: int = 0,
    midi_dirs: Sequence[Path] = (),
    licences: Sequence[str] = (),
    music21: bool = True,
) -> dict:
    """Convert, dedupe, split, augment and write the manifest; returns the manifest.

    `score_collections` converts only those collections of scores (e.g. {"bach"}: about 400
    polyphonic pieces in a couple of minutes instead of all of them). `copies` augmented
    copies of every piece are written too (engine/data/augment.py; `engine data build` asks for
    AUGMENTED_COPIES, fine-tuning's replay corpus for none). `midi_dirs` are folders of MIDI
    files taken in beside music21's pieces, or instead of them (`music21=False`), each under
    its licence (engine/data/midi_folder.py)."""
    from engine.data.midi_folder import name_sources, scan_source

    out = corpus_dir(data_dir)
    midi_dir = out / "midi"
    midi_dir.mkdir(parents=True, exist_ok=True)
    if not music21 and not midi_dirs:
        raise ValueError("nothing to build: no music21 corpus and no --midi folder")
    taken = [p.name for p in midi_dir.iterdir() if p.is_dir()]
    sources = name_sources(midi_dirs, licences, taken=[*taken, MUSIC21])
    skipped: dict[str, str] = {}
    if music21:
        skipped = _convert_music21(midi_dir, workers, scores, score_collections)
    scans = [scan_source(source, out, workers=workers) for source in sources]
    pieces = _collect_pieces(midi_dir) if music21 else ()
    manifest = write_manifest(out, pieces, skipped, scans)
    if copies:
        manifest = augment_corpus(out, manifest, copies, workers=workers)
    return manifest


def _convert_music21(
    midi_dir: Path,
    workers: int | None,
    scores: bool,
    score_collections: Collection[str] | None,
) -> dict[str, str]:
    """music21's folk books and scores as MIDI files in midi_dir; the scores it skipped."""
    src = music21_corpus_dir()
    binary = abc2midi_binary()
    abc_files = sorted(src.rglob(f"*{ABC_SUFFIX}"))
    for abc in tqdm(abc_files, desc="folk (abc2midi)", unit="book"):
        collection = abc.relative_to(src).parts[0]
        convert_abc_file(abc, midi_dir / collection, binary)

    skipped: dict[str, str] = {}
    if scores:
        jobs = _score_jobs(src, midi_dir, score_collections)
        workers = workers or max(1, (os.cpu_count() or 2))
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(convert_score_file, s, o): s for s, o in jobs}
            for fut in tqdm(as_completed(futures), total=len(futures), desc="scores (music21)"):
                reason = fut.result()
                if reason:
                    skipped[str(Path(futures[fut]).relative_to(src))] = reason
    return skipped


def _collect_pieces(midi_dir: Path) -> Iterable[Piece]:
    for path in sorted(midi_dir.rglob("*.mid")):
        yield Piece(path.parent.name, path.stem, path)


def write_manifest(
    out: Path,
    pieces: Iterable[Piece],
    skipped: dict[str, str],
    scans: Sequence[FolderScan] = (),
) -> dict:
    """Dedupe music21's pieces and the folders' files together, split and list them.

    music21's pieces come first and keep their split by id (the shipped model's held-out set);
    a folder's file is split by the hash of its notes."""
    from engine.data.midi_folder import EMPTY, SAME_BYTES, SAME_NOTES, copy_kept

    seen: dict[str, str] = {}
    seen_bytes: set[str] = set()
    entries: list[dict] = []
    sources: list[dict] = []
    pieces = list(pieces)
    if pieces or not scans:
        dropped: Counter[str] = Counter()
        for piece in tqdm(pieces, desc="dedupe", unit="piece"):
            fingerprint = note_fingerprint(piece.path)
            reason = EMPTY if fingerprint is None else SAME_NOTES if fingerprint in seen else None
            if reason:
                dropped[reason] += 1
                continue
            seen[fingerprint] = piece.id
            entries.append(
                {
                    "id": piece.id,
                    "path": str(piece.path.relative_to(out)),
                    "split": piece.split,
                    "source": MUSIC21,
                }
            )
        if skipped:
            dropped[CONVERSION_FAILED] = len(skipped)
        sources.append(
            {
                "name": MUSIC21,
                "path": "music21 bundled corpus",
                "licence": MUSIC21_LICENCE,
                "files": len(pieces) + len(skipped),
                "kept": len(entries),
                "dropped": dict(dropped),
            }
        )
    for scan in scans:
        dropped = Counter()
        kept = drums = 0
        for result in tqdm(
            scan.results, desc=f"keep {scan.source.name}", unit="file", mininterval=1.0
        ):
            reason = result.reason
            if reason is None:
                if result.bytes_hash in seen_bytes:
                    reason = SAME_BYTES
                elif result.notes_hash in seen:
                    reason = SAME_NOTES
            if reason:
                dropped[reason] += 1
                continue
            piece_id = f"{scan.source.name}/{result.rel}"
            seen_bytes.add(result.bytes_hash)
            seen[result.notes_hash] = piece_id
            path = copy_kept(out, scan.source, result.rel)
            entries.append(
                {
                    "id": piece_id,
                    "path": str(path.relative_to(out)),
                    "split": split_of(result.notes_hash),
                    "source": scan.source.name,
                }
            )
            kept += 1
            drums += result.drums
        sources.append(
            {
                "name": scan.source.name,
                "path": str(scan.source.root.resolve()),
                "licence": scan.source.licence,
                "files": len(scan.results),
                "kept": kept,
                "dropped": dict(dropped),
                "with_drums": drums,
            }
        )
    counts: dict[str, dict[str, int]] = {}
    for e in entries:
        coll = e["id"].split("/")[0]
        counts.setdefault(coll, {"train": 0, "valid": 0})[e["split"]] += 1
    dropped_total: Counter[str] = Counter()
    for source in sources:
        dropped_total.update(source["dropped"])
    manifest = {
        "source": " + ".join(
            "music21 bundled corpus" if s["name"] == MUSIC21 else f"{s['name']} (MIDI folder)"
            for s in sources
        ),
        "sources": sources,
        "valid_percent": VALID_PERCENT,
        "pieces": len(entries),
        "train": sum(e["split"] == "train" for e in entries),
        "valid": sum(e["split"] == "valid" for e in entries),
        "duplicates_removed": dropped_total[SAME_NOTES] + dropped_total[SAME_BYTES],
        "empty_removed": dropped_total[EMPTY],
        "dropped": dict(dropped_total),
        "skipped": skipped,
        "collections": counts,
        "entries": entries,
    }
    _save_manifest(out, manifest)
    return manifest


def _save_manifest(out: Path, manifest: dict) -> None:
    tmp = out / "manifest.json.part"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, out / "manifest.json")


def augmented_dir(out: Path) -> Path:
    from engine.data.augment import AUGMENT_VERSION

    return Path(out) / f"augmented-v{AUGMENT_VERSION}"


def augment_file(source: str, target: str, piece_id: str, copy: int) -> bool:
    """Worker: write one augmented copy (kept if already there); False if it has no notes."""
    from symusic import Score

    from engine.data.augment import augment

    if Path(target).exists():
        return True
    try:
        score = augment(Score(source), piece_id, copy)
    except Exception:  # a file symusic cannot read again is left out, as in tokenizing
        return False
    if not score.note_num():
        return False
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    score.dump_midi(target + ".part")
    os.replace(target + ".part", target)
    return True


def augment_corpus(out: Path, manifest: dict, copies: int, *, workers: int | None = None) -> dict:
    """Write `copies` augmented copies of every piece and list them in the manifest."""
    from engine.data.augment import AUGMENT_VERSION

    if copies < 0:
        raise ValueError(f"copies must be 0 or more (received {copies})")
    folder = augmented_dir(out)
    jobs = []
    for e in manifest["entries"]:
        collection, name = e["id"].split("/", 1)
        for copy in range(1, copies + 1):
            target = folder / collection / f"{name}~{copy}.mid"
            jobs.append(
                (
                    {
                        "id": f"{e['id']}~{copy}",
                        "source": e["id"],
                        "path": str(target.relative_to(out)),
                        "split": e["split"],
                    },
                    (str(out / e["path"]), str(target), e["id"], copy),
                )
            )
    entries = []
    with ProcessPoolExecutor(max_workers=workers or max(1, os.cpu_count() or 2)) as pool:
        done = (
            pool.map(augment_file, *zip(*(args for _, args in jobs), strict=True), chunksize=64)
            if jobs
            else []
        )
        for (entry, _), ok in tqdm(
            zip(jobs, done, strict=True), total=len(jobs), desc="augment", unit="copy"
        ):
            if ok:
                entries.append(entry)
    manifest["augmented"] = {
        "version": AUGMENT_VERSION,
        "copies": copies,
        "pieces": len(entries),
        "train": sum(e["split"] == "train" for e in entries),
        "valid": sum(e["split"] == "valid" for e in entries),
        "entries": entries,
    }
    _save_manifest(out, manifest)
    return manifest


def load_manifest(data_dir: Path) -> dict:
    path = corpus_dir(data_dir) / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"no corpus at {path.parent}: run `python -m engine data build`")
    return json.loads(path.read_text())


def split_paths(data_dir: Path, split: str) -> list[Path]:
    """The pieces of a split as converted (no augmented copies)."""
    root = corpus_dir(data_dir)
    return [root / e["path"] for e in load_manifest(data_dir)["entries"] if e["split"] == split]


def augmented_paths(data_dir: Path, split: str) -> list[Path]:
    """The augmented copies of a split's pieces (none if the corpus was built without)."""
    root = corpus_dir(data_dir)
    entries = load_manifest(data_dir).get("augmented", {}).get("entries", [])
    return [root / e["path"] for e in entries if e["split"] == split]
