"""Release hygiene: one version, a changelog whose newest entry is that version, a release
workflow whose check step (run here by a real bash, as the runner would) agrees with both, the
major tag moved only forwards, and every install of the package pinned by the constraints."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from reconciler import __version__
from reconciler.github.release import ReleaseError, check_release, newest_entry

ROOT = Path(__file__).resolve().parents[1]
RELEASE = ROOT / ".github" / "workflows" / "release.yml"
CHANGELOG = """# Changelog

## [Unreleased]

### Added
- not released yet

## [1.3.0] - 2026-12-20

### Added
- something

## [1.2.0] - 2026-12-01

- older
"""


def _workflow() -> dict:
    data = yaml.safe_load(RELEASE.read_text())
    data.setdefault("on", data.pop(True, None))  # YAML 1.1 reads the key `on` as True
    return data


def _github_filter(pattern: str) -> re.Pattern[str]:
    """GitHub's tag filter syntax (`*`, `+`, `?`, `[...]`) as a regular expression."""
    out, i = "", 0
    while i < len(pattern):
        char = pattern[i]
        if char == "[":
            end = pattern.index("]", i)
            out += pattern[i:end + 1]
            i = end
        elif char == "*":
            out += "[^/]*"
        elif char in "+?":
            out += char
        else:
            out += re.escape(char)
        i += 1
    return re.compile(out)


def _check_step(tag: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], dict]:
    """Run release.yml's check step as the runner would: its `run` in bash, at the repository
    root, with `python` the interpreter that has the reconciler's dependencies."""
    step = next(s for s in _workflow()["jobs"]["check"]["steps"] if s.get("id") == "release")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    wrapper = bin_dir / "python"  # a venv's python is found through its own path
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    out = tmp_path / "out"
    out.write_text("")
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin", "PYTHONPATH": str(ROOT),
           "GITHUB_REF_NAME": tag, "GITHUB_OUTPUT": str(out)}
    command = step["run"].replace("release-notes.md", str(tmp_path / "notes.md"))
    res = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60, check=False)
    outputs = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    return res, outputs


def test_the_package_version_the_changelog_and_the_release_workflow_agree(tmp_path) -> None:
    tag = f"v{__version__}"
    [pattern] = _workflow()["on"]["push"]["tags"]
    assert _github_filter(pattern).fullmatch(tag), (pattern, tag)
    assert not _github_filter(pattern).fullmatch(tag.split(".")[0])  # moving v1 starts nothing
    logged, notes = newest_entry((ROOT / "CHANGELOG.md").read_text())
    assert logged == __version__ and notes

    res, outputs = _check_step(tag, tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert outputs["version"] == __version__
    assert outputs["major-tag"] == f"v{__version__.split('.')[0]}"
    assert (tmp_path / "notes.md").read_text().strip() == notes

    major, minor, patch = (int(p) for p in __version__.split("-")[0].split("."))
    ahead = f"v{major}.{minor}.{patch + 1}"
    refused, outputs = _check_step(ahead, tmp_path)
    assert refused.returncode == 1 and outputs == {}
    assert f"tag {ahead} but the package says {__version__}" in refused.stderr


def test_the_composite_actions_major_tag_is_the_one_releases_move() -> None:
    """docs/github.md tells users `uses: ORG/reconciler@v1`; releases of this version move
    exactly that tag."""
    docs = (ROOT / "docs" / "github.md").read_text()
    named = set(re.findall(r"uses: ORG/reconciler@(v\d+)\b", docs))
    release = check_release(f"v{__version__}", __version__,
                            (ROOT / "CHANGELOG.md").read_text(), [])
    assert named == {release.major_tag} and release.move_major


def test_release_check_refuses_disagreements_and_moves_the_major_tag_only_forwards() -> None:
    release = check_release("v1.3.0", "1.3.0", CHANGELOG, ["v1.2.0", "v1.0.0", "v0.9.0"])
    assert (release.version, release.major_tag, release.move_major) == ("1.3.0", "v1", True)
    assert release.notes == "### Added\n- something"

    # A fix of an older line after 1.3.0 is released, but v1 stays on 1.3.0.
    older = CHANGELOG.replace("[1.3.0] - 2026-12-20", "[1.2.1] - 2026-12-21")
    assert not check_release("v1.2.1", "1.2.1", older, ["v1.3.0", "v1"]).move_major
    # A pre-release never moves it.
    pre = CHANGELOG.replace("[1.3.0]", "[1.4.0-rc.1]")
    assert not check_release("v1.4.0-rc.1", "1.4.0-rc.1", pre, ["v1.3.0"]).move_major
    # A new major version gets its own tag.
    assert check_release("v2.0.0", "2.0.0", CHANGELOG.replace("[1.3.0]", "[2.0.0]"),
                         ["v1.3.0"]).major_tag == "v2"

    for tag, version, changelog, message in [
        ("v1.3.0", "1.2.0", CHANGELOG, "the package says 1.2.0"),
        ("v1.2.0", "1.2.0", CHANGELOG, "newest entry is [1.3.0]"),
        ("1.3.0", "1.3.0", CHANGELOG, "not a release tag"),
        ("v1", "1", CHANGELOG, "not a release tag"),
        ("v1.3.0", "1.3.0", CHANGELOG.replace(" - 2026-12-20", ""), "has no date"),
        ("v1.3.0", "1.3.0", "# Changelog\n\n## [Unreleased]\n", "no release entry"),
        ("v1.3.0", "1.3.0", "## [1.3.0] - 2026-12-20\n\n## [1.2.0] - 2026-12-01\n- x\n",
         "says nothing"),
    ]:
        with pytest.raises(ReleaseError, match=re.escape(message)):
            check_release(tag, version, changelog, [])


def test_the_version_lives_in_one_place() -> None:
    """pyproject reads it from the package; no other shipped file spells it."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["hatch"]["version"]["path"] == "reconciler/__init__.py"
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.split()
    spelled = [name for name in listed
               if name not in ("reconciler/__init__.py", "CHANGELOG.md")
               and not name.startswith(("node_modules", "package", "reconciler/static/",
                                        "tests/"))  # test data names versions of its own
               and (ROOT / name).is_file()
               and re.search(rf"(?<![\d.]){re.escape(__version__)}(?![\d])",
                             (ROOT / name).read_text(errors="replace"))]
    assert spelled == []


def test_every_install_of_the_package_is_pinned_by_the_constraints() -> None:
    """README, the docs, the workflows, the action, the image and the setup script install the
    reconciler with requirements-constraints.txt (scripts/lock.sh, which makes that file from a
    clean resolve, is the one exception)."""
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "action.yml",
             ROOT / "Dockerfile", *sorted((ROOT / ".github" / "workflows").glob("*.yml")),
             *sorted(p for p in (ROOT / "scripts").glob("*.sh") if p.name != "lock.sh")]
    installs = []
    for path in files:
        text = path.read_text().replace("\\\n", " ")  # shell continuations
        text = re.sub(r"\n\s+(?=[-\"$.])", " ", text) if path.suffix == ".yml" else text
        for line in text.splitlines():
            if re.search(r"\bpip(x|\")? install\b", line) and re.search(
                    r"( \.| \"?\.\[|\.whl|lingoost-reconciler)", line):
                installs.append((path.name, line.strip()))
    assert len(installs) >= 8, installs
    unpinned = [item for item in installs if "requirements-constraints.txt" not in item[1]]
    assert unpinned == []
