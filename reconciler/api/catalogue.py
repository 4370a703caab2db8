"""The manifests folder as the API serves it: every valid manifest, with broken ones set aside.

Why: the CLI refuses a catalogue with any invalid file (a plan of half a catalogue could prune
the rest), but the API acts on one section at a time. One broken file - someone's half-done
edit - must not stop every other section's requests. A file that is invalid on its own, and
every file of a sectionId several files declare, is left out and reported to operators (the log
and /healthz); a request for a section such a file declares is refused (409) by the service,
since the API never overwrites a manifest it could not read.

Clients are told file names relative to the manifests folder, never the server's paths.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from .. import engine
from ..manifest import (
    InvalidManifests,
    ManifestError,
    Section,
    find_root,
    load_manifests,
    manifest_files,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Catalogue:
    """One scan of the manifests folder: the valid files, and each broken file's problems."""

    folder: Path
    root: Path  # bounds manifests' relative paths, as for `reconcile --manifests FOLDER`
    valid: list[Path]
    broken: dict[Path, list[ManifestError]]

    def load(self, paths: list[Path], section_ids: list[int] | None = None) -> list[Section]:
        """The engine's load of these files, bounded like the folder (InvalidManifests)."""
        return engine.select(load_manifests(paths, root=self.root), section_ids)

    def name(self, path: Path | str) -> str:
        """A file as a client may see it: relative to the manifests folder."""
        path = Path(path)
        try:
            return str(path.resolve().relative_to(self.folder))
        except ValueError:  # not under the folder (a temporary file): its name only
            return path.name

    def describe(self, problem: ManifestError) -> str:
        """A problem as a client may see it: `name:line: field: message`."""
        return str(ManifestError(self.name(problem.file), problem.line, problem.field,
                                 problem.message))


def scan(folder: Path) -> Catalogue:
    """Validate each manifest on its own, then set aside every file of a sectionId declared
    twice (which one is meant is for a person to decide)."""
    folder = folder.resolve()
    root = find_root(folder) or folder
    loaded: dict[Path, list[Section]] = {}
    broken: dict[Path, list[ManifestError]] = {}
    for file in manifest_files([folder]):
        try:
            loaded[file] = load_manifests([file], root=root)
        except InvalidManifests as err:
            broken[file] = err.errors
    declared_by: dict[int, list[Path]] = defaultdict(list)
    for file, sections in loaded.items():
        for section in sections:
            declared_by[section.section_id].append(file)
    for section_id, files in declared_by.items():
        if len(files) > 1:
            for file in files:
                others = ", ".join(str(f.relative_to(folder)) for f in files if f != file)
                broken.setdefault(file, []).append(ManifestError(
                    str(file), None, "sectionId",
                    f"duplicate sectionId {section_id} (also in {others})"))
    valid = [file for file in loaded if file not in broken]
    return Catalogue(folder, root, valid, broken)


class BrokenReport:
    """Logs each broken manifest once per distinct set of problems (not on every request),
    and again when it is fixed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reported: dict[Path, str] = {}

    def update(self, catalogue: Catalogue) -> None:
        with self._lock:
            for file, problems in catalogue.broken.items():
                text = "; ".join(str(p) for p in problems)
                if self._reported.get(file) != text:
                    self._reported[file] = text
                    log.error("manifest %s is invalid and set aside (its section is not "
                              "served until it is fixed): %s", file, text)
            for file in [f for f in self._reported if f not in catalogue.broken]:
                del self._reported[file]
                log.info("manifest %s is valid again", file)
