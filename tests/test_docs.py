"""The documentation covers the interface: every option of every `reconcile` subcommand and
every environment variable the code reads is named in README.md or docs/, and every relative
link there leads to a file and heading that exist. (`python -m reconciler.github` is the
workflows' own plumbing, described by its --help, not a user's command.)"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import click

from reconciler.cli import main as reconcile

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Variables the code reads that the user does not set: GitHub Actions' own (the runner sets
# them for the workflow glue and the lock's owner record) and the XDG base directory.
SET_BY_THE_PLATFORM = re.compile(r"(GITHUB_(?!TOKEN$)\w+|RUNNER_TEMP|CI|XDG_CACHE_HOME)")
ENV_NAME = re.compile(r"(RECONCILER|ELEVENLABS|AWS|CLOUDFRONT)_[A-Z0-9_]+")


def documentation() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in DOCUMENTS)


def options(group: click.Group, prefix: str) -> dict[str, set[str]]:
    """Every option string of every command under `group`, by the command line that takes it."""
    found: dict[str, set[str]] = {}
    for name, command in group.commands.items():
        line = f"{prefix} {name}"
        for param in command.params:
            if isinstance(param, click.Option):
                found.setdefault(line, set()).update(
                    opt for opt in (*param.opts, *param.secondary_opts)
                    if opt not in ("--help", "-h"))
        if isinstance(command, click.Group):
            found.update(options(command, line))
    return found


def environment_variables() -> set[str]:
    """The names reconciler/ reads: os.environ[...], os.environ.get/os.getenv(...), click's
    envvar=, and any string constant that is a RECONCILER_/ELEVENLABS_/AWS_ name (lists of
    names read in a loop)."""
    names: set[str] = set()
    for path in (ROOT / "reconciler").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and node.args and _reads_environment(node.func):
                names.update(_constant(node.args[0]))
            elif isinstance(node, ast.Subscript) and _is_environ(node.value):
                names.update(_constant(node.slice))
            elif isinstance(node, ast.keyword) and node.arg == "envvar":
                names.update(_constant(node.value))
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and ENV_NAME.fullmatch(node.value):
                names.add(node.value)
    return names


def _is_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def _reads_environment(func: ast.AST) -> bool:
    return isinstance(func, ast.Attribute) and (
        (func.attr == "get" and _is_environ(func.value)) or func.attr == "getenv")


def _constant(node: ast.AST) -> set[str]:
    return {node.value} if isinstance(node, ast.Constant) and isinstance(node.value, str) else set()


def test_the_walk_finds_what_it_should() -> None:
    """The walks are not vacuous: known options and variables are found."""
    found = options(reconcile, "reconcile")
    assert {"--deep", "--prune", "--lock-ttl"} <= found["reconcile plan"]
    assert "--allow-empty" in found["reconcile apply"]  # a secondary name counts too
    assert "--force" in found["reconcile unlock"]
    assert {"ELEVENLABS_POLL_TIMEOUT", "RECONCILER_CACHE_DIR", "AWS_BUCKET_NAME",
            "RECONCILER_API_MAX_CONNECTIONS", "GITHUB_RUN_ID"} <= environment_variables()


def test_every_cli_option_is_documented() -> None:
    text = documentation()
    missing = {line: sorted(o for o in opts if not re.search(re.escape(o) + r"(?![\w-])", text))
               for line, opts in options(reconcile, "reconcile").items()}
    assert {line: opts for line, opts in missing.items() if opts} == {}


def test_every_environment_variable_is_documented() -> None:
    text = documentation()
    missing = sorted(name for name in environment_variables()
                     if not SET_BY_THE_PLATFORM.fullmatch(name)
                     and not re.search(rf"\b{name}\b", text))
    assert missing == []


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_relative_link_leads_somewhere() -> None:
    broken = []
    for document in DOCUMENTS:
        for target, anchor in re.findall(r"\]\(([^)#\s]*)(#[^)\s]*)?\)",
                                         document.read_text(encoding="utf-8")):
            if target.startswith(("http://", "https://")):
                continue
            path = (document.parent / target) if target else document
            if not path.exists():
                broken.append(f"{document.name}: {target}")
            elif anchor and path.suffix == ".md":
                headings = re.findall(r"^#+ (.*)$", path.read_text(encoding="utf-8"), re.M)
                if anchor[1:] not in {_anchor(h) for h in headings}:
                    broken.append(f"{document.name}: {target}{anchor}")
    assert broken == []


def test_every_test_and_file_the_docs_cite_exists() -> None:
    """A sentence that says "`tests/test_x.py` shows it" or names a test is only true while that
    test is there: a renamed or removed one is caught here."""
    defined = {name for path in (ROOT / "tests").glob("*.py")
               for name in re.findall(r"def (test_\w+)", path.read_text(encoding="utf-8"))}
    missing = []
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        missing += [f"{document.name}: {name}" for name in re.findall(r"`(test_\w+)`", text)
                    if name not in defined]
        missing += [f"{document.name}: {path}" for path in re.findall(
            r"`((?:tests|reconciler|bench|scripts|schemas)/[\w./-]+)`", text)
            if not (ROOT / path).exists()]
    assert missing == []
