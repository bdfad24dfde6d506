#!/usr/bin/env bash
# GeoEmbed developer entry point (Debian bookworm, run as root for the first set-up).
#   ./dev.sh demo    set up, then load the built-in AEF sample through qgis_process.bin
#   ./dev.sh test    set up, then lint and run every test tier
#   ./dev.sh setup   only set up
#   ./dev.sh package write build/geoembed-<version>.zip, the plugin as QGIS installs it (tools/package.py)
set -euo pipefail
cd "$(dirname "$0")"
ROOT="$PWD"
APT_PACKAGES="qgis python3-qgis qgis-providers xvfb python3-rasterio python3-geopandas python3-sklearn python3-requests python3-venv python3-pip python3-distributed"
VENV="$ROOT/.venv"

setup() {
  local missing=""
  for pkg in $APT_PACKAGES; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
  done
  if [ -n "$missing" ]; then
    echo "Installing Debian packages:$missing"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y $APT_PACKAGES
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    /usr/bin/python3 -m venv --system-site-packages "$VENV"
  fi
  if ! "$VENV/bin/python" -c "import pyarrow, pytest, pytest_qgis" 2>/dev/null || [ requirements/dev.txt -nt "$VENV/.installed" ]; then
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r requirements/dev.txt
    touch "$VENV/.installed"
  fi
  link_plugin
}

# The repository root is the plugin; QGIS and Python find it as `geoembed` through build/plugins/geoembed.
link_plugin() {
  mkdir -p "$ROOT/build/plugins"
  [ -L "$ROOT/build/plugins/geoembed" ] || ln -s "$ROOT" "$ROOT/build/plugins/geoembed"
}

# What qgis_process.bin needs to see the plugin and the venv's pyarrow, headless and with its own profile.
qgis_env() {
  export QT_QPA_PLATFORM=offscreen
  export QGIS_PLUGINPATH="$ROOT/build/plugins"
  export QGIS_CUSTOM_CONFIG_PATH="$ROOT/build/qgis-profile"
  export XDG_RUNTIME_DIR="$ROOT/build/xdg-runtime"
  mkdir -p "$QGIS_CUSTOM_CONFIG_PATH" "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
  PYTHONPATH="$ROOT/build/plugins:$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')${PYTHONPATH:+:$PYTHONPATH}"
  export PYTHONPATH
}

enable_plugin() {
  # "plugins enable" exits 1 when the plugin is already enabled, so ask first.
  qgis_process.bin plugins 2>/dev/null | grep -q '^\* geoembed$' || qgis_process.bin plugins enable geoembed
}

demo() {
  qgis_env
  local out="$ROOT/build/demo"
  mkdir -p "$out"
  "$VENV/bin/python" -m tests.fixtures.aef "$ROOT/build/sample/aef" >/dev/null
  enable_plugin
  # An extent across the 31N/32N zone boundary at 6°E: two UTM zones, three tiles, one grid.
  qgis_process.bin run geoembed:load -- \
    PRODUCT=aef SOURCE="$ROOT/build/sample/aef" YEAR=2024 \
    EXTENT="5.975,6.02,44.99,45.02 [EPSG:4326]" \
    OUTPUT="$out/aef_2024.tif" QUICKLOOK="$out/aef_2024.png"
  echo
  echo "Wrote $out/aef_2024.tif (64 Float32 bands A00..A63, north-up) and the quicklook $out/aef_2024.png"
}

# Every tier, once on the host's QGIS (3.22, bookworm) and once on the newest QGIS Debian ships (sid, in a cached
# chroot: tools/qgis_chroot.sh). All tiers run even when one fails; the summary names the failures.
FAILED=()

tier() {  # tier LABEL CMD...: run one tier, remember a failure
  echo
  echo "=== $1"
  "${@:2}" || FAILED+=("$1")
}

host_tiers() {
  local qgis
  qgis="$("$VENV/bin/python" -c 'from qgis.core import Qgis; print(Qgis.QGIS_VERSION)' 2>/dev/null || echo '?')"
  tier "unit + e2e, QGIS $qgis (host)" "$VENV/bin/python" -m pytest -p no:qgis tests/unit tests/e2e
  tier "pytest-qgis, QGIS $qgis (host)" "$VENV/bin/python" -m pytest tests/qgis
  tier "real data, QGIS $qgis (host)" "$VENV/bin/python" -m pytest tests/realdata
}

in_sid() {  # the command in the sid chroot, with the plugin and a QGIS profile of its own
  QGIS_CUSTOM_CONFIG_PATH="$ROOT/build/qgis-profile-sid" GEOEMBED_CHROOT_PYTHONPATH="$ROOT/build/plugins" \
    tools/qgis_chroot.sh run -- "$@"
}

sid_tiers() {
  if ! tools/qgis_chroot.sh ensure; then
    FAILED+=("building the Debian sid chroot (newest QGIS)")
    return
  fi
  mkdir -p "$ROOT/build/qgis-profile-sid"
  local qgis
  qgis="$(in_sid python -c 'from qgis.core import Qgis; print(Qgis.QGIS_VERSION)' 2>/dev/null || echo '?')"
  tier "unit + e2e, QGIS $qgis (sid chroot)" in_sid python -m pytest -p no:qgis tests/unit tests/e2e
  tier "pytest-qgis, QGIS $qgis (sid chroot)" in_sid python -m pytest tests/qgis
  tier "real data, QGIS $qgis (sid chroot)" in_sid python -m pytest tests/realdata
}

run_tests() {
  qgis_env
  tier "ruff" "$VENV/bin/ruff" check .
  host_tiers
  sid_tiers
  echo
  if [ ${#FAILED[@]} -eq 0 ]; then
    echo "=== every tier passed on both QGIS versions"
  else
    printf '=== FAILED: %s\n' "${FAILED[@]}"
    return 1
  fi
}

case "${1:-}" in
  setup) setup ;;
  package) setup && "$VENV/bin/python" tools/package.py "${@:2}" ;;
  demo) setup && demo ;;
  test) setup && run_tests ;;
  *) echo "usage: ./dev.sh demo|test|setup|package" >&2; exit 2 ;;
esac
