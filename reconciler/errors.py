"""The one base of every expected error, so a front end tells a mistake from a bug.

Every seam's error class (StoreError, CdnError, MediaError, InputError, FetchError,
DubbingError, LockError, GitError, the API's job store ...) and every error about how the
reconciler was called or what it was given (UsageError, InvalidManifests, StalePlan ...)
derives from ReconcilerError. The front ends (cli, the GitHub glue, the API) catch it alone and
show its message in one line; anything else is a bug and keeps its traceback (BUG_REPORT).
This module imports nothing of reconciler, so every module may use it without a circle.
"""

from __future__ import annotations

import traceback


class ReconcilerError(Exception):
    """An expected failure: its message names the file, field, option or object at fault."""


class UsageError(ReconcilerError):
    """A mistake in what the reconciler was asked to do: an option, a store URL, a section id,
    a saved plan file that is not one."""


BUG_REPORT = "This is a bug in reconciler; please report it with the traceback above."
EXIT_BUG = 3  # a front end's exit code for a bug: never 1 (a mistake) nor 2 (changes pending)


def bug_report() -> str:
    """The exception being handled, told as a bug: its traceback, then BUG_REPORT."""
    return traceback.format_exc() + BUG_REPORT
