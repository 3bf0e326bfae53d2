"""Glob matching on the whole relative path (not just the extension, as the reference did)."""

from __future__ import annotations

import pytest
from iii_exec.globs import Glob


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("src/**/*.py", "src/a.py", True),
        ("src/**/*.py", "src/x/y/a.py", True),
        ("src/**/*.py", "srcx/a.py", False),
        ("src/**/*.py", "src/a.pyc", False),
        ("src/**/*.py", "a.py", False),
        ("*.py", "a.py", True),
        ("*.py", "pkg/a.py", False),
        ("**/*.py", "a.py", True),
        ("**/*.py", "pkg/deep/a.py", True),
        ("*.{ts,js}", "a.ts", True),
        ("*.{ts,js}", "a.js", True),
        ("*.{ts,js}", "a.tsx", False),
        ("lib/[a-c]?.txt", "lib/ab.txt", True),
        ("lib/[!a-c]?.txt", "lib/ab.txt", False),
        ("lib/[!a-c]?.txt", "lib/zb.txt", True),
        ("./config.json", "config.json", True),
        ("config.json", "other.json", False),
        ("docs/**", "docs/a/b.md", True),
        ("docs/**", "docs2/a.md", False),
        ("a+b(c).txt", "a+b(c).txt", True),
        ("a+b(c).txt", "aab(c).txt", False),
    ],
)
def test_matches_whole_relative_path(pattern: str, path: str, expected: bool) -> None:
    assert Glob(pattern).matches(path) is expected


@pytest.mark.parametrize(
    ("pattern", "root", "recursive"),
    [
        ("src/**/*.py", "src", True),
        ("*.py", ".", False),
        ("lib/sub/*.txt", "lib/sub", False),
        ("**/*.ts", ".", True),
        ("a/*/b/*.py", "a", True),
        ("/abs/dir/**/x", "/abs/dir", True),
    ],
)
def test_watch_root(pattern: str, root: str, recursive: bool) -> None:
    glob = Glob(pattern)
    assert glob.root() == root
    assert glob.recursive is recursive


def test_empty_pattern_is_rejected() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        Glob("  ")
