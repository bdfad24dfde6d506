#!/usr/bin/env bash
# A Debian sid chroot with the newest QGIS that Debian ships, to run the test suite on it.
#   tools/qgis_chroot.sh ensure            build the chroot if missing, unfinished or older than 7 days;
#                                          install packages added to the list since it was built
#   tools/qgis_chroot.sh run -- CMD ARGS   run CMD in the chroot (repository at the same path, cwd kept)
#   tools/qgis_chroot.sh info              versions of QGIS, Python, GDAL, numpy, pyarrow, ... in the chroot
# Runs as root on Debian. Settings (environment):
#   GEOEMBED_CHROOT_DIR    where the chroot lives (default /var/cache/geoembed/sid-chroot, outside the clone)
#   GEOEMBED_CHROOT_BINDS  more host folders to mount in the chroot at the same path, ':'-separated
#   GEOEMBED_CHROOT_MAX_AGE_DAYS  age after which ensure rebuilds (default 7)
#   GEOEMBED_CHROOT_PYTHONPATH    put before the chroot venv's site-packages in PYTHONPATH inside `run`
#                                 (the caller's PYTHONPATH is not passed: it names host venvs)
set -euo pipefail

SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)/$(basename "${BASH_SOURCE[0]}")"
REPO="$(cd "$(dirname "$SELF")/.." && pwd -P)"
CHROOT="${GEOEMBED_CHROOT_DIR:-/var/cache/geoembed/sid-chroot}"
CHROOT="${CHROOT%/}"
MIRROR="http://deb.debian.org/debian"
SUITE="sid"
MAX_AGE_DAYS="${GEOEMBED_CHROOT_MAX_AGE_DAYS:-7}"
LOG="$CHROOT.build.log"               # debootstrap's and apt's output of the last build
VENV="/opt/geoembed-venv"
MARKER=".geoembed-chroot"            # written first: this tree is ours and may be deleted
STAMP=".geoembed-chroot-complete"    # written last: the tree is finished and usable
# proj-bin: pyproj in a venv finds PROJ's data through the `proj` program; git: tools/package.py lists files with it.
# python3-distributed: the CLUSTER parameter's dask.distributed (it brings python3-dask).
APT_PACKAGES="qgis python3-qgis qgis-providers python3-rasterio python3-geopandas python3-sklearn python3-requests
  python3-pyarrow python3-pytest python3-venv proj-bin git python3-distributed"
# pip in the chroot (Python 3.14) rejects this network's certificate chain, so the host's pip downloads these.
WHEELS=("pytest-qgis>=5,<6" "ruff==0.8.6")
# sid's Release file may be past its Valid-Until date on the mirror used here.
APT_OPTS=(-o Acquire::Check-Valid-Until=false -o Acquire::Retries=3 -o Dpkg::Use-Pty=0)
TRIES=3
CHROOT_PATH="$VENV/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

say() { echo "qgis_chroot: $*" >&2; }
die() { say "error: $*"; exit 1; }

usage() {
  sed -n '2,12p' "$SELF" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# Run a command up to $TRIES times: network hiccups on the mirror or PyPI should not fail a CI run.
retry() {
  local try=1
  until "$@"; do
    [ "$try" -lt "$TRIES" ] || { say "giving up after $TRIES tries: $*"; return 1; }
    say "failed (try $try of $TRIES), retrying in $((try * 20)) s: $*"
    sleep $((try * 20))
    try=$((try + 1))
  done
}

check_settings() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, mount and chroot need it)"
  case "$CHROOT" in
    /*/*) ;;
    *) die "GEOEMBED_CHROOT_DIR must be an absolute path below a folder, not '$CHROOT'" ;;
  esac
  case "$CHROOT/" in
    "$REPO"/*) die "GEOEMBED_CHROOT_DIR must lie outside the repository ($REPO)" ;;
  esac
}

# ---------------------------------------------------------------------------------------------- mounts and removal

# Mount points at or below a folder, as this process sees them (deepest first).
mounts_under() {
  awk -v dir="$1" '{ mp = $5; gsub(/\\040/, " ", mp); if (mp == dir || index(mp, dir "/") == 1) print mp }' \
    /proc/self/mountinfo | sort -r
}

MOUNTED=()
bind() {  # bind [ro] SOURCE TARGET; remembered so that unmount_all undoes it
  local ro=""
  if [ "$1" = ro ]; then ro=1; shift; fi
  mkdir -p "$2"
  mount --bind "$1" "$2"
  MOUNTED+=("$2")
  if [ -n "$ro" ]; then mount -o remount,bind,ro "$2"; fi
}

mount_system() {  # /proc, /sys and /dev of the host inside the chroot at $1
  bind /proc "$1/proc"
  bind /sys "$1/sys"
  bind /dev "$1/dev"
  bind /dev/pts "$1/dev/pts"
  if [ -d /dev/shm ]; then bind /dev/shm "$1/dev/shm"; fi
}

unmount_all() {
  local i
  for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
    umount "${MOUNTED[i]}" 2>/dev/null || umount -l "${MOUNTED[i]}" 2>/dev/null || say "could not unmount ${MOUNTED[i]}"
  done
  MOUNTED=()
}

# The mounts of `run` and of a build live in a private mount namespace where the system allows it: they vanish
# with the last process, even one killed with SIGKILL. The EXIT trap unmounts them in either case.
NAMESPACE=()
if unshare --mount --propagation private true 2>/dev/null; then NAMESPACE=(unshare --mount --propagation private --); fi

# Run a command as a child and pass on TERM and HUP (a CI timeout, a closed terminal), so that it does not outlive
# this script; Ctrl-C reaches it from the terminal. `group` sends them to its whole process group (a build: apt,
# dpkg, debootstrap); `process` to the command only (it keeps the terminal, for `run -- bash`). The child does not
# inherit fd 9, the lock of `run`, so that nothing it leaves running holds the lock.
supervise() {
  local mode="$1" child status
  shift
  if [ "$mode" = group ]; then
    setsid "$@" </dev/null 9>&- &
    child=$!
    trap "kill -TERM -- -$child 2>/dev/null || true" INT TERM HUP
  else
    "$@" <&0 9>&- &
    child=$!
    trap "kill -TERM $child 2>/dev/null || true" TERM HUP
    trap ':' INT
  fi
  while :; do
    if wait "$child"; then status=0; else status=$?; fi
    kill -0 "$child" 2>/dev/null || break
  done
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap - HUP
  return "$status"
}

# Delete a chroot tree of ours; never through a mount point (a bind-mounted /dev or repository would go with it).
remove_tree() {
  local dir="$1" mp
  [ -e "$dir" ] || return 0
  case "$dir" in
    "$CHROOT" | "$CHROOT".*) ;;
    *) die "refusing to delete $dir: not a chroot folder of this script" ;;
  esac
  [ -e "$dir/$MARKER" ] || die "$dir exists but was not made by this script; remove it by hand or set GEOEMBED_CHROOT_DIR"
  while read -r mp; do
    [ -n "$mp" ] || continue
    say "unmounting $mp left by an interrupted run"
    umount -l "$mp" || true
  done < <(mounts_under "$dir")
  [ -z "$(mounts_under "$dir")" ] || die "$dir still has mounts; unmount them, then retry"
  rm -rf --one-file-system -- "$dir"
}

# Run a command in the chroot at $1 as root with a clean environment.
chroot_exec() {
  local root="$1"
  shift
  env -i PATH="$CHROOT_PATH" HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive /usr/sbin/chroot "$root" "$@"
}

# ---------------------------------------------------------------------------------------------- ensure

stamp_epoch() {  # seconds since the epoch when the chroot at $1 was completed, or nothing
  sed -n 's/^completed_epoch=//p' "$1/$STAMP" 2>/dev/null || true
}

is_fresh() {
  local built
  built="$(stamp_epoch "$CHROOT")"
  [ -n "$built" ] && [ $(($(date +%s) - built)) -lt $((MAX_AGE_DAYS * 86400)) ]
}

host_debootstrap() {
  command -v debootstrap >/dev/null && return 0
  say "installing debootstrap on the host"
  retry apt-get "${APT_OPTS[@]}" update -q
  retry env DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" install -y -q --no-install-recommends debootstrap
}

host_pip() {
  if ! python3 -m pip --version >/dev/null 2>&1; then
    say "installing python3-pip on the host (to download the chroot's wheels)"
    retry env DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" install -y -q --no-install-recommends python3-pip
  fi
  python3 -m pip "$@"
}

ensure() {
  check_settings
  mkdir -p "$(dirname "$CHROOT")"
  exec 8>"$CHROOT.build.lock"
  if ! flock -n 8; then
    say "another ensure is building or checking the chroot; waiting for it (lock $CHROOT.build.lock)"
    flock -w 3600 8 || die "waited an hour for the other build; giving up"
  fi

  local built missing
  if is_fresh; then
    built="$(stamp_epoch "$CHROOT")"
    missing="$(missing_packages "$CHROOT")"
    if [ -n "$missing" ]; then
      say "installing packages added to the list since the chroot was built:$missing"
      # shellcheck disable=SC2086  # the package list is meant to split
      supervise group "${NAMESPACE[@]}" "$SELF" _install "$CHROOT" $missing
    fi
    say "chroot $CHROOT is ready (built $(date -u -d "@$built" '+%F %H:%M UTC'), rebuilt after $MAX_AGE_DAYS days)"
    return 0
  fi
  if [ -e "$CHROOT/$STAMP" ]; then
    say "chroot $CHROOT is older than $MAX_AGE_DAYS days: building a new one"
  elif [ -e "$CHROOT" ]; then
    say "chroot $CHROOT is unfinished: building a new one"
  else
    say "no chroot at $CHROOT: building one (Debian $SUITE, QGIS; 2 to 5 minutes)"
  fi

  local leftover
  for leftover in "$CHROOT".new.* "$CHROOT".old.*; do
    [ -e "$leftover" ] || continue
    say "removing $leftover left by an interrupted build"
    remove_tree "$leftover"
  done

  host_debootstrap
  : >"$LOG"
  local new="$CHROOT.new.$$" started
  started="$(date +%s)"
  trap 'status=$?; [ -e "'"$new"'" ] && { say "build failed or interrupted: removing '"$new"'"; remove_tree "'"$new"'"; }; exit $status' EXIT
  supervise group "${NAMESPACE[@]}" "$SELF" _build "$new"
  [ -n "$(stamp_epoch "$new")" ] || die "the build of $new ended without its completion stamp"

  # Swap the finished tree in; wait until no `run` uses the old one.
  exec 9>"$CHROOT.use.lock"
  if ! flock -n -x 9; then
    say "waiting for running commands in the old chroot to finish before replacing it"
    flock -w 3600 -x 9 || die "waited an hour for commands in the old chroot to finish; the old chroot stays"
  fi
  local old=""
  if [ -e "$CHROOT" ]; then
    old="$CHROOT.old.$$"
    mv -- "$CHROOT" "$old"
  fi
  mv -- "$new" "$CHROOT"
  trap - EXIT
  flock -u 9
  if [ -n "$old" ]; then remove_tree "$old"; fi
  say "chroot $CHROOT ready after $(($(date +%s) - started)) s"
}

# Inside a private mount namespace: debootstrap the tree at $1, install QGIS and the venv, stamp it.
build_tree() {
  local root="$1" arch
  arch="$(dpkg --print-architecture)"
  trap unmount_all EXIT

  local try=1
  while :; do
    rm -rf --one-file-system -- "$root"
    mkdir -p "$root"
    echo "geoembed test chroot, made by tools/qgis_chroot.sh" >"$root/$MARKER"
    say "debootstrap $SUITE ($arch) from $MIRROR into $root"
    if debootstrap --variant=minbase --arch="$arch" "$SUITE" "$root" "$MIRROR" >>"$LOG" 2>&1; then
      break
    fi
    tail -n 20 "$LOG" >&2
    [ "$try" -lt "$TRIES" ] || die "debootstrap failed $TRIES times (log above)"
    say "debootstrap failed (try $try of $TRIES), retrying in $((try * 20)) s"
    sleep $((try * 20))
    try=$((try + 1))
  done
  echo "geoembed test chroot, made by tools/qgis_chroot.sh" >"$root/$MARKER"

  # No services started by package scripts, no docs or man pages, apt settings for later manual use too.
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 755 "$root/usr/sbin/policy-rc.d"
  printf 'path-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\npath-exclude /usr/share/man/*\npath-exclude /usr/share/info/*\n' \
    >"$root/etc/dpkg/dpkg.cfg.d/01-geoembed-nodoc"
  printf 'Acquire::Check-Valid-Until "false";\nAcquire::Retries "3";\nAPT::Install-Recommends "false";\n' \
    >"$root/etc/apt/apt.conf.d/99-geoembed"
  echo "deb $MIRROR $SUITE main" >"$root/etc/apt/sources.list"
  cat /etc/resolv.conf >"$root/etc/resolv.conf"

  mount_system "$root"
  say "installing QGIS and the Python packages in the chroot"
  retry chroot_exec "$root" apt-get "${APT_OPTS[@]}" update -q
  # shellcheck disable=SC2086  # the package list is meant to split
  retry chroot_exec "$root" apt-get "${APT_OPTS[@]}" install -y -q --no-install-recommends $APT_PACKAGES >>"$LOG" 2>&1 \
    || { tail -n 30 "$LOG" >&2; die "apt-get install failed in the chroot (log above, whole log in $LOG)"; }
  chroot_exec "$root" apt-get clean

  say "venv $VENV with ${WHEELS[*]}"
  local wheels="$root/tmp/geoembed-wheels"
  mkdir -p "$wheels"
  retry host_pip download --quiet --no-deps --only-binary=:all: --python-version "$(chroot_python_version "$root")" \
    -d "$wheels" "${WHEELS[@]}"
  chroot_exec "$root" /usr/bin/python3 -m venv --system-site-packages "$VENV"
  chroot_exec "$root" "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-index \
    --find-links /tmp/geoembed-wheels "${WHEELS[@]}"
  rm -rf "$wheels"
  # Debian's /usr/bin/pytest runs the system python, which does not see the venv's pytest-qgis.
  printf '#!/bin/sh\nexec %s/bin/python -m pytest "$@"\n' "$VENV" >"$root$VENV/bin/pytest"
  chmod 755 "$root$VENV/bin/pytest"

  say "checking the chroot"
  chroot_exec "$root" env QT_QPA_PLATFORM=offscreen "$VENV/bin/python" -c \
    'import qgis.core, osgeo.gdal, numpy, pyarrow, sklearn, rasterio, geopandas, requests, pytest, pytest_qgis, distributed' \
    || die "the chroot's Python cannot import its packages"
  chroot_exec "$root" "$VENV/bin/ruff" --version >/dev/null || die "ruff does not run in the chroot"

  unmount_all
  printf 'completed_epoch=%s\ncompleted=%s\nsuite=%s\nmirror=%s\n' "$(date +%s)" "$(date -u '+%F %T UTC')" "$SUITE" "$MIRROR" \
    >"$root/$STAMP"
}

# Packages of APT_PACKAGES not installed in the chroot at $1 (a space before each), or nothing.
missing_packages() {
  local pkg missing=""
  for pkg in $APT_PACKAGES; do
    chroot_exec "$1" dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
      || missing="$missing $pkg"
  done
  echo "$missing"
}

# Inside a private mount namespace: install packages into the finished chroot at $1 (a cached chroot gets a
# package added to the list without waiting for its weekly rebuild). Commands running in it may go on: this only
# adds packages (and the newer versions of dependencies they need), the way a rebuild would have.
install_into() {
  local root="$1"
  shift
  trap unmount_all EXIT
  mount_system "$root"
  cat /etc/resolv.conf >"$root/etc/resolv.conf"
  : >>"$LOG"
  retry chroot_exec "$root" apt-get "${APT_OPTS[@]}" update -q >>"$LOG" 2>&1 \
    || { tail -n 20 "$LOG" >&2; die "apt-get update failed in the chroot (log above, whole log in $LOG)"; }
  retry chroot_exec "$root" apt-get "${APT_OPTS[@]}" install -y -q --no-install-recommends "$@" >>"$LOG" 2>&1 \
    || { tail -n 30 "$LOG" >&2; die "apt-get install $* failed in the chroot (log above, whole log in $LOG)"; }
  chroot_exec "$root" apt-get clean
  unmount_all
  [ -z "$(missing_packages "$root")" ] || die "packages still missing in the chroot after apt-get install: $*"
}

chroot_python_version() {
  chroot_exec "$1" /usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])'
}

# ---------------------------------------------------------------------------------------------- run and info

require_chroot() {
  check_settings
  [ -n "$(stamp_epoch "$CHROOT")" ] || die "no finished chroot at $CHROOT; run: tools/qgis_chroot.sh ensure"
}

run() {
  require_chroot
  local cwd="$1"
  shift
  [ $# -gt 0 ] || die "run needs a command: tools/qgis_chroot.sh run -- CMD ARGS"
  # A shared lock: ensure does not swap the chroot away while commands run in it.
  exec 9>"$CHROOT.use.lock"
  flock -s -w 3600 9 || die "the chroot is being replaced and that took over an hour"
  supervise process "${NAMESPACE[@]}" "$SELF" _run "$cwd" "$@"
}

# Variables that reach the command: the test settings of the caller, never its PATH or Python paths
# (they name host folders that mean nothing, or something else, in the chroot).
passed_environment() {
  local name
  while IFS= read -r name; do
    case "$name" in
      QGIS_* | GEOEMBED_* | PYTEST_* | CI | TERM | NO_COLOR | FORCE_COLOR | COLUMNS | TZ) printf '%s=%s\0' "$name" "${!name}" ;;
    esac
  done < <(compgen -e)
}

# Inside a private mount namespace: mount the system folders and the repository, run the command, unmount.
run_inside() {
  local cwd="$1"
  shift
  trap unmount_all EXIT
  mount_system "$CHROOT"
  cat /etc/resolv.conf >"$CHROOT/etc/resolv.conf"

  # The repository (and ../shared with the real data files, read-only) at the same path as on the host.
  local binds=("$REPO") path
  bind "$REPO" "$CHROOT$REPO"
  if [ -d "$REPO/../shared" ]; then
    binds+=("$(cd "$REPO/../shared" && pwd -P)")
    bind ro "${binds[-1]}" "$CHROOT${binds[-1]}"
  fi
  local extra
  IFS=: read -r -a extra <<<"${GEOEMBED_CHROOT_BINDS:-}"
  for path in "${extra[@]}"; do
    [ -n "$path" ] || continue
    [ -d "$path" ] || die "GEOEMBED_CHROOT_BINDS names $path, which is not a folder"
    path="$(cd "$path" && pwd -P)"
    binds+=("$path")
    bind "$path" "$CHROOT$path"
  done

  local inside=""
  for path in "${binds[@]}"; do
    case "$cwd/" in "$path"/*) inside=1 ;; esac
  done
  [ -n "$inside" ] || [ "$cwd" = / ] \
    || die "the current folder $cwd is not mounted in the chroot; run from the repository or add it to GEOEMBED_CHROOT_BINDS"

  mkdir -p "$CHROOT/run/user/0"
  chmod 700 "$CHROOT/run/user/0"
  local purelib environment=()
  purelib="$(chroot_exec "$CHROOT" "$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  local var
  while IFS= read -r -d '' var; do environment+=("$var"); done < <(passed_environment)
  local status=0
  # PYTHONPATH: qgis_process embeds the system Python; it sees the venv's packages only through it (as in dev.sh).
  local pythonpath="${GEOEMBED_CHROOT_PYTHONPATH:+$GEOEMBED_CHROOT_PYTHONPATH:}$purelib"
  supervise process env -i "${environment[@]}" PATH="$CHROOT_PATH" HOME=/root LANG=C.UTF-8 QT_QPA_PLATFORM=offscreen \
    XDG_RUNTIME_DIR=/run/user/0 PYTHONPATH="$pythonpath" VIRTUAL_ENV="$VENV" \
    /usr/sbin/chroot "$CHROOT" /bin/sh -c 'cd "$1" || exit 125; shift; exec "$@"' qgis_chroot "$cwd" "$@" || status=$?
  exit "$status"
}

info() {
  require_chroot
  sed -n 's/^completed=/chroot built /p' "$CHROOT/$STAMP"
  run / python -c '
import importlib.metadata as metadata, platform
from osgeo import gdal
from qgis.core import Qgis
import numpy, pyarrow, sklearn, pytest
print("QGIS", Qgis.QGIS_VERSION)
print("Python", platform.python_version())
print("GDAL", gdal.__version__)
print("numpy", numpy.__version__)
print("pyarrow", pyarrow.__version__)
print("scikit-learn", sklearn.__version__)
print("pytest", pytest.__version__)
print("pytest-qgis", metadata.version("pytest-qgis"))
print("ruff", metadata.version("ruff"))
'
}

main() {
  case "${1:-}" in
    ensure) ensure ;;
    run)
      shift
      if [ "${1:-}" = "--" ]; then shift; fi
      run "$(pwd -P)" "$@"
      ;;
    info) info ;;
    _build) build_tree "$2" ;;
    _install) shift && install_into "$@" ;;
    _run) shift && run_inside "$@" ;;
    *) usage ;;
  esac
}

# A signal ends the script through exit, so that the EXIT traps unmount and clean up.
trap 'exit 130' INT
trap 'exit 143' TERM
# One line, read whole before it runs: editing this file while it runs cannot make bash run the edited text.
main "$@"; exit $?
