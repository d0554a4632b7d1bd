#!/usr/bin/env bash
# Installs everything SmartCity needs on a fresh Debian machine (12 or newer): the system packages of the
# one-machine stack, a virtual environment in .venv, and the project with its development tools.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "setup: need root (or sudo) to run: $*" >&2; exit 1
  fi
}

need=()
[ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null || need+=(mosquitto)
command -v mosquitto_pub >/dev/null || need+=(mosquitto-clients)
command -v influxd >/dev/null || need+=(influxdb)
command -v victoria-metrics >/dev/null || need+=(victoria-metrics)
command -v promtool >/dev/null || need+=(prometheus)  # promtool checks deploy/prometheus (test_monitoring.py)
command -v openssl >/dev/null || need+=(openssl)  # deploy/tls/make-certs.sh (test_compose_mosquitto.py)
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
command -v npm >/dev/null || need+=(nodejs npm)  # builds the duty console (alerts/console/web)
command -v chromium >/dev/null || need+=(chromium)  # the console's browser tests
dpkg -s fonts-noto-cjk >/dev/null 2>&1 || need+=(fonts-noto-cjk)  # Chinese in the browser tests' screenshots

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Debian starts these as system services on install, holding the ports our own stack uses. We start our
  # own instances with generated configurations instead, so stop the system ones (only where systemd runs).
  if [ -d /run/systemd/system ]; then
    for unit in mosquitto influxdb victoria-metrics; do
      if systemctl is-active --quiet "$unit" 2>/dev/null; then
        echo "setup: stopping and disabling the system $unit service (smartcity up runs its own)"
        as_root systemctl disable --now "$unit"
      fi
    done
  fi
fi

python3 - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"setup: SmartCity needs Python 3.11 or newer; python3 is {sys.version.split()[0]}")
PY

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# constraints.txt: the exact versions CI and every developer use (the linters and type checker above all).
.venv/bin/python -m pip install -q -e '.[dev]' -c constraints.txt
bash scripts/build-console.sh
echo "setup: done (.venv/bin/smartcity)"
