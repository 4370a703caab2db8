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
