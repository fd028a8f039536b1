#!/usr/bin/env bash
# Install what Motif needs from the OS, only when it is missing, and say what was done.
# Needs: libfluidsynth3 (the synthesiser) and a General MIDI soundfont (FluidR3_GM is best);
# libopus0 for the clips (it comes with libfluidsynth3 through libsndfile1 on Debian 12);
# redis-server for the job queue's tests and for running engine workers (a bot with the
# embedded engine does not use it).
set -euo pipefail

need=()
if ! ldconfig -p 2>/dev/null | grep -q 'libfluidsynth\.so\.3'; then
  need+=(libfluidsynth3)
fi
if ! ldconfig -p 2>/dev/null | grep -q 'libopus\.so\.0'; then
  need+=(libopus0)
fi
if [ -z "${MOTIF_SOUNDFONT:-}" ] && [ ! -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ]; then
  need+=(fluid-soundfont-gm)
fi

if ! command -v redis-server >/dev/null 2>&1 && [ ! -x /usr/bin/redis-server ]; then
  need+=(redis-server)
fi

if [ ${#need[@]} -eq 0 ]; then
  echo "system: libfluidsynth3, libopus0, a GM soundfont and redis-server are present"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "system: missing ${need[*]}; this machine has no apt-get." >&2
  echo "  install FluidSynth 2.x (the shared library libfluidsynth.so.3) and a General MIDI" >&2
  echo "  soundfont (FluidR3_GM.sf2), then point MOTIF_SOUNDFONT at the .sf2 file;" >&2
  echo "  install Redis 6.2 or later (redis-server on PATH) for the job queue." >&2
  exit 1
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "system: installing ${need[*]} with apt-get"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
echo "system: installed ${need[*]}"
if [[ " ${need[*]} " == *" redis-server "* ]]; then
  # Debian's package may start a system-wide service on port 6379; the tests start their own.
  echo "system: the tests start their own redis-server; Debian's service is not needed by them"
fi
