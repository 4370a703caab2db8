"""The manifests' git repository as the front ends use it (the API's manifest commits and
pushes, the GitHub glue's scopes and releases), and the last applied commit recorded in the
store: git and the record through the library, so no front end drives git itself."""

from __future__ import annotations

from pathlib import Path

from . import applied, git, gitscope
from .engine import Settings
from .store import open_store


def git_work_tree(path: Path) -> Path:
    """The git work tree holding `path` (GitError when there is none)."""
    return git.toplevel(path)


def commit_manifest(root: Path, path: Path, message: str, author: tuple[str, str]) -> None:
    """Commit this one manifest file in `root` as `author` (name, email); other staged changes
    are left alone. GitError when git cannot."""
    git.commit_file(root, path, message, author)


def sync_manifests(root: Path, remote: str) -> str:
    """Bring the manifests' work tree up to REMOTE's copy of its branch (fetch, rebase local
    commits); the commit it is then at. GitError (PushConflict) when it cannot."""
    git.sync(root, remote, git.current_branch(root))
    return git.head(root)


def push_manifests(root: Path, remote: str) -> None:
    """Push the work tree's commits to REMOTE's copy of its branch, rebasing onto it and
    retrying while others push first. PushConflict when the rebase conflicts."""
    git.push(root, remote, git.current_branch(root))


def undo_manifest(root: Path, base: str, path: Path) -> None:
    """Drop what was committed or written to `path` since commit `base`."""
    git.undo(root, base, path)


def changed_files(base: str, cwd: Path | None = None) -> list[str] | None:
    """Paths changed between `base` and HEAD, or None when `base` is not a usable commit."""
    return gitscope.changed_files(base, cwd)


def last_applied_commit(store_url: str | None = None) -> str | None:
    """The commit the store records as last applied (`reconciler-state/last-applied.json`),
    None when none is recorded: the GitHub apply runs cover every change since it."""
    return applied.read(open_store(Settings.from_env(store_url).store_url)).commit


def record_applied(commit: str, *, full: bool = False, run_url: str | None = None,
                   store_url: str | None = None, cwd: Path | None = None) -> str:
    """Record `commit` (of the clone at `cwd`) as applied, only forwards (applied.advance);
    what was done, in words."""
    store = open_store(Settings.from_env(store_url).store_url)
    return applied.advance(store, commit, applied.git_ancestry(cwd), full=full, run_url=run_url)


def known_commit(ref: str, cwd: Path | None = None) -> bool:
    """Whether the clone at `cwd` has commit `ref` (a force-push or a shallow clone loses some)."""
    return git.known_commit(cwd, ref)


def is_ancestor(ancestor: str, descendant: str, cwd: Path | None = None) -> bool:
    return git.is_ancestor(cwd, ancestor, descendant)


def merges_since(since: str, head: str, limit: int, cwd: Path | None = None) -> list[str]:
    """`head`'s first-parent commits after `since` (the merges on main), newest first."""
    return git.first_parents(cwd, since, head, limit)


def release_tags(cwd: Path | None = None) -> list[str]:
    """The repository's `v*` tags."""
    return git.tags(cwd, "v*")
