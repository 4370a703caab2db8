"""Every git call the reconciler makes goes through `run`: an argument list (never a shell), a
timeout, and one typed error, `GitError`, carrying git's own first line of complaint."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from .errors import ReconcilerError

TIMEOUT = 60.0  # seconds; git on a local work tree answers in far less


class GitError(ReconcilerError):
    """git could not do it (not a repository, unknown ref, nothing to commit, not installed)."""


def run(root: Path | None, *args: str, env: Mapping[str, str] | None = None,
        timeout: float = TIMEOUT) -> str:
    """git's stdout for `git -C root ARGS...` (root None: the current directory)."""
    where = ["-C", str(root)] if root is not None else []
    try:
        proc = subprocess.run(["git", *where, *args], capture_output=True, text=True,
                              check=False, timeout=timeout,
                              env={**os.environ, **env} if env else None)
    except (OSError, subprocess.SubprocessError) as err:
        raise GitError(f"git {args[0]}: {err}") from None
    if proc.returncode != 0:
        lines = (proc.stderr.strip() or proc.stdout.strip() or "failed").splitlines()
        raise GitError(f"git {args[0]}: {lines[0]}")
    return proc.stdout


def toplevel(path: Path) -> Path:
    """The work tree holding `path`."""
    return Path(run(path, "rev-parse", "--show-toplevel").strip())


def commit_file(root: Path, path: Path, message: str, author: tuple[str, str]) -> None:
    """Commit this one file as `author` (name, email); other staged changes are left alone."""
    name, email = author
    env = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
           "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}
    run(root, "add", "--", str(path), env=env)
    run(root, "commit", "-q", "-m", message, "--", str(path), env=env)


class PushConflict(GitError):
    """A commit does not rebase onto its remote branch: someone changed the same lines."""


def head(root: Path) -> str:
    return run(root, "rev-parse", "HEAD").strip()


def current_branch(root: Path) -> str:
    """The branch checked out in `root` (GitError on a detached HEAD)."""
    return run(root, "symbolic-ref", "--short", "HEAD").strip()


def sync(root: Path, remote: str, branch: str) -> None:
    """Bring `root` up to REMOTE's BRANCH: fetch it and rebase any local commits onto it
    (PushConflict, rebase aborted, when they do not apply)."""
    run(root, "fetch", "-q", remote, branch)
    _rebase(root)


def _rebase(root: Path) -> None:
    """Rebase HEAD onto what was just fetched (FETCH_HEAD), or leave everything as it was."""
    try:
        run(root, "rebase", "-q", "FETCH_HEAD")
    except GitError as err:
        with contextlib.suppress(GitError):
            run(root, "rebase", "--abort")
        raise PushConflict(f"{err}: the change conflicts with the remote's") from None


def is_ancestor(root: Path | None, ancestor: str, descendant: str) -> bool:
    """True when `ancestor` is `descendant` or one of its ancestors (False for unknown ones)."""
    try:
        run(root, "merge-base", "--is-ancestor", ancestor, descendant)
    except GitError:
        return False
    return True


def known_commit(root: Path | None, ref: str) -> bool:
    """True when `ref` names a commit this clone has (a force-push or a shallow clone loses
    some)."""
    try:
        run(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except GitError:
        return False
    return True


def tags(root: Path | None, pattern: str) -> list[str]:
    """The repository's tags matching a glob (`v*`)."""
    return run(root, "tag", "--list", pattern).split()


def first_parents(root: Path | None, since: str, head: str, limit: int) -> list[str]:
    """The commits on `head`'s first-parent line after `since` (its merges), newest first, at
    most `limit`."""
    out = run(root, "rev-list", "--first-parent", f"--max-count={limit}", f"{since}..{head}")
    return out.split()


def push(root: Path, remote: str, branch: str, attempts: int = 5) -> None:
    """Push HEAD to REMOTE's BRANCH. A push the remote rejects because the branch moved is
    fetched, rebased and retried (up to `attempts` pushes); PushConflict when the rebase does
    not apply, GitError when git cannot push for another reason."""
    for attempt in range(1, attempts + 1):
        try:
            run(root, "push", "-q", remote, f"HEAD:refs/heads/{branch}")
            return
        except GitError:
            run(root, "fetch", "-q", remote, branch)
            if is_ancestor(root, "FETCH_HEAD", "HEAD") or attempt == attempts:
                raise  # the branch did not move (or moves too often): not a race to retry
        _rebase(root)


def undo(root: Path, base: str, path: Path) -> None:
    """Put HEAD and `path` back to commit `base` (drop a commit that could not be pushed, and
    the file's uncommitted change); other files' local changes are kept."""
    run(root, "reset", "-q", "--keep", base)
    relative = str(path.resolve().relative_to(root.resolve()))
    try:
        run(root, "cat-file", "-e", f"{base}:{relative}")
    except GitError:
        path.unlink(missing_ok=True)  # new in the dropped change
        return
    run(root, "checkout", "-q", base, "--", relative)
