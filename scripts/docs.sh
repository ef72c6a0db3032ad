#!/usr/bin/env bash
# Builds the user guide (docs/, configured by mkdocs.yml) strictly: any warning (a broken link,
# a missing page, an unknown anchor) fails the build. Output: target/docs-site (or $1).
# Needs mkdocs: pip install '.[docs]'.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
python=${PYTHON:-python3}
[ -x "$root/.venv/bin/python" ] && [ -z "${PYTHON:-}" ] && python="$root/.venv/bin/python"
if ! "$python" -c "import mkdocs" 2>/dev/null; then
    echo "mkdocs is not installed for $python: pip install '.[docs]' (or: pip install 'mkdocs>=1.6,<2')" >&2
    exit 1
fi
"$python" -m mkdocs build --strict --clean --site-dir "${1:-$root/target/docs-site}"
