#!/usr/bin/env bash
# Builds the wheel the way users get ferroflow, installs it into a fresh virtualenv, then runs
# the Rust unit tests, the Python test suite (the user guide built strictly among it), every
# benchmark once as a test, and the TaskFlow compatibility check.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
venv=${FERROFLOW_TEST_VENV:-$root/.venv-test}
rm -rf "$venv" dist
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip 'maturin>=1.9.4,<2'
"$venv/bin/maturin" build --release --out dist
"$venv/bin/pip" install --quiet "$(ls dist/ferroflow-*.whl)[test,compare]"
cargo test --quiet
"$venv/bin/python" -m pytest tests benches --benchmark-disable -p no:cacheprovider -q "$@"
# TaskFlow's own unit tests and examples, migrated by rewriting the import root, against the floors
# in scripts/taskflow_compat.py (run last: it installs TaskFlow and its test libraries in the venv).
bash scripts/taskflow-compat.sh "$venv"
