#!/usr/bin/env bash
# Installs ferroflow into a virtualenv and runs the main job: the kill-and-resume demo.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${FERROFLOW_VENV:-$root/.venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet "$root"
"$venv/bin/ferroflow" demo "$@"
