"""Glob patterns for ``watch``: real matching on the whole relative path.

The reference only compared file extensions; here ``src/**/*.py`` means what a shell user expects:
``*`` and ``?`` stay inside one path segment, ``**`` spans any number of segments (zero
included), ``[abc]`` / ``[!abc]`` are character classes and ``{a,b}`` are alternatives.
"""

from __future__ import annotations

import os
import re
from pathlib import PurePosixPath

_MAGIC = re.compile(r"[*?\[{]")


def _split_braces(body: str) -> list[str]:
    """Split ``a,b{c,d}`` at its top-level commas."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(body):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(body[start:index])
            start = index + 1
    parts.append(body[start:])
    return parts


def _closing(pattern: str, start: int, open_char: str, close_char: str) -> int:
    """Index of the bracket closing the one at ``start`` (-1 when unbalanced)."""
    depth = 0
    for index in range(start, len(pattern)):
        if pattern[index] == open_char:
            depth += 1
        elif pattern[index] == close_char:
            depth -= 1
            if depth == 0:
                return index
    return -1


def _translate(pattern: str) -> str:
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if pattern.startswith("**", i):
            at_segment_start = i == 0 or pattern[i - 1] == "/"
            if at_segment_start and pattern.startswith("**/", i):
                out.append("(?:[^/]*/)*")  # zero or more whole directories
                i += 3
            else:
                out.append(".*")
                i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "]") else i + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = pattern[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        elif char == "{":
            end = _closing(pattern, i, "{", "}")
            if end == -1:
                out.append(re.escape(char))
            else:
                alternatives = _split_braces(pattern[i + 1 : end])
                out.append("(?:" + "|".join(_translate(a) for a in alternatives) + ")")
                i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def _normalise(pattern: str) -> str:
    pattern = pattern.replace(os.sep, "/")
    while pattern.startswith("./"):
        pattern = pattern[2:]
    return pattern


class Glob:
    """One ``watch`` pattern, relative to the module's working directory (or absolute)."""

    def __init__(self, pattern: str) -> None:
        if not pattern or not pattern.strip():
            raise ValueError("a watch pattern must not be empty")
        self.pattern = pattern
        self.normalised = _normalise(pattern)
        self.regex = re.compile(_translate(self.normalised) + r"\Z", re.DOTALL)

    def matches(self, relative_path: str) -> bool:
        """``relative_path`` uses ``/`` and is relative to the same directory as the pattern."""
        return self.regex.match(relative_path) is not None

    @property
    def recursive(self) -> bool:
        """Whether files below :meth:`root`'s direct children can match (``**`` or a wildcard
        in a directory part)."""
        directories = PurePosixPath(self.normalised).parts[:-1]
        return "**" in self.normalised or any(_MAGIC.search(part) for part in directories)

    def root(self) -> str:
        """The directory part before the first wildcard (``.`` when the pattern starts with one)."""
        literal: list[str] = []
        for part in PurePosixPath(self.normalised).parts[:-1]:
            if _MAGIC.search(part):
                break
            literal.append(part)
        return str(PurePosixPath(*literal)) if literal else "."

    def __repr__(self) -> str:
        return f"Glob({self.pattern!r})"
