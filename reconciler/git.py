"""Every git call the reconciler makes goes through `run`: an argument list (never a shell), a
timeout, and one typed error, `GitError`, carrying git's own first line of complaint."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

TIMEOUT = 60.0  # seconds; git on a local work tree answers in far less


class GitError(Exception):
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
