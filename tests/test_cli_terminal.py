"""Terraform habits of the CLI: on a real terminal (a pty) `--apply` shows the plan and asks,
colour unless NO_COLOR; without a terminal it applies as before. `reconcile show`, one key style
in the JSON, one heading in the PR comment."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import reconcile
from conftest import KO_EN

from reconciler import github as gh
from reconciler.cli import APPROVE_PROMPT

ANSI = "\x1b["


def on_terminal(args: list[str], answer: str | None = None, prompt: str = APPROVE_PROMPT,
                **env: str) -> tuple[int, str]:
    """Run `python -m reconciler ARGS` with stdin/stdout/stderr on a pty; type `answer` when the
    `prompt` shows. Returns (exit code, everything the terminal showed)."""
    main, child = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "reconciler", *args], stdin=child,
                            stdout=child, stderr=child, env={**os.environ, **env})
    os.close(child)
    shown, answered, deadline = b"", False, time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if select.select([main], [], [], 0.2)[0]:
                try:
                    chunk = os.read(main, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                shown += chunk
            if answer is not None and not answered and prompt.encode() in shown:
                os.write(main, answer.encode() + b"\n")
                answered = True
        return proc.wait(timeout=30), shown.decode(errors="replace")
    finally:
        os.close(main)
        if proc.poll() is None:
            proc.kill()


def test_apply_on_a_terminal_asks_and_only_yes_applies(repo, tmp_path: Path) -> None:
    repo.write(11, KO_EN)
    store = tmp_path / "store"
    args = ["--apply", str(repo.manifests), "--store", f"file://{store}"]
    master = store / "assets/curriculumsection/11/master.m3u8"

    code, shown = on_terminal(args, answer="y")
    assert code == 1, shown
    assert "+ package video" in re.sub(r"\x1b\[[0-9;]*m", "", shown)  # the plan came first
    assert APPROVE_PROMPT in shown and "apply cancelled; nothing was changed" in shown
    assert not master.exists() and not list((store / "locks").glob("*"))  # lock released
    assert f"{ANSI}32m+" in shown  # green "+" on a terminal

    code, shown = on_terminal(args, answer="yes")
    assert code == 0, shown
    assert master.exists()


def test_no_color_and_auto_approve_on_a_terminal(repo, tmp_path: Path) -> None:
    repo.write(11, KO_EN)
    store = f"file://{tmp_path / 'store'}"
    code, shown = on_terminal(["--plan", str(repo.manifests), "--store", store], NO_COLOR="1")
    assert code == 2 and ANSI not in shown and "+ package video" in shown
    code, shown = on_terminal(["--apply", str(repo.manifests), "--store", store,
                               "--auto-approve"])
    assert code == 0 and APPROVE_PROMPT not in shown, shown


def test_dubbing_is_confirmed_even_with_auto_approve(repo, tmp_path: Path, eleven) -> None:
    repo.write(11, [*KO_EN, {"code": "ja"}])
    store = f"file://{tmp_path / 'store'}"
    code, shown = on_terminal(["--apply", str(repo.manifests), "--store", store,
                               "--auto-approve"], answer="no")
    assert code == 1 and APPROVE_PROMPT in shown, shown
    assert "Dubbing: 0.08 billable minutes." in re.sub(r"\x1b\[[0-9;]*m", "", shown)
    assert eleven.count("POST", "/v1/dubbing") == 0


def test_without_a_terminal_apply_never_asks(repo, tmp_path: Path) -> None:
    repo.write(11, KO_EN)
    proc = subprocess.run(
        [sys.executable, "-m", "reconciler", "--apply", str(repo.manifests), "--store",
         f"file://{tmp_path / 'store'}"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert APPROVE_PROMPT not in proc.stderr and ANSI not in proc.stdout + proc.stderr


def keys(doc, where: str = "") -> list[str]:
    """Every key of a JSON document, except inside `detail` (values a plan reports)."""
    if isinstance(doc, list):
        return [k for item in doc for k in keys(item, where)]
    if not isinstance(doc, dict) or where == "detail":
        return []
    return [*doc, *(k for key, value in doc.items() for k in keys(value, key))]


def test_show_renders_a_saved_plan_and_json_keys_are_camel_case(repo, tmp_path: Path) -> None:
    repo.write(11, KO_EN)
    store = f"file://{tmp_path / 'store'}"
    saved = tmp_path / "plan.json"
    planned = reconcile("--plan", repo.manifests, "--store", store, "--out", saved)
    assert planned.code == 2
    assert reconcile("show", saved).stdout == planned.stdout
    shown = reconcile("show", saved, "--format", "json").json()
    assert shown == json.loads(saved.read_text())["plan"]
    assert shown["formatVersion"] == 2
    assert reconcile("show", saved, "--format", "markdown").stdout == reconcile(
        "--plan", repo.manifests, "--store", store, "--format", "markdown").stdout

    applied = reconcile("--apply", repo.manifests, "--store", store, "--format", "json")
    assert applied.code == 0
    everything = keys(shown) + keys(applied.json())
    assert "invalidationId" in everything and "dubMinutes" in everything
    assert [k for k in everything if not re.fullmatch(r"[a-z][a-zA-Z0-9]*", k)] == []

    old = json.loads(saved.read_text())
    old["plan"]["format_version"] = old["plan"].pop("formatVersion") - 1
    saved.write_text(json.dumps(old))
    res = reconcile("show", saved)
    assert res.code == 1 and "formatVersion 1 is not 2" in res.stderr and not res.stdout


@pytest.mark.parametrize("exit_code", [0, 2])
def test_pr_comment_has_one_heading(repo, tmp_path: Path, exit_code: int) -> None:
    repo.write(11, KO_EN)
    store = f"file://{tmp_path / 'store'}"
    if exit_code == 0:
        assert reconcile("--apply", repo.manifests, "--store", store).code == 0
    planned = reconcile("--plan", repo.manifests, "--store", store, "--format", "markdown")
    assert planned.code == exit_code
    markdown = planned.stdout
    body = gh.build_comment(markdown, exit_code=exit_code, run_url=None, validate_only=False)
    assert [line for line in body.splitlines() if line.startswith("#")] == [
        "### Reconciler plan"]
