"""CloudFront's invalidation quotas, and paths collapsed to fit them.

A distribution may have at most 15 wildcard paths and 3,000 file paths in invalidations in
progress at once (independent quotas; a request over either is TooManyInvalidationsInProgress).
`collapse` replaces paths by the wildcard of a folder holding several of them - deepest folder
first (a rendition's languages -> `audio/*`, a section's renditions -> the section's folder),
then coarser, at last the folder common to all (`/assets/curriculumsection/*`) - until the
request fits what is free. A wildcard covers everything under its folder, so what is collapsed
is invalidated too, never less.
"""

from __future__ import annotations

from collections.abc import Iterable

from . import Usage

LIMIT = Usage(wildcards=15, files=3000)


def _covers(wildcard: str, path: str) -> bool:
    return wildcard != path and path.startswith(wildcard[:-1])


def _essential(paths: Iterable[str]) -> list[str]:
    """The paths in order, without repeats and without those a wildcard among them covers."""
    unique = list(dict.fromkeys(paths))
    wildcards = [p for p in unique if p.endswith("*")]
    return [p for p in unique if not any(_covers(w, p) for w in wildcards)]


def _ancestors(path: str) -> list[str]:
    """Every folder above what a path names, deepest first: `/a/b/*` (the folder `/a/b/`) ->
    `/a/`, `/`; `/a/b/c.m3u8` -> `/a/b/`, `/a/`, `/`."""
    out = []
    rest = path.removesuffix("*").rstrip("/")
    while rest:
        folder = rest[: rest.rfind("/") + 1]
        out.append(folder)
        rest = folder.rstrip("/")
    return out


def collapse(paths: Iterable[str], room: Usage = LIMIT) -> list[str] | None:
    """The paths to send so that the request fits `room` (what the quotas leave free), covering
    every path given, in the order given; None when nothing can fit (no wildcard free and too
    many files)."""
    given = _essential(paths)
    current = given
    while not (usage := Usage.of(current)).within(room):
        over_wildcards = usage.wildcards > room.wildcards
        best: tuple[int, int, str] | None = None
        for folder in {f for p in current for f in _ancestors(p)}:
            members = [p for p in current if p.startswith(folder)]
            wildcards = sum(p.endswith("*") for p in members)
            # Over the wildcard quota a merge must remove a wildcard (two become one); over the
            # file quota it must remove a file.
            gain = wildcards - 1 if over_wildcards else len(members) - wildcards
            if gain < 1:
                continue
            rank = (folder.count("/"), gain, folder)  # deepest first: the least invalidated
            if best is None or rank > best:
                best = rank
        if best is None:
            return None
        current = _essential([*current, best[2] + "*"])
    return list(dict.fromkeys(next(c for c in current if c == p or (
        c.endswith("*") and _covers(c, p))) for p in given))
