#!/usr/bin/env bash
# TaskFlow compatibility check: TaskFlow 6.5.0's own unit tests and examples, migrated to ferroflow by
# rewriting their import root, must pass (at least the floors documented in scripts/taskflow_compat.py).
#
#   scripts/taskflow-compat.sh [VENV] [-- options of scripts/taskflow_compat.py]
#
# VENV (default: .venv) must have ferroflow installed. The script installs TaskFlow 6.5.0 there (the
# reference the tests and examples are compared against) and the test libraries TaskFlow's tests use,
# downloads TaskFlow's source distribution from the package index into a temporary directory (it is
# never kept in this repository), and hands over to scripts/taskflow_compat.py, which says what is run,
# what is left out and why.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:-$root/.venv}
shift || true
[ "${1:-}" = "--" ] && shift
venv=$(cd "$venv" && pwd)  # (absolute: tests run from their own directory)
python="$venv/bin/python"
if ! "$python" -c "import ferroflow._core" 2>/dev/null; then
  echo "taskflow-compat: $venv has no working ferroflow (build it first: maturin develop, or pip install)" >&2
  exit 2
fi

version=6.5.0
# TaskFlow itself (the reference), alembic for its SQL backend, and what its tests and their
# utilities import (kazoo, redis and etcd3gw only to import; no server is contacted).
"$python" -m pip install --quiet "taskflow==$version" alembic SQLAlchemy \
  testtools oslotest testscenarios fixtures pytest pytest-timeout kazoo redis etcd3gw

work=$(mktemp -d "${TMPDIR:-/tmp}/taskflow-compat.XXXXXX")
if [ -z "${TASKFLOW_COMPAT_KEEP:-}" ]; then
  trap 'rm -rf "$work"' EXIT
else
  echo "taskflow-compat: keeping $work"
fi
"$python" -m pip download --quiet --no-deps --no-binary :all: "taskflow==$version" -d "$work/download"
sdist=$(ls "$work"/download/taskflow-"$version".tar.gz)
"$python" "$root/scripts/taskflow_compat.py" --python "$python" --sdist "$sdist" --work "$work/run" "$@"
