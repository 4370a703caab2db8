"""docs/operations.md runs as written: each recipe's `sh` blocks are split with shlex (comments
dropped, no shell), their documented placeholders (COMMIT, LOCK_ID, $AWS_BUCKET_NAME)
substituted, and run in order from the top of a manifests repository against moto with small
generated lectures; each command must exit as its `exit N` comment says (0 without one), and the
outcome the recipe describes is asserted on the bucket, CloudFront and the fake ElevenLabs."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import Result, reconcile
from conftest import KO_EN, master_languages
from test_adoption import media_objects, old_scripts_section
from test_invalidation import moto_invalidations

from reconciler import layout
from reconciler.cdn.pending import PendingRecord
from reconciler.store import open_store

DOC = Path(__file__).resolve().parent.parent / "docs" / "operations.md"
KO = [{"code": "ko", "audio": "source", "default": True}]
EXPECTED_EXIT = re.compile(r"\s#\s*exit (\d)\b")


def recipe(heading: str) -> Iterator[tuple[list[str], int]]:
    """The commands of the `sh` blocks under one `## heading`: argv and the exit code its
    comment names (0 when it names none)."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert blocks, f"no sh block under '## {heading}'"
    for block in blocks:
        for line in block.splitlines():
            argv = shlex.split(line, comments=True)
            if argv:
                expected = EXPECTED_EXIT.search(line)
                yield argv, int(expected.group(1)) if expected else 0


def run_recipe(heading: str, root: Path, **placeholders: str) -> list[Result]:
    """Run a recipe from `root`: `reconcile` in-process (the CLI as installed), `git` and
    `python` (the virtualenv's) as subprocesses without a shell."""
    results = []
    for argv, expected in recipe(heading):
        argv = [os.path.expandvars(re.sub(r"\b[A-Z][A-Z_]+\b",
                                          lambda m: placeholders.get(m.group(), m.group()), arg))
                for arg in argv]
        if argv[0] == "reconcile":
            result = reconcile(*argv[1:])
        elif argv[0] in ("git", "python"):
            program = sys.executable if argv[0] == "python" else "git"
            done = subprocess.run([program, *argv[1:]], cwd=root, capture_output=True,
                                  text=True, timeout=120, check=False)
            result = Result(done.returncode, done.stdout, done.stderr)
        else:
            raise AssertionError(f"{heading}: a command the runbook may not assume: {argv[0]}")
        assert result.code == expected, (argv, result.stdout, result.stderr)
        results.append(result)
    return results


@pytest.fixture
def workdir(repo, monkeypatch):
    """The top of the manifests repository, a real git work tree, as the current folder."""
    for name in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{name}_NAME", "Operator")
        monkeypatch.setenv(f"GIT_{name}_EMAIL", "operator@example.com")
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "start"]):
        subprocess.run(["git", *args], cwd=repo.root, check=True, capture_output=True)
    monkeypatch.chdir(repo.root)
    return repo.root


def commit(root: Path, message: str) -> str:
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-q", "-m", message], cwd=root, check=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, check=True,
                          capture_output=True, text=True).stdout.strip()


def keys(s3, bucket: str, prefix: str) -> set[str]:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {item["Key"] for item in listed}


def test_re_dub_one_language(repo, workdir, bucket, s3, eleven, distribution, moto_server):
    repo.write(11, [KO[0], {"code": "ja"}])
    assert reconcile("apply").code == 0
    assert len(eleven.creates) == 1
    cf_before = moto_invalidations(moto_server, distribution)

    results = run_recipe("Re-dub one language", workdir)

    planned = results[2].stdout
    assert "+ dub ja" in planned and "package audio ja" in planned, planned
    assert len(eleven.creates) == 2  # exactly one new paid dub
    assert master_languages(s3, bucket) == ["ko", "ja"]
    assert layout.rendition_dir(11, "ja") + "audio.m3u8" in keys(s3, bucket, "assets/")
    sent = moto_invalidations(moto_server, distribution)[len(cf_before):]
    assert any("/assets/curriculumsection/11/audio/ja/*" in paths for paths in sent), sent
    assert reconcile("plan").code == 0


def test_roll_back_a_publish(repo, workdir, bucket, s3):
    repo.write(11, KO_EN)
    commit(workdir, "Publish section 11")
    assert reconcile("apply").code == 0
    repo.write(11, [*KO_EN, {"code": "ja", "audio": "../media/ja.m4a"}])
    published = commit(workdir, "Add Japanese to section 11")
    assert reconcile("apply").code == 0
    assert master_languages(s3, bucket) == ["ko", "en", "ja"]

    run_recipe("Roll back a publish", workdir, COMMIT=published)

    assert master_languages(s3, bucket) == ["ko", "en"]
    assert keys(s3, bucket, layout.rendition_dir(11, "ja"))  # kept until --prune


def test_take_a_section_down(repo, workdir, bucket, s3, distribution, moto_server):
    repo.write(11, KO)
    repo.write(12, KO)
    commit(workdir, "Publish sections 11 and 12")
    assert reconcile("apply").code == 0
    cf_before = moto_invalidations(moto_server, distribution)
    kept = keys(s3, bucket, layout.section_prefix(12))

    run_recipe("Take a section down", workdir)

    assert keys(s3, bucket, layout.section_prefix(11)) == set()
    assert keys(s3, bucket, layout.section_prefix(12)) == kept
    assert moto_invalidations(moto_server, distribution)[len(cf_before):] == [
        ["/assets/curriculumsection/11/*"]]
    assert not (workdir / "manifests" / "section-11.yaml").exists()


def test_recover_a_stuck_lock(repo, workdir, bucket, s3):
    repo.write(11, KO)
    now = time.time()  # a lease as a killed run leaves it: live for another 300 s
    s3.put_object(Bucket=bucket, Key=layout.lock_key(11), Body=json.dumps({
        "lock_id": "5f1e0c2d9a8b7c6d", "owner": {"host": "ci-7", "pid": "4242"},
        "operation": "apply", "created": now - 10, "expires": now + 290}).encode())

    results = run_recipe("Recover a stuck lock", workdir, LOCK_ID="5f1e0c2d9a8b7c6d")

    assert ("section 11 is locked: lock 5f1e0c2d9a8b7c6d held by host ci-7, pid 4242 for "
            "'apply' (expires in") in results[0].stderr
    assert "is live: it expires at" in results[1].stderr
    assert "unlocked section 11: removed lock 5f1e0c2d9a8b7c6d" in results[2].stdout
    assert master_languages(s3, bucket) == ["ko"]
    assert layout.lock_key(11) not in keys(s3, bucket, "locks/")  # released after the apply


def test_resend_a_failed_invalidation(repo, workdir, bucket, distribution, moto_server,
                                      monkeypatch):
    repo.write(11, KO)
    monkeypatch.setenv("CLOUDFRONT_DISTRIBUTION_ID", "EWRONGDISTRIBUTION")
    assert reconcile("apply").code == 1  # published; the invalidation kept pending
    monkeypatch.setenv("CLOUDFRONT_DISTRIBUTION_ID", distribution)  # the cause fixed

    results = run_recipe("Resend a failed invalidation", workdir)

    assert "~ invalidate 1 path pending since" in results[0].stdout
    assert moto_invalidations(moto_server, distribution) == [
        ["/assets/curriculumsection/11/master.m3u8"]]
    assert PendingRecord(open_store(f"s3://{bucket}")).read() == {}


def test_adopt_an_old_bucket(repo, workdir, bucket, s3, media, tmp_path):
    encoded = old_scripts_section(repo, s3, bucket, media, tmp_path)

    results = run_recipe("Adopt an old bucket", workdir)

    for line in ("~ adopt video", "~ adopt audio ko", "~ adopt audio en", "~ write master.m3u8"):
        assert line in results[0].stdout, results[0].stdout
    assert media_objects(s3, bucket) == encoded  # no segment or init written again
