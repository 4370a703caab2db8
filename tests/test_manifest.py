"""Manifests -> validated desired state: the dataclasses a valid manifest loads to, and for every
kind of problem an InvalidManifests whose error names the file, the line and the field path."""

from __future__ import annotations

import re
import tempfile
import textwrap
from pathlib import Path

import langcodes
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler import layout
from reconciler.manifest import (
    VIDEO_TRACK,
    DubbingSettings,
    InvalidManifests,
    Language,
    ManifestError,
    Section,
    Source,
    find_root,
    load_manifests,
    s3_location,
)

BCP47_SHAPE = re.compile(r"^[A-Za-z0-9]{1,8}(-[A-Za-z0-9]{1,8})*$")
SECRET = "Sup3rS3cretPw"


class Tree:
    """A throw-away repository: .git, manifests/ and media/ (no real media: loading never
    opens local inputs)."""

    def __init__(self, root: Path, git: bool = True) -> None:
        self.root = root
        root.mkdir(parents=True)
        if git:
            (root / ".git").mkdir()
        self.manifests = root / "manifests"
        self.manifests.mkdir()
        (root / "media").mkdir()

    def write(self, name: str, text: str, folder: Path | None = None) -> Path:
        path = (folder or self.manifests) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path


@pytest.fixture
def tree(tmp_path) -> Tree:
    return Tree(tmp_path / "repo")


def errors(paths: list[Path], **kw) -> list[ManifestError]:
    with pytest.raises(InvalidManifests) as info:
        load_manifests(paths, **kw)
    assert str(info.value) == "\n".join(str(e) for e in info.value.errors)
    return info.value.errors


def only_error(path: Path) -> ManifestError:
    """The one error loading `path` gives; it must name the file in its text too."""
    found = errors([path])
    assert len(found) == 1, found
    err = found[0]
    assert err.file == str(path)
    assert str(err).startswith(f"{path}:")
    return err


def manifest(languages: str, *, section_id: int = 1, video: str = "../media/lecture.mp4") -> str:
    """A manifest whose `languages:` key is on line 4, so its first item is on line 5."""
    return f"sectionId: {section_id}\nvideo: {video}\nsourceLanguage: ko\nlanguages:\n" + (
        textwrap.dedent(languages).strip("\n") + "\n"
    )


# -- valid manifests ------------------------------------------------------------------------


def test_valid_manifest_loads_to_exact_dataclasses(tree):
    path = tree.write("section-7.yaml", """
        sectionId: 7
        video: ../media/lecture.mp4
        sourceLanguage: ko
        dubbing:
          numSpeakers: 2
          watermark: true
        languages:
          - code: ko
            audio: source
          - code: en
            audio: ../media/en.mp3
            default: true
          - code: ja
            name: 日本語
            audio: s3://dubs-bucket/section-7/ja.m4a
          - code: zh-Hans
            audio: https://cdn.example.com/dubs/zh.mp3
          - code: pt-BR
    """)
    [section] = load_manifests([tree.manifests])
    media = (tree.root / "media").resolve()
    assert section == Section(
        section_id=7,
        video=Source("file", "../media/lecture.mp4", media / "lecture.mp4"),
        languages=(
            Language("ko", "Korean", False, Source("video", "source")),
            Language("en", "English", True, Source("file", "../media/en.mp3", media / "en.mp3")),
            Language("ja", "日本語", False, Source("s3", "s3://dubs-bucket/section-7/ja.m4a")),
            Language("zh-Hans", "Chinese (Simplified)", False,
                     Source("https", "https://cdn.example.com/dubs/zh.mp3")),
            Language("pt-BR", "Portuguese (Brazil)", False, None),
        ),
        file=str(path),
        source_language="ko",
        dubbing=DubbingSettings(num_speakers=2, watermark=True),
    )
    assert section.languages[0].audio == VIDEO_TRACK
    assert section.language("ja").name == "日本語"
    assert section.language("en").default is True


def test_defaults_for_optional_fields(tree):
    tree.write("s.yaml", "sectionId: 3\nvideo: v.mp4\nlanguages:\n  - code: en\n")
    [section] = load_manifests([tree.manifests])
    assert section.source_language == "auto"
    assert section.dubbing == DubbingSettings(num_speakers=0, watermark=False)
    assert section.languages == (Language("en", "English", True, None),)


def test_without_an_explicit_default_the_first_language_is_the_default(tree):
    tree.write("s.yaml", manifest("""
        - code: ja
        - code: ko
          default: false
        - code: en
    """))
    [section] = load_manifests([tree.manifests])
    assert [(lang.code, lang.default) for lang in section.languages] == [
        ("ja", True), ("ko", False), ("en", False)]


def test_explicit_default_wins_over_position(tree):
    tree.write("s.yaml", manifest("""
        - code: ja
        - code: ko
        - code: en
          default: true
    """))
    [section] = load_manifests([tree.manifests])
    assert [lang.default for lang in section.languages] == [False, False, True]


@pytest.mark.parametrize(("code", "name"), [
    ("ko", "Korean"),
    ("en", "English"),
    ("ja", "Japanese"),
    ("zh-Hans", "Chinese (Simplified)"),
    ("pt-BR", "Portuguese (Brazil)"),
    ("es", "Spanish"),
])
def test_name_defaults_to_the_english_name(tree, code, name):
    tree.write("s.yaml", manifest(f"- code: {code}"))
    [section] = load_manifests([tree.manifests])
    assert section.languages[0].name == name


def test_relative_paths_resolve_against_the_manifest_folder(tree):
    nested = tree.manifests / "term1" / "week2"
    tree.write("s.yaml", """
        sectionId: 5
        video: clips/lecture.mp4
        languages:
          - code: en
            audio: ../../../media/en.mp3
          - code: ko
            audio: ./ko.m4a
    """, folder=nested)
    [section] = load_manifests([tree.manifests])
    assert section.video == Source("file", "clips/lecture.mp4",
                                   nested.resolve() / "clips" / "lecture.mp4")
    assert section.language("en").audio.path == (tree.root / "media" / "en.mp3").resolve()
    assert section.language("ko").audio.path == nested.resolve() / "ko.m4a"


@pytest.mark.parametrize(("uri", "kind"), [
    ("s3://bucket/prefix/lecture.mp4", "s3"),
    ("https://cdn.example.com/v/lecture.mp4?X-Amz-Expires=60", "https"),
    ("HTTPS://cdn.example.com/v/lecture.mp4", "https"),
])
def test_remote_sources_are_kept_verbatim(tree, uri, kind):
    tree.write("s.yaml", manifest("- code: en", video=uri))
    [section] = load_manifests([tree.manifests])
    assert section.video == Source(kind, uri, None)


@pytest.mark.parametrize(("uri", "bucket", "key"), [
    ("s3://b/lectures/intro#2?take=3&v=1.mp4", "b", "lectures/intro#2?take=3&v=1.mp4"),
    ("s3://b/강의 영상/1강 소개.mp4", "b", "강의 영상/1강 소개.mp4"),
    ("s3://b/en%20final.mp3", "b", "en%20final.mp3"),
    ("S3://b//leading-slash.mp4", "b", "/leading-slash.mp4"),
])
def test_s3_keys_are_every_character_after_the_bucket(tree, uri, bucket, key):
    tree.write("s.yaml", manifest("- code: en", video=f"'{uri}'"))
    [section] = load_manifests([tree.manifests])
    assert section.video.kind == "s3"
    assert s3_location(section.video.uri) == (bucket, key)
    assert section.video.display() == "s3://" + uri[5:]  # `?` is the key's: shown whole


@pytest.mark.parametrize(("value", "ok"), [
    ("../media/강의 영상/1강 소개.mp4", True), ("../media/a\u3000b.mp4", True),
    ("' ../media/x.mp4'", False), ("'../media/x.mp4 '", False), ('"../media/a\tb.mp4"', False),
])
def test_relative_paths_may_hold_spaces_but_not_start_or_end_with_one(tree, value, ok):
    path = tree.write("s.yaml", manifest("- code: en", video=value))
    if ok:
        [section] = load_manifests([tree.manifests])
        assert section.video.path == (tree.manifests / yaml.safe_load(value)).resolve()
    else:
        err = only_error(path)
        assert (err.line, err.field) == (2, "video")
        assert "starts or ends with a space" in err.message


def test_sections_from_many_files_come_back_sorted_by_id(tree):
    for section_id in (30, 4, 12):
        tree.write(f"s{section_id}.yml", manifest("- code: en", section_id=section_id))
    tree.write("notes.txt", "not a manifest")
    sections = load_manifests([tree.manifests])
    assert [s.section_id for s in sections] == [4, 12, 30]
    assert [Path(s.file).name for s in sections] == ["s4.yml", "s12.yml", "s30.yml"]


def test_a_single_file_can_be_given(tree):
    path = tree.write("one.yaml", manifest("- code: en", section_id=9))
    tree.write("other.yaml", manifest("- code: en", section_id=10))
    assert [s.section_id for s in load_manifests([path])] == [9]


def test_source_display_strips_a_presigned_signature():
    uri = ("https://bucket.s3.amazonaws.com/dubs/en.mp3?X-Amz-Algorithm=AWS4-HMAC-SHA256"
           "&X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature=9f86d081884c7d659a2feaa0c55ad015")
    shown = Source("https", uri).display()
    assert shown.startswith("https://bucket.s3.amazonaws.com/dubs/en.mp3")
    assert "9f86d081884c7d659a2feaa0c55ad015" not in shown
    assert "X-Amz-Signature" not in shown and "AKIAEXAMPLE" not in shown
    plain = "https://cdn.example.com/en.mp3"
    assert Source("https", plain).display() == plain
    assert Source("s3", "s3://b/k.mp3").display() == "s3://b/k.mp3"


def test_loaded_presigned_source_displays_without_signature(tree):
    uri = "https://h.example.com/en.mp3?X-Amz-Signature=feedfacefeedface"
    tree.write("s.yaml", manifest(f"- code: en\n  audio: '{uri}'"))
    [section] = load_manifests([tree.manifests])
    assert section.languages[0].audio.uri == uri
    assert "feedfacefeedface" not in section.languages[0].audio.display()


# -- the repository root bound ----------------------------------------------------------------


def test_relative_path_may_reach_a_sibling_folder_inside_the_repo(tree):
    tree.write("s.yaml", manifest("- code: en\n  audio: ../media/en.mp3"))
    [section] = load_manifests([tree.manifests])
    assert section.languages[0].audio.path == (tree.root / "media" / "en.mp3").resolve()


def test_relative_path_may_not_leave_the_folder_holding_git(tree):
    path = tree.write("s.yaml", manifest("- code: en\n  audio: ../../outside.mp3"))
    err = only_error(path)
    assert (err.line, err.field) == (6, "languages[0].audio")
    assert "leaves the repository" in err.message


def test_git_root_bounds_even_when_a_subfolder_is_given(tree):
    sub = tree.manifests / "sub"
    tree.write("s.yaml", manifest("- code: en\n  audio: ../../media/en.mp3"), folder=sub)
    [section] = load_manifests([sub])
    assert section.languages[0].audio.path == (tree.root / "media" / "en.mp3").resolve()


def test_outside_git_the_folder_given_bounds_relative_paths(tmp_path):
    proj = Tree(tmp_path / "proj", git=False)
    assert find_root(proj.manifests) is None  # precondition: no work tree above tmp_path
    good = proj.write("good.yaml", manifest("- code: en\n  audio: clips/en.mp3", section_id=1,
                                            video="lecture.mp4"))
    [section] = load_manifests([proj.manifests])
    assert section.languages[0].audio.path == (proj.manifests / "clips" / "en.mp3").resolve()

    bad = proj.write("bad.yaml", manifest("- code: en\n  audio: ../media/en.mp3", section_id=2,
                                          video="lecture.mp4"))
    [err] = errors([proj.manifests])
    assert (err.file, err.line, err.field) == (str(bad), 6, "languages[0].audio")
    assert "leaves the repository" in err.message
    # the folder that was given is the bound, so the parent folder makes it valid
    assert [s.section_id for s in load_manifests([proj.root])] == [1, 2]
    # a file given directly is bounded by its own folder
    assert load_manifests([good])[0].section_id == 1
    [err] = errors([bad])
    assert err.field == "languages[0].audio"


def test_explicit_root_overrides_the_bound(tmp_path):
    proj = Tree(tmp_path / "proj", git=False)
    proj.write("s.yaml", manifest("- code: en\n  audio: ../media/en.mp3"))
    [section] = load_manifests([proj.manifests], root=proj.root)
    assert section.languages[0].audio.path == (proj.root / "media" / "en.mp3").resolve()


# -- errors: file, line, field path -----------------------------------------------------------


def test_invalid_yaml_names_the_line_of_the_problem(tree):
    path = tree.write("s.yaml", """
        sectionId: 1
        languages:
          - code: en
        video: a: b
    """)
    err = only_error(path)
    assert err.line == 4
    assert err.message.startswith("invalid YAML")


def test_unclosed_flow_sequence_is_invalid_yaml(tree):
    path = tree.write("s.yaml", "sectionId: 1\nvideo: v.mp4\nlanguages: [en,\n\nfoo: 2\n")
    err = only_error(path)
    assert err.message.startswith("invalid YAML")
    assert err.line is not None and err.line >= 3


@pytest.mark.parametrize("text", ["- 1\n- 2\n", "just a sentence\n", "42\n"])
def test_document_that_is_not_a_mapping(tree, text):
    path = tree.write("s.yaml", text)
    err = only_error(path)
    assert err.line == 1
    assert "expected a mapping" in err.message


@pytest.mark.parametrize(("text", "line", "field", "words"), [
    pytest.param("sectionId: 1\nlanguages:\n  - code: en\n", 1, "",
                 ["'video' is a required property"], id="missing required top-level field"),
    pytest.param(manifest("""
        - code: en
        - name: Korean
          audio: source
    """), 6, "languages[1]", ["'code' is a required property"], id="missing language code"),
    pytest.param(manifest("""
        - code: en
          default: true
        - code: ko
        - code: ja
          default: true
    """), 9, "languages[2].default", ["only one"], id="two defaults"),
    pytest.param(manifest("""
        - code: en
          name: Lecture audio
        - code: ko
          name: Lecture audio
    """), 8, "languages[1].name", ["Lecture audio", "languages[0]"], id="duplicate explicit name"),
    pytest.param(manifest("- code: en\n- code: en-US\n  name: English"), 7, "languages[1].name",
                 ["'English'", "languages[0]"], id="explicit name colliding with a default name"),
])
def test_a_mistake_is_named_by_its_line_field_and_what_is_wrong(tree, text, line, field, words):
    err = only_error(tree.write("s.yaml", text))
    assert (err.line, err.field) == (line, field)
    assert all(word in err.message for word in words), err.message


@pytest.mark.parametrize(("text", "line", "fields"), [
    ("sectionId: 1\nvideo: v.mp4\ncolour: red\nlanguages:\n  - code: en\n",
     3, ("", "colour")),
    (manifest("- code: en\n- code: ko\n  colour: red"),
     7, ("languages[1]", "languages[1].colour")),
], ids=["top-level", "in-a-language"])
def test_additional_property_names_the_line_of_the_unexpected_key(tree, text, line, fields):
    path = tree.write("s.yaml", text)
    err = only_error(path)
    assert "'colour' was unexpected" in err.message
    assert err.field in fields
    assert err.line == line


@pytest.mark.parametrize("value", ["0", "-4", '"7"', "seven", "true", "null"])
def test_section_id_must_be_a_positive_integer(tree, value):
    path = tree.write("s.yaml", f"video: v.mp4\nsectionId: {value}\nlanguages:\n  - code: en\n")
    err = only_error(path)
    assert (err.line, err.field) == (2, "sectionId")


def test_section_id_float_never_reaches_the_s3_layout_as_a_float(tree):
    """`sectionId: 1.0` is a JSON-Schema integer, but the S3 prefix must still be .../1/."""
    tree.write("s.yaml", "sectionId: 1.0\nvideo: v.mp4\nlanguages:\n  - code: en\n")
    try:
        [section] = load_manifests([tree.manifests])
    except InvalidManifests as exc:
        assert [e.field for e in exc.errors] == ["sectionId"]
    else:
        assert type(section.section_id) is int
        assert layout.section_prefix(section.section_id) == "assets/curriculumsection/1/"


def test_duplicate_section_id_across_files_names_both(tree):
    first = tree.write("a.yaml", manifest("- code: en", section_id=8))
    second = tree.write("b.yaml", "# the same section again\n" + manifest("- code: ko",
                                                                          section_id=8))
    [err] = errors([tree.manifests])
    assert (err.file, err.line, err.field) == (str(second), 2, "sectionId")
    assert str(first) in err.message and "8" in err.message


@pytest.mark.parametrize("second", ["en", "EN", "En"])
def test_duplicate_language_code_is_case_insensitive(tree, second):
    path = tree.write("s.yaml", manifest(f"- code: en\n- code: ko\n- code: {second}"))
    err = only_error(path)
    assert (err.line, err.field) == (7, "languages[2].code")
    assert "duplicate" in err.message and "languages[0]" in err.message


@pytest.mark.parametrize(("given", "canonical"), [
    ("KO", "ko"), ("EN-us", "en-US"), ("zh-hans", "zh-Hans"), ("ZH-HANT-tw", "zh-Hant-TW"),
    ("es-419", "es-419"), ("sgn-be-fr", "sgn-BE-FR"), ("EN-x-US", "en-x-us"),
    ("de-CH-1996", "de-CH-1996"), ("pt-BR", "pt-BR"),
])
def test_language_tags_are_loaded_in_canonical_case(tree, given, canonical):
    # the video's own audio: a tag ElevenLabs does not dub (sgn-BE-FR) is still a language
    tree.write("s.yaml", manifest(f"- code: {given}\n  audio: source").replace(
                                                               "sourceLanguage: ko",
                                                               f"sourceLanguage: {given}"))
    [section] = load_manifests([tree.manifests])
    assert [lang.code for lang in section.languages] == [canonical]
    assert section.source_language == canonical
    assert layout.audio_dir(1, section.languages[0].code).endswith(f"/audio/{canonical}/")


def test_two_tags_equal_but_for_case_are_one_language_named_in_the_error(tree):
    path = tree.write("s.yaml", manifest("- code: en-US\n- code: ko\n- code: EN-us"))
    err = only_error(path)
    assert (err.line, err.field) == (7, "languages[2].code")
    assert err.message == "duplicate language 'EN-us' (also languages[0]: both are en-US)"


@pytest.mark.parametrize("code", ["en_US", "xx-Latn-XX-x", "toolongtag1", "../en", "", "1",
                                  "en-", "en--US", "zz"])
def test_invalid_bcp47_tags(tree, code):
    path = tree.write("s.yaml", manifest(f"- code: en\n- code: '{code}'"))
    err = only_error(path)
    assert (err.line, err.field) == (6, "languages[1].code")
    assert "BCP 47" in err.message


@pytest.mark.parametrize("uri", ["ftp://host/x.mp3", "http://host/x.mp3", "file:///etc/passwd"])
def test_unsupported_schemes(tree, uri):
    path = tree.write("s.yaml", manifest(f"- code: en\n  audio: '{uri}'"))
    err = only_error(path)
    assert (err.line, err.field) == (6, "languages[0].audio")
    assert "unsupported scheme" in err.message
    path.write_text(manifest("- code: en", video=uri))
    err = only_error(path)
    assert (err.line, err.field) == (2, "video")


@pytest.mark.parametrize("uri", [
    f"https://user:{SECRET}@host.example.com/x.mp3",
    f"https://:{SECRET}@host.example.com/x.mp3",
    f"s3://user:{SECRET}@bucket/x.mp3",
])
def test_embedded_credentials_are_rejected_without_echoing_the_password(tree, uri):
    path = tree.write("s.yaml", manifest(f"- code: en\n  audio: '{uri}'"))
    with pytest.raises(InvalidManifests) as info:
        load_manifests([tree.manifests])
    assert SECRET not in str(info.value)
    [err] = info.value.errors
    assert (err.file, err.line, err.field) == (str(path), 6, "languages[0].audio")
    assert "credentials" in err.message


@pytest.mark.parametrize("uri", [
    f"https://user:{SECRET}@host.example.com/my lecture.mp3",  # whitespace: a schema error
    f"https://user:{SECRET}@host.example.com/" + "x" * 2100,   # too long: a schema error
], ids=["whitespace", "too-long"])
def test_password_is_not_echoed_by_other_errors_about_the_same_url(tree, uri):
    tree.write("s.yaml", manifest("- code: en", video=f"'{uri}'"))
    with pytest.raises(InvalidManifests) as info:
        load_manifests([tree.manifests])
    assert [e.field for e in info.value.errors] == ["video"]
    assert SECRET not in str(info.value)


@pytest.mark.parametrize("uri", ["s3://bucket/a/../x.mp3", "s3://bucket/../x.mp3",
                                 "s3://bucket/%2e%2e/x.mp3", "s3://bucket", "s3:///key.mp3"])
def test_bad_s3_uris(tree, uri):
    path = tree.write("s.yaml", manifest(f"- code: en\n  audio: '{uri}'"))
    err = only_error(path)
    assert (err.line, err.field) == (6, "languages[0].audio")


@pytest.mark.parametrize("value", [
    "../../etc/passwd",
    "../../../../../../etc/passwd",
    "%2e%2e/%2e%2e/x",
    "%2E%2E/%2E%2E/%2E%2E/x",
    "/etc/passwd",
    "%2Fetc%2Fpasswd",
    "~/x",
    "~root/x",
])
def test_path_traversal_is_rejected(tree, value):
    path = tree.write("s.yaml", manifest(f"- code: en\n  audio: '{value}'"))
    err = only_error(path)
    assert (err.line, err.field) == (6, "languages[0].audio")
    path.write_text(manifest("- code: en", video=f"'{value}'"))
    err = only_error(path)
    assert (err.line, err.field) == (2, "video")


def test_no_manifests_found(tree):
    empty = tree.root / "empty"
    empty.mkdir()
    (empty / "README.md").write_text("no yaml here")
    [err] = errors([empty])
    assert err.file == str(empty)
    assert err.message == "no manifests found"


def test_missing_file(tree):
    missing = tree.manifests / "nope.yaml"
    [err] = errors([missing])
    assert (err.file, err.message) == (str(missing), "no such file")


def test_every_problem_is_reported_in_one_raise(tree):
    a = tree.write("a.yaml", manifest("""
        - code: en_US
        - code: ko
          audio: ftp://host/ko.mp3
    """, section_id=1))
    b = tree.write("b.yaml", "sectionId: 0\nvideo: v.mp4\nlanguages:\n  - code: en\n")
    c = tree.write("c.yaml", manifest("- code: ko\n  audio: ftp://host/ko.mp3\n- code: KO",
                                      section_id=3))
    tree.write("d.yaml", manifest("- code: en", section_id=4))
    found = errors([tree.manifests])
    assert {(e.file, e.line, e.field) for e in found} == {
        (str(a), 5, "languages[0].code"),
        (str(a), 7, "languages[1].audio"),  # reported beside the schema error (issue 11)
        (str(b), 1, "sectionId"),
        (str(c), 6, "languages[0].audio"),
        (str(c), 7, "languages[1].code"),
    }


# -- properties -------------------------------------------------------------------------------

POOL = ["ko", "en", "ja", "zh-Hans", "pt-BR", "es", "fr", "de", "vi", "th", "id", "ar", "he",
        "hi", "ru", "uk", "tr", "it", "nl", "pl"]
AUDIO = [None, "source", "../media/dub.mp3", "s3://bucket/dub.m4a", "https://h.example.com/d.mp3"]


@st.composite
def sections(draw):
    codes = draw(st.lists(st.sampled_from(POOL), min_size=1, max_size=8, unique=True))
    default = draw(st.none() | st.integers(0, len(codes) - 1))
    languages = []
    for i, code in enumerate(codes):
        lang: dict = {"code": code}
        if draw(st.booleans()):
            lang["name"] = f"Track {i} ({code})"
        # ElevenLabs dubs neither Thai nor Hebrew: those always come with audio
        audio = draw(st.sampled_from(AUDIO[1:] if code in ("th", "he") else AUDIO))
        if audio is not None:
            lang["audio"] = audio
        if i == default:
            lang["default"] = True
        elif draw(st.booleans()):
            lang["default"] = False
        languages.append(lang)
    return languages


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(sections(), min_size=1, max_size=3),
       st.lists(st.integers(1, 10**6), min_size=3, max_size=3, unique=True))
def test_generated_valid_manifests_load_and_keep_order_and_default_rules(docs, ids):
    with tempfile.TemporaryDirectory() as tmp:
        tree = Tree(Path(tmp) / "repo")
        for section_id, languages in zip(ids, docs, strict=False):
            doc = {"sectionId": section_id, "video": "../media/v.mp4", "languages": languages}
            (tree.manifests / f"s{section_id}.yaml").write_text(yaml.safe_dump(doc))
        loaded = load_manifests([tree.manifests])
    expected_ids = ids[: len(docs)]
    assert [s.section_id for s in loaded] == sorted(expected_ids)
    by_id = dict(zip(expected_ids, docs, strict=False))
    for section in loaded:
        raw = by_id[section.section_id]
        assert [lang.code for lang in section.languages] == [r["code"] for r in raw]
        flagged = [i for i, r in enumerate(raw) if r.get("default")]
        want = flagged[0] if flagged else 0
        assert [lang.default for lang in section.languages] == [
            i == want for i in range(len(raw))]
        for lang, r in zip(section.languages, raw, strict=True):
            assert lang.name == r.get("name", langcodes.Language.get(r["code"]).display_name())
            if "audio" not in r:
                assert lang.audio is None
            elif r["audio"] == "source":
                assert lang.audio == VIDEO_TRACK
            else:
                assert lang.audio.uri == r["audio"]


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.one_of(
    st.text(max_size=20),
    st.from_regex(BCP47_SHAPE, fullmatch=True),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCXYZ0123456789-_x", max_size=16),
))
def test_arbitrary_codes_are_accepted_only_when_valid_else_named(code):
    with tempfile.TemporaryDirectory() as tmp:
        tree = Tree(Path(tmp) / "repo")
        path = tree.manifests / "s.yaml"
        path.write_text(yaml.safe_dump(
            {"sectionId": 1, "video": "v.mp4", "languages": [{"code": code}]}))
        try:
            [section] = load_manifests([path])
        except InvalidManifests as exc:
            assert [(e.file, e.field) for e in exc.errors] == [(str(path), "languages[0].code")]
            return
    assert BCP47_SHAPE.fullmatch(code)
    assert langcodes.tag_is_valid(code)
    # Only the case changes, and to BCP 47's canonical case (langcodes as the oracle).
    assert section.languages[0].code.lower() == code.lower()
    assert section.languages[0].code == langcodes.Language.get(code, normalize=False).to_tag()


# -- NAMEs and codes from the whole of Unicode: refused, or master carries exactly them --------

HOSTILE = ["\n", "\r", "\r\n", "\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x00", "\x1c",
           "\x1f", "\x7f", "\x9f", '"', ",", "=", "\\", " ", "#EXT-X-MEDIA:", "\ufeff"]
ANY_CHAR = st.characters(blacklist_categories=("Cs",))  # every code point UTF-8 can carry
UNICODE_TEXT = st.lists(st.one_of(ANY_CHAR, st.sampled_from(HOSTILE)), min_size=0,
                        max_size=12).map("".join)


def _facts(uri: str, codec: str, kind: str):
    from reconciler.hls import MediaPlaylist, Segment
    from reconciler.master import Facts
    from reconciler.mp4 import TrackInfo

    playlist = MediaPlaylist(4, (Segment(uri, 4.0),))
    track = TrackInfo(kind, codec, width=320 if kind == "video" else None,
                      height=180 if kind == "video" else None, channels=2)
    return Facts(playlist, track, {uri: 1000})


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.one_of(UNICODE_TEXT, st.sampled_from(["ko", "en", "ja", "pt-BR"]),
                                    st.sampled_from(["ko", "en"]).map(lambda c: c + "\n")),
                          st.one_of(UNICODE_TEXT, st.none())),
                min_size=1, max_size=4))
def test_every_master_written_parses_back_to_exactly_the_declared_languages(langs):
    """Property (issue 11): whatever NAME and code a manifest declares, from the full Unicode
    range, either the manifest is refused or master.m3u8 parses back to exactly those
    languages and NAMEs, in order (no injected line, no lost track)."""
    from reconciler.hls import parse_master
    from reconciler.master import compose_master

    doc_langs = [{"code": code, **({"name": name} if name is not None else {})}
                 for code, name in langs]
    with tempfile.TemporaryDirectory() as tmp:
        tree = Tree(Path(tmp) / "repo")
        path = tree.manifests / "s.yaml"
        path.write_text(yaml.safe_dump({"sectionId": 1, "video": "v.mp4",
                                        "languages": doc_langs}), encoding="utf-8")
        try:
            [section] = load_manifests([path])
        except InvalidManifests as exc:
            assert all(e.file == str(path) and "\n" not in str(e) for e in exc.errors)
            return
    declared = [(lang.code, lang.name) for lang in section.languages]
    assert [code for code, _ in declared] == [code for code, _ in langs]
    assert [name for (_, name), (_, raw) in zip(declared, langs, strict=True)
            if raw is not None] == [raw for _, raw in langs if raw is not None]
    video = _facts("v_000.m4s", "avc1.64001e", "video")
    audio = {code: _facts("a_000.m4s", "mp4a.40.2", "audio") for code, _ in declared}
    master = parse_master(compose_master(section, video, audio))
    assert [(m["LANGUAGE"], m["NAME"]) for m in master.media] == declared
    assert [m["DEFAULT"] for m in master.media].count("YES") == 1
    assert [uri for _, uri in master.variants] == ["video/video.m3u8"]


@pytest.mark.parametrize("name", ["Korean\n", "Korean\r", "Ko\u2028rean", "Ko\u2029rean",
                                  "Korean\x85", "Ko\x0brean", "Ko\x0crean", "Ko\x00rean",
                                  "Ko\x1frean", "Ko\x7frean", "Ko\x9frean", 'Ko"rean'])
def test_name_with_a_line_break_quote_or_control_character_is_refused(tree, name):
    path = tree.write("s.yaml", yaml.safe_dump({"sectionId": 1, "video": "v.mp4",
                                                "languages": [{"code": "ko", "name": name}]}))
    with pytest.raises(InvalidManifests) as exc:
        load_manifests([path])
    [error] = exc.value.errors
    assert error.field == "languages[0].name" and "line break" in error.message
    assert "\n" not in str(error) and "\r" not in str(error)


# -- hostile YAML (issue 11 items 4 and 7) ------------------------------------------------------

ALIAS_BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
sectionId: 1
video: v.mp4
languages: *h
"""


def test_alias_bomb_is_refused_at_its_first_anchor(tree):
    path = tree.write("s.yaml", ALIAS_BOMB)
    err = only_error(path)
    assert err.line == 1 and "anchors and aliases (&, *) are not allowed" in err.message
    assert len(str(err)) < 300


def test_a_single_anchor_or_alias_is_refused_too(tree):
    path = tree.write("s.yaml", manifest("- &x {code: en}\n- code: ja"))
    assert "anchors and aliases" in only_error(path).message


def test_manifest_over_64_kib_is_refused_unread(tree):
    path = tree.write("s.yaml", manifest("- code: en") + "# " + "x" * 70_000 + "\n")
    err = only_error(path)
    assert err.message == f"manifest is {path.stat().st_size} bytes; the limit is 65536"


def test_echoed_values_are_cut_to_80_characters(tree):
    path = tree.write("s.yaml", manifest(f"- code: en\n  audio: ftp://{'a' * 3000}/x.mp3"))
    err = only_error(path)
    assert len(err.message) < 160 and "…" in err.message, err.message
    long_code = tree.write("t.yaml", manifest(f"- code: {'q' * 3000}", section_id=2))
    assert len(only_error(long_code).message) < 160


@pytest.mark.parametrize("value", ["013", "0x0B", "1_1", "0o13", "1:20", "+013"])
def test_section_id_is_a_plain_decimal_yaml_1_2_integer(tree, value):
    path = tree.write("s.yaml", f"sectionId: {value}\nvideo: v.mp4\nlanguages:\n  - code: en\n")
    err = only_error(path)
    assert (err.line, err.field) == (1, "sectionId") and "is not of type 'integer'" in err.message


def test_yaml_1_1_booleans_are_plain_strings(tree):
    """`no` is Norwegian, not False; only true/false are booleans."""
    path = tree.write("s.yaml", manifest("- code: no\n- code: en\n  default: yes"))
    assert [(e.field, e.message) for e in errors([path])] == [
        ("languages[1].default", "'yes' is not of type 'boolean'")]
    ok = tree.write("s.yaml", manifest("- code: no\n- code: en\n  default: true"))
    [section] = load_manifests([ok])
    assert [lang.code for lang in section.languages] == ["no", "en"]


def test_duplicate_keys_are_refused_not_last_wins(tree):
    path = tree.write("s.yaml", "sectionId: 1\nvideo: v.mp4\nsectionId: 2\nlanguages:\n"
                                "  - code: en\n    code: ja\n")
    found = errors([path])
    assert [(e.line, e.message) for e in found] == [
        (3, "duplicate key 'sectionId' (a key may appear once)"),
        (6, "duplicate key 'code' (a key may appear once)")]


@pytest.mark.parametrize("sid, ok", [(2**31 - 1, True), (2**31, False), (10**30, False)])
def test_section_id_upper_bound_is_the_apis(tree, sid, ok):
    path = tree.write("s.yaml", f"sectionId: {sid}\nvideo: v.mp4\nlanguages:\n  - code: en\n")
    if ok:
        assert load_manifests([path])[0].section_id == sid
    else:
        assert only_error(path).field == "sectionId"


def test_duplicate_section_id_is_reported_beside_other_problems(tree):
    a = tree.write("a.yaml", manifest("- code: en", section_id=7))
    b = tree.write("b.yaml", manifest("- code: en_US\n- code: ja\n  audio: ftp://x/y.mp3",
                                      section_id=7))
    assert {(e.file, e.field) for e in errors([tree.manifests])} == {
        (str(b), "languages[0].code"), (str(b), "languages[1].audio"), (str(b), "sectionId")}
    assert a.exists()


def test_check_files_requires_regular_files_inside_the_repository(tree, tmp_path):
    (tree.root / "media" / "lecture.mp4").write_bytes(b"x")
    (tree.root / "media" / "folder.mp3").mkdir()
    outside = tmp_path / "outside.mp3"
    outside.write_bytes(b"x")
    (tree.root / "media" / "link.mp3").symlink_to(outside)
    path = tree.write("s.yaml", manifest("""
        - code: en
          audio: ../media/missing.mp3
        - code: ja
          audio: ../media/folder.mp3
        - code: fr
          audio: ../media/link.mp3
    """))
    found = {(e.field, e.message.split(" (")[0]) for e in errors([path], check_files=True)}
    assert found == {("languages[0].audio", "no such file"),
                     ("languages[1].audio", "not a regular file"),
                     ("languages[2].audio", "path leaves the repository")}
    missing = tree.write("t.yaml", manifest("- code: en\n  audio: ../media/missing.mp3",
                                            section_id=2))
    assert load_manifests([missing])  # without check_files the plan reports it per section
