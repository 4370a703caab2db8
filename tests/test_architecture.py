"""The layering, enforced over `ast` imports (every import statement, function-level ones too):

- `plan` is a pure function: it imports no I/O module;
- the data modules (`manifest`, `layout`, `hls`, `mp4`) import nothing of apply, engine or the
  front ends;
- the front ends (`cli`, `api`, `github`, `preview`) import the library through `engine`, the
  views and the models only: never `apply`, never a `_private` name of `observe` or `plan`.

What today's code still does against these rules is listed, with the reason, in KNOWN: issue 12's
part B (seams, cli.run into engine/planfile) removes those imports and empties the list. A new
forbidden import fails the test; so does a KNOWN entry that no longer happens (keep it honest).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "reconciler"

IO_MODULES = ("reconciler.store", "reconciler.media", "reconciler.inputs", "reconciler.dubbing",
              "reconciler.cdn", "reconciler.sources", "reconciler.git", "reconciler.gitscope",
              "reconciler.lock", "boto3", "botocore", "httpx", "subprocess", "socket",
              "urllib.request")
DATA_MODULES = ("reconciler.manifest", "reconciler.layout", "reconciler.hls", "reconciler.mp4")
FRONT_ENDS = ("reconciler.cli", "reconciler.api", "reconciler.github", "reconciler.preview")
ABOVE_DATA = ("reconciler.apply", "reconciler.engine", "reconciler.observe", "reconciler.plan",
              *FRONT_ENDS)
# What a front end may import of the library: the engine, the views, the models (and itself).
FRONT_END_MAY_USE = ("reconciler.engine", "reconciler.render", "reconciler.verify",
                     "reconciler.board", "reconciler.progress", "reconciler.redaction",
                     "reconciler.manifest", "reconciler.plan", "reconciler.layout",
                     "reconciler.observe")
PRIVATE_INTERNALS = ("reconciler.observe", "reconciler.plan")

# (importer, imported) pairs that break a rule today, each with why and who removes it.
KNOWN = {
    # plan reads media's AUDIO_/VIDEO_SETTINGS (what a packaged rendition is stamped with);
    # part B's Packager seam owns those constants.
    ("reconciler.plan", "reconciler.media"): "part B: Packager seam",
    # The CLI catches the seams' error types and opens the store for `unlock`/`preview`;
    # part B's seams surface them through engine.
    ("reconciler.cli", "reconciler.cdn"): "part B: errors through engine",
    ("reconciler.cli", "reconciler.lock"): "part B: errors/unlock through engine",
    ("reconciler.cli", "reconciler.media"): "part B: Packager seam (MediaError)",
    ("reconciler.cli", "reconciler.sources"): "part B: Inputs seam (FetchError)",
    ("reconciler.cli", "reconciler.store"): "part B: store opened through engine",
    ("reconciler.cli", "reconciler.demo"): "the demo command: a scripted engine run",
    ("reconciler.cli", "reconciler.preview"): "`reconcile preview` starts that front end",
    ("reconciler.cli", "reconciler.api"): "`reconcile serve` starts that front end",
    # The API's service runs jobs and commits manifests: its own queue and git, and it names
    # the errors a job may end with; part B maps typed outcomes from engine instead.
    ("reconciler.api.service", "reconciler.jobs"): "the API's own durable job queue",
    ("reconciler.api.app", "reconciler.jobs"): "the API's own durable job queue",
    ("reconciler.api.service", "reconciler.git"): "the API commits the manifests it writes",
    ("reconciler.api.service", "reconciler.cdn"): "part B: typed outcomes from engine",
    ("reconciler.api.service", "reconciler.lock"): "part B: typed outcomes from engine",
    ("reconciler.api.service", "reconciler.store"): "part B: typed outcomes from engine",
    ("reconciler.api.allowlist", "reconciler.sources"): "the address policy shared with the CLI",
    ("reconciler.api.config", "reconciler.sources"): "the address policy shared with the CLI",
    ("reconciler.api", "reconciler.sources"): "the address policy shared with the CLI",
    # preview serves the store itself (it stands in for CloudFront).
    ("reconciler.preview", "reconciler.store"): "preview is a CDN stand-in over the store",
    # The workflow glue asks git what changed (plan scope).
    ("reconciler.github.workflow", "reconciler.git"): "the workflow glue's plan scope",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(module: str) -> set[tuple[str, str]]:
    """(imported module, name or "") for every import in `module`, relative ones resolved."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[tuple[str, str]] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {(alias.name, "") for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, node.module] if node.module else parts)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add((sub, "") if sub in MODULES else (base, alias.name))
    return found


def under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def violations() -> set[tuple[str, str]]:
    bad: set[tuple[str, str]] = set()
    for module in MODULES:
        for imported, name in imports(module):
            if module == "reconciler.plan" and under(imported, IO_MODULES):
                bad.add((module, imported))
            if under(module, DATA_MODULES) and under(imported, ABOVE_DATA):
                bad.add((module, imported))
            if under(module, FRONT_ENDS) and imported.startswith("reconciler"):
                own = next(f for f in FRONT_ENDS if under(module, (f,)))
                if under(imported, (own,)) or imported == "reconciler":  # itself, __version__
                    continue
                if not under(imported, FRONT_END_MAY_USE):
                    bad.add((module, imported))
                elif under(imported, PRIVATE_INTERNALS) and name.startswith("_"):
                    bad.add((module, f"{imported}.{name}"))
    return bad


def test_layers_hold_except_the_listed_known_imports():
    found = violations()
    new = sorted(found - KNOWN.keys())
    assert not new, f"imports against the layering (see this file's docstring): {new}"
    gone = sorted(KNOWN.keys() - found)
    assert not gone, f"KNOWN lists imports that no longer happen; remove them: {gone}"


def test_front_ends_never_import_apply_even_through_the_known_list():
    assert not any(imported == "reconciler.apply" for _m, imported in KNOWN)
    assert all(imported != "reconciler.apply"
               for module in MODULES if under(module, FRONT_ENDS)
               for imported, _name in imports(module))


def test_the_checker_sees_relative_and_function_level_imports():
    """The rules are only as good as the import reading: `from .preview import serve` inside a
    function of cli, and `from .. import engine` in the api package, are both seen."""
    assert ("reconciler.preview", "serve") in imports("reconciler.cli")  # in a function
    assert ("reconciler.engine", "") in imports("reconciler.api.service")
    assert ("reconciler.media", "") in imports("reconciler.plan")
