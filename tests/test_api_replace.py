"""The HTTP API takes `replace` as `reconcile apply --replace` (issue 22, item 2): a dry run
shows the replacement and its billable minutes, a job pays exactly one new dub, a target the
merged manifest does not declare is a 422 naming the field. Real server, moto, fake ElevenLabs."""

from __future__ import annotations

from test_api import api, clip, eleven, source, spec_body  # noqa: F401  (fixtures)


def test_replace_redubs_one_language_through_the_api(api, source, eleven):  # noqa: F811
    server = api(workers=1)
    body = {**spec_body(source, 12, ["ko", "en"], key="lectures/clip.mp4"),
            "sourceLanguage": "ko"}
    with server.client() as client:
        first = client.post("/api/dubbing", params={"wait": 60}, json=body)
        assert first.status_code == 200 and first.json()["ok"], first.text
        assert [c["target_lang"] for c in eleven.creates] == ["en"]

        unknown = client.post("/api/dubbing", json={**body, "replace": ["fr"]})
        assert unknown.status_code == 422, unknown.text
        assert unknown.json()["field"] == "replace"
        assert "replace fr: section 12's manifest declares no language 'fr'" in \
            unknown.json()["message"]

        dry = client.post("/api/dubbing", params={"dryRun": "true"},
                          json={**body, "replace": ["en"]})
        assert dry.status_code == 200, dry.text
        changes = {(a["type"], a["change"], a["language"]) for a in dry.json()["actions"]}
        assert {("dub", "replace", "en"), ("package_audio", "replace", "en")} <= changes
        assert dry.json()["billableMinutes"] > 0
        assert len(eleven.creates) == 1  # a dry run pays nothing

        redone = client.post("/api/dubbing", params={"wait": 60},
                             json={**body, "replace": ["en"]})
        assert redone.status_code == 200 and redone.json()["ok"], redone.text
        assert redone.json()["jobId"] is not None  # a job, though everything was served
        assert [c["target_lang"] for c in eleven.creates] == ["en", "en"]  # exactly one more
