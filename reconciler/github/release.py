"""Release checks for `release.yml`: a `vX.Y.Z` tag releases exactly the version the package
declares (`reconciler/__init__.py`, its one place) and CHANGELOG.md's newest entry describes,
and the major tag (`v1`, which `uses: ORG/reconciler@v1` follows) moves only to the newest
release of its major version."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# Keep a Changelog: `## [1.2.3] - 2026-12-05`; `## [Unreleased]` is not a release.
_ENTRY = re.compile(r"^## \[(?P<version>[^\]]+)\](?: - (?P<date>\d{4}-\d{2}-\d{2}))?[ \t]*$",
                    re.MULTILINE)
_SEMVER = re.compile(r"(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
                     r"(?P<pre>-[0-9A-Za-z.-]+)?")


class ReleaseError(Exception):
    """The tag, the package's version and the changelog do not agree."""


@dataclass(frozen=True)
class Release:
    version: str  # 1.2.3
    major_tag: str  # v1
    move_major: bool  # this is the newest final release of its major version
    notes: str  # the changelog entry's text (the GitHub release's body)


def _semver(text: str) -> tuple[int, int, int, bool] | None:
    """(major, minor, patch, final) of `1.2.3[-pre]`, or None."""
    found = _SEMVER.fullmatch(text)
    if found is None:
        return None
    return (int(found["major"]), int(found["minor"]), int(found["patch"]),
            found["pre"] is None)


def newest_entry(changelog: str) -> tuple[str, str]:
    """(version, text) of the changelog's newest release entry (below any Unreleased one)."""
    entries = [m for m in _ENTRY.finditer(changelog) if m["version"] != "Unreleased"]
    if not entries:
        raise ReleaseError("CHANGELOG.md has no release entry (## [X.Y.Z] - YYYY-MM-DD)")
    first = entries[0]
    if not first["date"]:
        raise ReleaseError(f"CHANGELOG.md: the entry [{first['version']}] has no date")
    following = _ENTRY.search(changelog, first.end())
    end = following.start() if following else len(changelog)
    body = changelog[first.end():end]
    body = re.split(r"^\[[^\]]+\]: ", body, maxsplit=1, flags=re.MULTILINE)[0]  # link refs
    return first["version"], body.strip()


def check_release(tag: str, package_version: str, changelog: str,
                  tags: Iterable[str]) -> Release:
    """The release `tag` makes, when it, the package's version and the changelog's newest
    entry agree (ReleaseError naming each otherwise); `tags` are the repository's tags, to
    tell whether the major tag may move."""
    version = tag.removeprefix("v")
    this = _semver(version) if tag.startswith("v") else None
    if this is None:
        raise ReleaseError(f"tag {tag!r} is not a release tag vX.Y.Z[-pre]")
    if package_version != version:
        raise ReleaseError(f"tag {tag} but the package says {package_version} "
                           "(reconciler/__init__.py __version__)")
    logged, notes = newest_entry(changelog)
    if logged != version:
        raise ReleaseError(f"tag {tag} but CHANGELOG.md's newest entry is [{logged}]")
    if not notes:
        raise ReleaseError(f"CHANGELOG.md: the entry [{logged}] says nothing")
    major = this[0]
    finals = [v for v in (_semver(t.removeprefix("v")) for t in tags if t.startswith("v"))
              if v is not None and v[0] == major and v[3]]
    newest = this[3] and all(v[:3] <= this[:3] for v in finals)
    return Release(version, f"v{major}", newest, notes)
