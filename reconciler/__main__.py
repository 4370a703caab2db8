"""`python -m reconciler ...` is `reconcile ...` (handy where the script is not on PATH)."""

from .cli import entry

entry()
