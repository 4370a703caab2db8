"""`--changed-since REF`: the manifests a git change touched, deleted ones included; and
`changed_files`, every path a change touched (the GitHub workflows' plan scope).

GitError is re-exported for callers of `changed_since` (git calls themselves live in git.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .git import GitError, known_commit, run
from .manifest import InvalidManifests, find_root, manifest_files, read_yaml


@dataclass(frozen=True)
class Changes:
    files: set[Path]  # existing manifests added or modified since REF (resolved paths)
    deleted: dict[int, str]  # sectionId -> path of a manifest deleted since REF


def changed_since(ref: str, paths: list[Path]) -> Changes:
    """Manifests under `paths` that differ between REF and the work tree."""
    start = (paths[0] if paths else Path(".")).resolve()
    root = find_root(start if start.is_dir() else start.parent)
    if root is None:
        raise GitError("--changed-since needs the manifests inside a git work tree")
    rels = [str(p.resolve().relative_to(root)) for p in paths] or ["."]
    out = run(root, "diff", "--name-status", "--no-renames", ref, "--", *rels)
    untracked = run(root, "ls-files", "--others", "--exclude-standard", "--", *rels)
    files: set[Path] = set()
    deleted: dict[int, str] = {}
    wanted = {f.resolve() for f in manifest_files(paths)}
    for line in out.splitlines() + [f"A\t{u}" for u in untracked.splitlines()]:
        status, _, name = line.partition("\t")
        path = (root / name).resolve()
        if not name.endswith((".yaml", ".yml")):
            continue
        if status.startswith("D"):
            try:
                _node, old = read_yaml(run(root, "show", f"{ref}:{name}"), name)
                deleted[int(old["sectionId"])] = name  # type: ignore[index]
            except (GitError, InvalidManifests, KeyError, TypeError, ValueError):
                continue  # the old file was not a valid manifest: nothing to remove
        elif path in wanted:
            files.add(path)
    return Changes(files, deleted)


def changed_files(base: str, cwd: Path | None = None) -> list[str] | None:
    """Paths changed between `base` and HEAD, or None when `base` is not a usable commit."""
    if not known_commit(cwd, base):
        return None
    try:
        diff = run(cwd, "diff", "--name-only", f"{base}...HEAD")
    except GitError:
        return None
    return [line for line in diff.splitlines() if line]
