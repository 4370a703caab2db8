"""The API's round-trip edit of manifests people wrote (reconciler/api/manifest_edit.py): the
text after an edit is the text before plus exactly the new entries, in every list style the
schema allows; and what it writes reads back, with the CLI's safe reader, as the intended data."""

from __future__ import annotations

import pytest

from reconciler.api.manifest_edit import ManifestEdit, edited, new_manifest
from reconciler.manifest import read_yaml

ADD = ManifestEdit(languages=[{"code": "ja"}, {"code": "ko", "audio": "source"}])

CASES = {
    "block, dash at the key's column": (
        "sectionId: 12\nvideo: s3://u/v.mp4\nlanguages:\n- code: en\n",
        "sectionId: 12\nvideo: s3://u/v.mp4\nlanguages:\n- code: en\n- code: ja\n"
        "- code: ko\n  audio: source\n"),
    "block, indented, comments after the list": (
        "sectionId: 12\nlanguages:\n  - code: en  # English\n# more later\n\nvideo: v.mp4\n",
        "sectionId: 12\nlanguages:\n  - code: en  # English\n  - code: ja\n"
        "  - code: ko\n    audio: source\n# more later\n\nvideo: v.mp4\n"),
    "flow": (
        "sectionId: 12\nvideo: 'v.mp4'\nlanguages: [{code: en}]\n",
        "sectionId: 12\nvideo: 'v.mp4'\nlanguages: [{code: en}, {code: ja}, "
        "{code: ko, audio: source}]\n"),
}


@pytest.mark.parametrize("before, after", CASES.values(), ids=CASES.keys())
def test_only_the_new_entries_are_added(before: str, after: str) -> None:
    assert edited(before, ADD) == after
    _node, data = read_yaml(after, "after")
    assert [lang["code"] for lang in data["languages"]] == ["en", "ja", "ko"]


def test_a_new_manifest_reads_back_as_declared() -> None:
    text = new_manifest(7, "s3://u/v.mp4", "ko", ADD.languages)
    _node, data = read_yaml(text, "new")
    assert data == {"sectionId": 7, "video": "s3://u/v.mp4", "sourceLanguage": "ko",
                    "languages": ADD.languages}
