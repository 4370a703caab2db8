"""The API's manifest changes in git: each committed (--git-commit), or committed and pushed
to REMOTE before it is applied (--git-push), so what runs is what the repository has."""

from __future__ import annotations

import logging
from pathlib import Path

from .. import engine, repository
from .allowlist import ApiConfigError
from .errors import ApiError

log = logging.getLogger(__name__)


class ManifestGit:
    """The manifests' work tree as the API commits to it."""

    def __init__(self, root: Path, remote: str | None, author: tuple[str, str]) -> None:
        self.root = root
        self.remote = remote
        self.author = author

    @classmethod
    def open(cls, manifests_dir: Path, remote: str | None,
             author: tuple[str, str]) -> ManifestGit:
        """ApiConfigError when the manifests are not in a git work tree."""
        try:
            root = repository.git_work_tree(manifests_dir)
        except engine.GitError:
            raise ApiConfigError(f"--git-commit/--git-push: {manifests_dir} is not in a git "
                                 "work tree") from None
        return cls(root, remote, author)

    def sync(self) -> str | None:
        """With --git-push: the work tree brought up to the remote before a manifest is read
        (the commit it is at); 503 and nothing written when it cannot be."""
        remote = self.remote
        if remote is None:
            return None
        try:
            return repository.sync_manifests(self.root, remote)
        except engine.GitError as err:
            log.error("--git-push: cannot bring %s up to %s: %s", self.root, remote, err)
            raise ApiError(503, "git_unavailable",
                           f"the manifests repository could not be brought up to {remote}; "
                           "nothing was written, try again") from None

    def publish(self, path: Path, sid: int, added: list[str], replaced: bool,
                base: str) -> str | None:
        """With --git-push: commit the manifest and push it; None once it is on the remote.
        Otherwise the commit and the file are undone (nothing is applied that the remote has
        not got) and the reason is returned for the job."""
        remote = self.remote
        assert remote is not None
        try:
            repository.commit_manifest(self.root, path, _commit_message(sid, added, replaced),
                                       self.author)
            repository.push_manifests(self.root, remote)
            return None
        except engine.PushConflict as err:
            log.error("--git-push of %s to %s conflicts: %s", path, remote, err)
            reason = (f"{path.name} was changed on {remote} meanwhile and this change does not "
                      "rebase onto it; nothing was applied: send the request again")
        except engine.GitError as err:
            log.error("--git-push of %s to %s failed: %s", path, remote, err)
            reason = (f"the change to {path.name} could not be pushed to {remote}; nothing "
                      "was applied: send the request again")
        try:
            repository.undo_manifest(self.root, base, path)
        except engine.GitError as err:
            log.error("--git-push: cannot undo the unpublished change to %s: %s", path, err)
        return reason

    def commit(self, path: Path, sid: int, added: list[str], replaced: bool) -> str | None:
        """Commit this one file (other staged changes are left alone). A failed commit does not
        undo the request (the manifest is valid and written; the next commit carries it) but is
        reported: the returned line goes into the job's errors, and the log."""
        try:
            repository.commit_manifest(self.root, path, _commit_message(sid, added, replaced),
                                       self.author)
        except engine.GitError as err:
            log.error("git commit of %s failed: %s", path, err)
            return (f"{path.name} was written but not committed to git ({err}); "
                    "the next commit carries it")
        return None


def _commit_message(sid: int, added: list[str], replaced: bool) -> str:
    what = []
    if replaced:
        what.append("replace video")
    if added:
        what.append("add " + ", ".join(added))
    return f"api: section {sid}: {'; '.join(what) or 'declare section'}"
