#!/usr/bin/env python3
"""Checks that the repository's files point only at things that exist (a CTest, docs/development.md "Tests").

- every repository path a tracked text file mentions (`docs/x.md`, `src/.../y.cpp`, ...) exists, from the root
  or from one of the file's own folders (tools/export's files name their tests as tests/...);
- every relative Markdown link resolves;
- every citation of a docs section, `docs/x.md, "Heading"` (or 'Heading'), names a heading of that page;
- nothing cites material outside the repository (design notes or reference files that are not part of it).

Usage: check_references.py <repository root>. Prints one line per problem; exit 1 when there is any.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PATH = re.compile(r"(?<![\w./$-])((?:docs|src|include|tests|tools|bench|cmake|examples)/[\w./-]*\w\."
                  r"(?:md|cpp|hpp|py|json|jsonl|sh|txt|cmake|csv|png|inc))\b")
LINK = re.compile(r"\]\(([^)\s]+)\)")
CITATION = re.compile(r"(docs/[\w./-]+\.md),\s*(?:\n\s*(?://+|#|///)?\s*)?[\"']([^\"'\n]+)[\"']")
OUTSIDE = re.compile(r"ARCHITECTURE\.md|peer-weakness|\.\./shared|bundle-contract\.md|(?<![\w/])pipelines\.md|"
                     r"reference/tokenizers\.md")
SKIP = ("tests/data/", "tests/check_references.py")


def tracked(root: Path) -> list[Path]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=root,
                         capture_output=True, text=True, check=True).stdout
    return [root / line for line in out.splitlines() if line and not line.startswith(SKIP)]


def headings(page: Path) -> set[str]:
    found = set()
    for line in page.read_text(encoding="utf-8").splitlines():
        m = re.match(r"#+\s+(.*)", line)
        if m:
            found.add(m.group(1).replace("`", "").strip())
    return found


def check(root: Path) -> list[str]:
    problems = []
    for path in tracked(root):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        rel = path.relative_to(root)
        bases = [root] + [p for p in path.parents if root in p.parents]  # a path may be relative to its folder
        for m in PATH.finditer(text):
            if not any((base / m.group(1)).exists() for base in bases):
                problems.append(f"{rel}: mentions {m.group(1)}, which does not exist")
        if path.suffix == ".md":
            for m in LINK.finditer(text):
                target = m.group(1).split("#")[0]
                if target and not re.match(r"[a-z]+:", target) and not (path.parent / target).exists():
                    problems.append(f"{rel}: link to {m.group(1)}, which does not exist")
        for m in CITATION.finditer(text):
            page = root / m.group(1)
            heading = m.group(2).replace("`", "").strip()
            if page.is_file() and heading not in headings(page):
                problems.append(f"{rel}: cites {m.group(1)}, \"{heading}\", which is not a heading of that page")
        for m in OUTSIDE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            problems.append(f"{rel}:{line}: cites {m.group(0)}, which is outside the repository")
    return problems


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    problems = check(root)
    for p in problems:
        print(p)
    print(f"check_references: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
