#!/usr/bin/env bash
# Run a test command (its arguments) with the temporary files it makes in RAM: TMPDIR is a fresh folder on /dev/shm
# (tmpfs) for it and every process it starts (pytest's tmp_path, the workspaces, the notebooks' throw-away folders).
#
# Why: the tests write thousands of small workspaces (SQLite databases, audit logs, journals, each synced) and delete
# them again. On this machine's disk (ext4 mounted with `discard`) that kernel work was about 15% of the fast tier's
# wall time: `make test-fast` took 124.6 and 125.4 s with them on disk against 106.8 and 106.7 s in RAM, run in turn on
# 7 December. Nothing the tests check depends on the disk: a process killed with `kill -9` leaves its writes in the page
# cache on either, and tmpfs takes direct I/O (Linux 6.6 and later), so the journal's direct appends are still tested.
#
# Left on disk, as before: where TMPDIR is set already (yours is kept), where LIFECYCLE_TEST_TMP=disk, and where
# /dev/shm is not a writable tmpfs with at least 8 GiB free, and as much memory available (LIFECYCLE_TEST_RAM_GIB; the
# whole suite writes about 6 GiB), counted after the stale folders below are gone. The folder goes when the command
# passes; when it fails it is kept for a look (pytest prints the paths), and removed by the next run here that gets as
# far as its look for stale folders (not one with a TMPDIR or LIFECYCLE_TEST_TMP=disk) once no run holds it.
set -uo pipefail

[ -n "${TMPDIR:-}" ] && exec "$@"  # yours, or the folder of a run this one is part of (`make test`'s two halves)

ram_reason() {
  [ "${LIFECYCLE_TEST_TMP:-}" = disk ] && { echo "LIFECYCLE_TEST_TMP=disk"; return; }
  [ -d /dev/shm ] && [ -w /dev/shm ] || { echo "no writable /dev/shm"; return; }
  [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ] || { echo "/dev/shm is not a tmpfs"; return; }
}

# The free space it needs (GiB; tests/test_in_ram.py asks for none: the suite's own folder may fill it meanwhile).
# Looked at once the stale folders are gone: a failed run's kept folder must not send every later run to disk.
room_reason() {
  local need=${LIFECYCLE_TEST_RAM_GIB:-8} kib
  case $need in '' | *[!0-9]*) need=8 ;; esac  # (a number only: $((...)) would evaluate anything else)
  kib=$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 {print $4}')
  [ -n "$kib" ] && [ "$kib" -ge $((need * 1024 * 1024)) ] \
    || { echo "/dev/shm has $((${kib:-0} / 1024 / 1024)) GiB free, not $need"; return; }
  # A tmpfs's size is a cap, not memory set aside (here /dev/shm's 24 GiB is more than the machine's 23), and what it
  # holds is RAM that nothing can reclaim (no swap): the memory must be there too.
  kib=$(awk '$1 == "MemAvailable:" {print $2}' /proc/meminfo 2>/dev/null)
  [ -n "$kib" ] && [ "$kib" -ge $((need * 1024 * 1024)) ] \
    || echo "$((${kib:-0} / 1024 / 1024)) GiB of memory available, not $need"
}

# The command run with its temporary files on disk, saying why ($1); the creation lock let go first if held.
on_disk() {
  [ -n "${making:-}" ] && exec {making}>&-
  echo "in_ram.sh: the tests' temporary files stay on disk: $1" >&2
  shift
  exec "$@"
}

reason=$(ram_reason)
[ -n "$reason" ] && on_disk "$reason" "$@"

# One run at a time from here to its folder held (another's look for folders to remove comes before or after it). The
# lock is in a folder of this user's that no one else can enter: /dev/shm is everyone's, and a lock file there could be
# another user's symbolic link (created by this run wherever it points) or held by them (every run here waiting).
locks=/dev/shm/lifecycle-tests-$(id -u)
mkdir -m 700 "$locks" 2>/dev/null
[ -d "$locks" ] && [ ! -L "$locks" ] && [ -O "$locks" ] || on_disk "$locks is not a folder of this user's" "$@"
exec {making}>>"$locks/lock" && flock "$making"
# Folders that earlier runs kept (a failure) or left (a run killed): gone unless a run still holds its lock. (flock(1)
# opens each, not `exec`: a failed redirection of `exec` ends the script in POSIX mode, and the folder of a run that
# passed meanwhile is gone by then.)
for old in /dev/shm/lifecycle-tests.*; do
  [ -d "$old" ] && [ ! -L "$old" ] && [ -O "$old" ] || continue
  flock -n "$old" rm -rf -- "$old"
done
reason=$(room_reason)
[ -n "$reason" ] && on_disk "$reason" "$@"
dir=$(mktemp -d /dev/shm/lifecycle-tests.XXXXXX) || on_disk "no folder could be made on /dev/shm" "$@"
chmod 1777 "$dir"  # as /tmp: the tests' PostgreSQL cluster runs as the postgres user in a folder of its own in it
exec {held}<"$dir" && flock -n "$held"  # held until this script ends (a later run leaves the folder alone)
exec {making}>&-
echo "in_ram.sh: the tests' temporary files are in $dir (RAM)" >&2
TMPDIR=$dir "$@"
status=$?
if [ "$status" -eq 0 ]; then
  rm -rf "$dir"
else
  echo "in_ram.sh: the tests' temporary files are kept in $dir (RAM) for a look; the next run removes them" >&2
fi
exit "$status"
