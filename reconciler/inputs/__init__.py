"""The inputs seam: the manifests' inputs (videos, supplied dubs, subtitle files) read from
s3://, https:// or the repository.

Observation (`identify`) is cheap and read-only: a HEAD for remote inputs, a content hash for
local files. It yields the identity recorded on every rendition, so a changed input is rebuilt.
`fetch` streams an input to a local file: the packager only ever reads local files (`read_media`
asks it what an input holds), and https inputs are fetched under the one address policy of
sources.py. Observe and apply are
handed an `Inputs`; `InputReader` (reader.py) is the production one, given its policy and S3
access.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import ReconcilerError
from ..manifest import Source
from ..packager import MediaError, MediaInfo, Packager


class InputError(ReconcilerError):
    """An input cannot be read; the message names it without secrets."""


@dataclass(frozen=True)
class InputState:
    """What observation learned of one input: its identity, or why it is unreadable."""

    identity: str | None
    error: str | None = None


class Inputs(Protocol):
    """What observe and apply know of the manifests' inputs (manifest.Source)."""

    def identify(self, source: Source) -> InputState:
        """The input's identity, or why it is unreadable (never raises for a bad input)."""

    def fetch(self, source: Source, dest_dir: Path) -> Path:
        """A local file with the input's bytes; InputError when it cannot be read."""



def read_media(inputs: Inputs, packager: Packager, source: Source) -> MediaInfo | None:
    """The input's duration and streams as the packager reads them from its bytes, or None when
    it is unreadable. The packager reads local files only: a remote input is fetched (under the
    inputs' policy) into a temporary folder first."""
    try:
        if source.kind == "file":
            return packager.probe(inputs.fetch(source, Path()), source.display())
        with tempfile.TemporaryDirectory(prefix="reconciler-probe-") as tmp:
            return packager.probe(inputs.fetch(source, Path(tmp)), source.display())
    except (MediaError, InputError):
        return None
