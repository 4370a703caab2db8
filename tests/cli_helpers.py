"""Run the real `reconcile` CLI in-process (click's CliRunner) and read its streams apart."""

from __future__ import annotations

import json
from dataclasses import dataclass

from click.testing import CliRunner

from reconciler.cli import main


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> dict:
        return json.loads(self.stdout)


def reconcile(*args: str) -> Result:
    res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return Result(res.exit_code, res.stdout, res.stderr)


def store_listing(url: str) -> dict[str, str]:
    """Every object in a store (key -> ETag): compared before and after a refused run."""
    from reconciler.store import open_store

    return {key: info.etag for key, info in open_store(url).list("").items()}
