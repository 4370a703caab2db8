"""`python -m reconciler.github COMMAND` (the workflows' entry point)."""

from .cli import main

main()
