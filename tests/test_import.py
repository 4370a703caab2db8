"""`reconcile import` (issue 22, item 3), through the CLI on moto: a section the old scripts
published is checked against its manifest with the planner's adoption checks and stamped,
nothing re-encoded (init and segment ETags and dates unchanged); what cannot be adopted is
named with why, left as it is, and the exit code says so."""

from __future__ import annotations

from cli_helpers import reconcile
from conftest import master_languages
from test_adoption import AS_DECLARED, SID, actions, media_objects, old_scripts_section, playlist

from reconciler import layout
from reconciler.observed import STAMP_ADOPTED, STAMP_SOURCE


def master_etag(s3, bucket: str) -> str:
    return s3.head_object(Bucket=bucket, Key=layout.master_key(SID))["ETag"]


def test_import_adopts_an_old_scripts_section_without_re_encoding(
        repo, bucket, s3, media, tmp_path):
    encoded = old_scripts_section(repo, s3, bucket, media, tmp_path)
    old_master = master_etag(s3, bucket)

    imported = reconcile("import", repo.manifests)
    assert imported.code == 0, imported.stdout + imported.stderr
    assert "+ package" not in imported.stderr and "~ adopt audio en" in imported.stderr
    assert media_objects(s3, bucket) == encoded  # nothing encoded nor uploaded again
    for language in (None, "ko", "en"):
        stamp = playlist(s3, bucket, language)[1]
        assert STAMP_SOURCE in stamp and STAMP_ADOPTED in stamp, language
    assert master_etag(s3, bucket) != old_master  # rewritten once all of it is adopted
    assert reconcile("plan", repo.manifests).code == 0  # converged: apply has nothing to do
    again = reconcile("import", repo.manifests)
    assert again.code == 0 and "Apply complete: nothing to do." in again.stdout


def test_import_names_what_it_cannot_adopt_and_leaves_it_to_apply(
        repo, bucket, s3, media, tmp_path):
    encoded = old_scripts_section(repo, s3, bucket, media, tmp_path,
                                  {**AS_DECLARED, "en": "long.mp3"})  # en 8 s

    imported = reconcile("import", repo.manifests, "--section", str(SID))
    assert imported.code == 1, imported.stdout + imported.stderr
    assert ("could not import section 11: en: audio not adopted: written by another tool and "
            "it lasts 8.0s, the video 5.0s; `reconcile apply` rebuilds it") in imported.stdout
    assert media_objects(s3, bucket) == encoded  # en kept as it is, not re-encoded
    assert master_languages(s3, bucket) == ["ko", "en"]  # still lists what it listed
    assert STAMP_ADOPTED in playlist(s3, bucket, None)[1]  # the rest is adopted
    assert STAMP_ADOPTED in playlist(s3, bucket, "ko")[1]
    assert STAMP_SOURCE not in playlist(s3, bucket, "en")[1]

    doc = reconcile("import", repo.manifests, "--format", "json")
    assert doc.code == 1
    [problem] = doc.json()["plan"]["sections"][0]["problems"]
    assert (problem["language"], problem["kind"]) == ("en", "adopt")
    plan = reconcile("plan", repo.manifests, "--format", "json")
    assert {a for a in actions(plan) if a[0].startswith("package")} == {("package_audio", "en")}
