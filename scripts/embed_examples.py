"""Copies each example (and its expected output) into the user guide where it is shown.

In ``docs/*.md`` a line ``<!-- example: examples/NAME.py -->`` (or ``<!-- output:
examples/NAME.out.txt -->``) is followed by a fenced code block holding that file; this script
rewrites those blocks from the files (an empty block may follow a new marker). tests/test_examples.py
checks that they match. Usage: python scripts/embed_examples.py
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_BLOCK = re.compile(r"(<!-- (example|output): (examples/[\w.]+) -->\n+)```([a-z]*)\n.*?```", re.S)


def embed(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        marker, kind, path, language = match.groups()
        body = (ROOT / path).read_text()
        language = language or ("python" if kind == "example" else "text")
        return f"{marker}```{language}\n{body}```"

    return _BLOCK.sub(replace, text)


def main() -> None:
    for page in sorted((ROOT / "docs").glob("*.md")):
        text = page.read_text()
        new = embed(text)
        if new != text:
            page.write_text(new)
            print(f"updated {page.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
