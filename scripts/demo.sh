#!/usr/bin/env bash
# Installs ferroflow into a virtualenv and runs the main job: the kill-and-resume demo.
# Building installs the Rust core from source (a few minutes the first time): its progress is
# shown on stderr while it builds, and the whole build log if it fails.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${FERROFLOW_VENV:-$root/.venv}
[ -x "$venv/bin/python" ] || { echo "creating the virtualenv $venv" >&2; python3 -m venv "$venv"; }
"$venv/bin/pip" install --quiet --upgrade pip

log=$(mktemp "${TMPDIR:-/tmp}/ferroflow-build.XXXXXX")
trap 'rm -f "$log"' EXIT
echo "building ferroflow from $root into $venv (compiles its Rust core: a few minutes the first time)" >&2
"$venv/bin/pip" install --verbose "$root" >"$log" 2>&1 &
build=$!
started=$SECONDS
shown=-1
[ -t 2 ] && tty=1 || tty=0
while kill -0 "$build" 2>/dev/null; do
    crates=$(grep -c '^ *Compiling ' "$log" || true)
    last=$(grep -o 'Compiling [^ ]*' "$log" | tail -n 1 | cut -d' ' -f2 || true)
    elapsed=$((SECONDS - started))
    line="  building: ${crates} crates compiled${last:+ (now: $last)}, ${elapsed}s"
    if [ "$tty" = 1 ]; then
        printf '\r%s\033[K' "$line" >&2
    elif [ $((elapsed / 10)) -ne "$shown" ]; then  # a log, not a terminal: a line every 10 s
        shown=$((elapsed / 10))
        echo "$line" >&2
    fi
    sleep 1
done
if ! wait "$build"; then
    [ "$tty" = 1 ] && echo >&2
    echo "building ferroflow failed; the build log:" >&2
    cat "$log" >&2
    exit 1
fi
crates=$(grep -c '^ *Compiling ' "$log" || true)
[ "$tty" = 1 ] && printf '\r\033[K' >&2
echo "  built and installed ferroflow ($crates crates compiled) in $((SECONDS - started))s" >&2
"$venv/bin/ferroflow" demo "$@"
