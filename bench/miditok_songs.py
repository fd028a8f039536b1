"""Real songs like the ones members upload, for the out-of-domain bench: the test MIDI files of
MidiTok's source distribution on PyPI (pop and rock arrangements with drums, bass, guitars,
synths, brass and sax; Maestro piano performances; POP909 pop piano).

The archive is downloaded once into `<data dir>/bench/` (gitignored: these are other people's
arrangements, never commit them), checked against its SHA-256 and read in place. Offline,
`SongsUnavailable` says where to put it.
"""

from __future__ import annotations

import hashlib
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from symusic import Score

from engine.api.config import EngineSettings

# MidiTok 3.1.0's sdist, pinned (PyPI's file address carries its BLAKE2b-256, checked once
# by hand; the SHA-256 below is checked on every download).
SDIST_URL = (
    "https://files.pythonhosted.org/packages/e4/5b/"
    "e415ac51aa43536d1af43f4e8ae3a4cb8eddf7d4f19e3e20f22c353b77be/miditok-3.1.0.tar.gz"
)
SDIST_SHA256 = "1f905b9be87a57dac28a86c1c7a7565674a5d2e57b2f650bc2fea97792f6bdef"
SDIST_ROOT = "miditok-3.1.0/tests"
DOWNLOAD_TIMEOUT = 60  # seconds; the archive is 4 MB


class SongsUnavailable(RuntimeError):
    """The archive is missing and cannot be downloaded; the message says what to do."""


@dataclass(frozen=True)
class Song:
    name: str
    file: str  # under SDIST_ROOT
    start_bar: int  # the seed is the 8 bars from here, the reference the bars after them
    what: str


# Six band arrangements and two piano pieces. A band's start bar is where the most of its
# instruments play in every one of the seed's 8 bars (the earliest such bar, found by a scan
# of each song, then fixed here); the piano pieces start at bar 8, past their openings.
SONGS = (
    Song(
        "All The Small Things",
        "MIDIs_multitrack/All The Small Things.mid",
        9,
        "punk rock: distorted guitars, bass, drums",
    ),
    Song(
        "Funkytown",
        "MIDIs_multitrack/Funkytown.mid",
        20,
        "disco: synth bass and lead, agogo, trumpet, drums",
    ),
    Song(
        "I Gotta Feeling",
        "MIDIs_multitrack/I Gotta Feeling.mid",
        120,
        "dance pop: synth bass and lead, strings, flute, drums",
    ),
    Song(
        "Mr. Blue Sky",
        "MIDIs_multitrack/Mr. Blue Sky.mid",
        26,
        "pop: piano, bass, strings, flute, drums",
    ),
    Song(
        "Shut Up",
        "MIDIs_multitrack/Shut Up.mid",
        33,
        "pop rock: guitars, bass, trombone, soprano sax, synths, drums",
    ),
    Song(
        "What a Fool Believes",
        "MIDIs_multitrack/What a Fool Believes.mid",
        81,
        "soft rock: piano, bass, alto sax, synth lead, pad, drums",
    ),
    Song(
        "Maestro 1",
        "MIDIs_one_track/Maestro_1.mid",
        8,
        "performed classical piano (Maestro): unquantised, dynamic",
    ),
    Song("POP909 191", "MIDIs_one_track/POP909_191.mid", 8, "pop piano arrangement (POP909)"),
)


def archive_path() -> Path:
    return EngineSettings.from_env().data_dir / "bench" / SDIST_URL.rsplit("/", 1)[1]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def archive() -> Path:
    """The verified archive, downloaded first when it is not in the data dir."""
    path = archive_path()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".part")
        try:
            with urllib.request.urlopen(SDIST_URL, timeout=DOWNLOAD_TIMEOUT) as response:
                partial.write_bytes(response.read())
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise SongsUnavailable(
                f"MidiTok's test MIDI files could not be downloaded ({exc}). On a machine "
                f"with internet access download {SDIST_URL} and copy it to {path} "
                f"(SHA-256 {SDIST_SHA256}), then run the bench again"
            ) from None
        partial.rename(path)
    if (digest := sha256(path)) != SDIST_SHA256:
        raise SongsUnavailable(
            f"{path} is not MidiTok 3.1.0's source archive (SHA-256 "
            f"{digest}, expected {SDIST_SHA256}): delete it and run again"
        )
    return path


def read_songs(songs: tuple[Song, ...] = SONGS) -> dict[Song, Score]:
    with tarfile.open(archive()) as tar:
        return {
            song: Score.from_midi(tar.extractfile(f"{SDIST_ROOT}/{song.file}").read())
            for song in songs
        }
