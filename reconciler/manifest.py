"""Manifests (YAML, one section per file) -> validated desired state.

The JSON Schema in schemas/section.schema.json is the contract; this module adds what a
schema cannot say (BCP 47 validity, uniqueness across files, one default, paths that stay
inside the repository) and reports every problem with file, line and field path. Nothing here
touches a store.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from urllib.parse import unquote, urlsplit

import jsonschema
import langcodes
import yaml

from . import subtitles
from .dubbing_languages import AUTO, elevenlabs_code
from .dubbing_languages import offered as offered_dubbing
from .errors import ReconcilerError
from .language_hints import mistaken_code
from .language_tags import canonical_tag, english_name
from .redaction import redact

MANIFEST_SUFFIXES = (".yaml", ".yml")
MAX_MESSAGE = 240  # characters of one error message (values in it are cut to SHOWN_CHARS)


@dataclass(frozen=True)
class ManifestError:
    """One problem in one manifest: `file:line: field: message`."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class InvalidManifests(ReconcilerError):
    """Raised with every problem found; the CLI prints them all and exits 1."""

    def __init__(self, errors: list[ManifestError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


@dataclass(frozen=True)
class Source:
    """Where an input lives. kind: s3 | https | file | video (the video's own audio track)."""

    kind: str
    uri: str
    path: Path | None = None  # for kind == "file": resolved local path

    def display(self) -> str:
        """Safe to print: no credentials, no query string (a presigned URL's signature). An
        s3:// URI has neither (refused at load), and its `?` belongs to the key: shown whole."""
        return self.uri if self.kind == "s3" else redact(self.uri)


VIDEO_TRACK = Source("video", "source")
DUB_TRANSCRIPT = Source("dub", "dub")  # the transcript ElevenLabs made with a dub


# A language's `fit`: what may be done to audio whose length differs from the video's by more
# than the alignment tolerance (packaging.ALIGN_TOLERANCE); without it such audio is refused.
FIT_PAD, FIT_TRIM, FIT_BOTH = "pad", "trim", "both"


@dataclass(frozen=True)
class Language:
    code: str
    name: str
    default: bool
    audio: Source | None  # None: dubbed by ElevenLabs
    subtitles: Source | None = None  # a .vtt/.srt file, DUB_TRANSCRIPT, or None: no subtitles
    fit: str | None = None  # FIT_PAD, FIT_TRIM, FIT_BOTH, or None: only within the tolerance

    @property
    def may_pad(self) -> bool:
        """Audio shorter than the video may be padded with silence, however much."""
        return self.fit in (FIT_PAD, FIT_BOTH)

    @property
    def may_trim(self) -> bool:
        """Audio longer than the video may be cut at the video's end, however much."""
        return self.fit in (FIT_TRIM, FIT_BOTH)


@dataclass(frozen=True)
class DubbingSettings:
    num_speakers: int = 0
    watermark: bool = False


@dataclass(frozen=True)
class Section:
    section_id: int
    video: Source
    languages: tuple[Language, ...]
    file: str
    source_language: str = "auto"
    dubbing: DubbingSettings = field(default_factory=DubbingSettings)

    def language(self, code: str) -> Language:
        return next(lang for lang in self.languages if lang.code == code)

    def transcript_of(self, lang: Language) -> tuple[str, str]:
        """(dubbed language, ElevenLabs transcript language) for `subtitles: dub`: a dubbed
        language's own, or for the video's own track the first dub's `source` transcript."""
        if lang.audio is None:
            return lang.code, lang.code
        return next(x.code for x in self.languages if x.audio is None), "source"


@cache
def schema() -> dict:
    """The section schema: the repository's schemas/ folder in a checkout (the source of
    truth), else the copy packaged into the wheel."""
    repo_copy = Path(__file__).resolve().parent.parent / "schemas" / "section.schema.json"
    if repo_copy.is_file():
        return json.loads(repo_copy.read_text())
    packaged = resources.files("reconciler").joinpath("schemas/section.schema.json")
    return json.loads(packaged.read_text())


# -- locating YAML nodes for line numbers --------------------------------------------------


def _node_at(node: yaml.Node | None, path: list) -> yaml.Node | None:
    """The deepest YAML node along a JSON path (keys and indexes)."""
    for step in path:
        if isinstance(node, yaml.MappingNode) and isinstance(step, str):
            nxt = next((v for k, v in node.value if k.value == step), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
            nxt = node.value[step] if step < len(node.value) else None
        else:
            nxt = None
        if nxt is None:
            break
        node = nxt
    return node


def _field(path: list) -> str:
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out


class _Context:
    """Collects errors for one file, resolving field paths to line numbers."""

    def __init__(self, file: str, root_node: yaml.Node | None) -> None:
        self.file = file
        self.root_node = root_node
        self.errors: list[ManifestError] = []

    def error(self, path: list, message: str) -> None:
        node = _node_at(self.root_node, path)
        line = node.start_mark.line + 1 if node is not None else None
        if len(message) > MAX_MESSAGE:  # one line each, however large the offending value
            message = message[: MAX_MESSAGE - 1] + "…"
        self.errors.append(ManifestError(self.file, line, _field(path), message))


# -- sources --------------------------------------------------------------------------------

_PATTERN_MESSAGES = {
    "code": "{} is not a valid BCP 47 language tag",
    "sourceLanguage": "{} is not 'auto' or a BCP 47 language tag",
    "name": "{} contains a double quote, a line break or a control character (NAME is a "
            "quoted-string in master.m3u8)",
    "video": "{} contains a line break or a control character, or starts or ends with a space",
    "audio": "{} contains a line break or a control character, or starts or ends with a space",
    "subtitles": "{} contains a line break or a control character, or starts or ends with a "
                 "space",
}
SHOWN_CHARS = 80


def shown(value: object) -> str:
    """A value as an error message may echo it: repr (so line breaks stay visible), at most
    SHOWN_CHARS characters, credentials and presigned queries removed."""
    text = redact(repr(value))
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


S3_SCHEME = "s3://"
_BUCKET = re.compile(r"[A-Za-z0-9._-]+")  # S3's bucket names (legacy ones had capitals and _)
# A query S3 would read as a version: the key is verbatim, so this would silently name another
# object ("k?versionId=3" is a key of its own).
_VERSION_QUERY = re.compile(r"[?&]versionId=", re.IGNORECASE)


def s3_location(uri: str) -> tuple[str, str]:
    """(bucket, key) of an s3:// URI. The key is verbatim, as the AWS CLI takes it: every
    character after the bucket's slash, `#`, `?`, `%` and spaces included (no URL decoding)."""
    bucket, _, key = uri[len(S3_SCHEME):].partition("/")
    return bucket, key


def _s3_problem(value: str) -> str | None:
    """Why an s3:// URI (scheme in any case) cannot name an input, or None."""
    bucket, key = s3_location(value)
    if "@" in bucket:
        return "URL must not embed credentials (user:password@)"
    if not bucket or not key:
        return "expected s3://BUCKET/KEY"
    if not _BUCKET.fullmatch(bucket):
        return f"{shown(bucket)} is not an S3 bucket name (letters, digits, '.', '-', '_')"
    if ".." in unquote(key).split("/"):
        return "S3 key must not contain '..' segments"
    if _VERSION_QUERY.search(key):
        return ("S3 keys are taken verbatim, so '?versionId=' would be part of the key: a "
                "version cannot be chosen; copy that version to a key of its own")
    return None


def _source(ctx: _Context, path: list, value: str, base: Path, root: Path,
            check_files: bool = False) -> Source | None:
    if value[: len(S3_SCHEME)].lower() == S3_SCHEME:
        problem = _s3_problem(value)
        if problem:
            ctx.error(path, problem)
            return None
        return Source("s3", S3_SCHEME + value[len(S3_SCHEME):])
    if "://" in value:
        parts = urlsplit(value)
        scheme = parts.scheme.lower()
        if parts.username or parts.password:
            ctx.error(path, "URL must not embed credentials (user:password@)")
            return None
        if scheme == "https":
            if not parts.hostname:
                ctx.error(path, "expected https://HOST/PATH")
                return None
            if any(c.isspace() for c in value):
                ctx.error(path, "a URL cannot contain whitespace: percent-encode it (%20)")
                return None
            if parts.fragment or value.endswith("#"):
                ctx.error(path, "'#' ends a URL (what follows is never sent, so another file "
                          "would be fetched): percent-encode it (%23)")
                return None
            return Source("https", value)
        ctx.error(path, f"unsupported scheme {shown(scheme)}: use s3://, https:// or a "
                        "relative path")
        return None
    decoded = unquote(value)
    if decoded.startswith(("/", "~")) or Path(decoded).is_absolute():
        ctx.error(path, "absolute paths are not allowed: use a path relative to the manifest")
        return None
    resolved = (base / value).resolve()
    if not (resolved.is_relative_to(root) and (base / decoded).resolve().is_relative_to(root)):
        ctx.error(path, f"path leaves the repository ({root})")
        return None
    if check_files and not resolved.is_file():
        ctx.error(path, "no such file" if not resolved.exists() else "not a regular file")
        return None
    return Source("file", value, resolved)


SUBTITLE_SUFFIXES = (".vtt", ".srt")


def _subtitles(ctx: _Context, path: list, value: str, base: Path, root: Path,
               check_files: bool) -> Source | None:
    """A subtitle file: a source (as audio's) whose name ends in .vtt or .srt; or `dub`.
    With `check_files`, a repository file is also read as subtitles (size, encoding, syntax),
    so `validate` refuses what apply would; its fit to the video is apply's to check."""
    if value == "dub":
        return DUB_TRANSCRIPT
    name = (s3_location(value)[1] if value[: len(S3_SCHEME)].lower() == S3_SCHEME
            else unquote(urlsplit(value).path) if "://" in value else value)
    if not name.lower().endswith(SUBTITLE_SUFFIXES):
        ctx.error(path, f"{shown(value)} is not a .vtt or .srt file")
        return None
    found = _source(ctx, path, value, base, root, check_files)
    if check_files and found is not None and found.path is not None:
        try:
            subtitles.check_size(found.path.stat().st_size, found.display())
            subtitles.parse(found.path.read_bytes(), found.display())
        except subtitles.SubtitleError as err:
            ctx.error(path, str(err))
            return None
    return found


# -- loading --------------------------------------------------------------------------------


def find_root(start: Path) -> Path | None:
    """The git work tree holding start, if any."""
    for folder in [start, *start.parents]:
        if (folder / ".git").exists():
            return folder
    return None


def manifest_files(paths: list[Path]) -> list[Path]:
    """Expand directories to their *.yaml/*.yml files (sorted); keep files as given."""
    files: dict[Path, Path] = {}  # resolved -> as given, so overlapping arguments count once
    for path in paths:
        found = sorted(p for p in path.rglob("*") if p.suffix in MANIFEST_SUFFIXES) \
            if path.is_dir() else [path]
        for file in found:
            files.setdefault(file.resolve(), file)
    return list(files.values())


MAX_MANIFEST_BYTES = 64 * 1024  # a section's manifest is a few hundred bytes
MAX_NESTING = 16  # nodes inside each other; the schema's deepest value is the 4th


class _Loader(yaml.SafeLoader):
    """YAML 1.2 core scalars, no anchors or aliases.

    PyYAML resolves YAML 1.1: `013` is octal 11, `0x0B` and `1_1` are ints, `no` is False.
    Here only plain decimals are ints and floats need a point or an exponent (`013` stays a
    string, which the schema refuses), only
    true/false are booleans, an alias - the way a 449-byte file expands to gigabytes - is
    refused outright, and so is nesting deeper than MAX_NESTING (composing is recursive: a few
    KiB of `[[[…` would otherwise end in a RecursionError)."""

    yaml_implicit_resolvers: dict = {}
    depth = 0

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases (&, *) are not allowed in manifests",
                event.start_mark)
        if self.depth >= MAX_NESTING:
            raise yaml.composer.ComposerError(
                None, None, f"nested deeper than {MAX_NESTING} levels",
                event.start_mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


for _tag, _pattern, _first in [
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:int", r"^[-+]?(?:0|[1-9][0-9]*)$", list("-+0123456789")),
    ("tag:yaml.org,2002:float",
     r"^(?:[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)(?:[eE][-+]?[0-9]+)?|[-+]?[0-9]+[eE][-+]?[0-9]+"
     r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$", list("-+.0123456789")),
]:
    _Loader.add_implicit_resolver(_tag, re.compile(_pattern), _first)


def _duplicate_keys(node: yaml.Node | None) -> list[tuple[yaml.Node, str]]:
    """(key node, key) for every key that repeats one earlier in the same mapping."""
    found: list[tuple[yaml.Node, str]] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if key.value in seen:
                found.append((key, key.value))
            seen.add(key.value)
            found += _duplicate_keys(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            found += _duplicate_keys(item)
    return found


def _check_size(size: int, label: str) -> None:
    if size > MAX_MANIFEST_BYTES:
        raise InvalidManifests([ManifestError(
            label, None, "", f"manifest is {size} bytes; the limit is {MAX_MANIFEST_BYTES}")])


def read_yaml(text: str, label: str) -> tuple[yaml.Node | None, object]:
    """Parse one manifest's text safely: at most MAX_MANIFEST_BYTES, YAML 1.2 core scalars, no
    anchors/aliases, no duplicate keys. Raises InvalidManifests naming every such problem."""
    _check_size(len(text.encode("utf-8")), label)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        duplicates = _duplicate_keys(node)
        if duplicates:
            raise InvalidManifests([
                ManifestError(label, key.start_mark.line + 1, "",
                              f"duplicate key {shown(name)} (a key may appear once)")
                for key, name in duplicates])
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(err, "problem", None) or str(err)
        raise InvalidManifests([ManifestError(label, line, "", f"invalid YAML: {problem}")]) \
            from None
    finally:
        loader.dispose()
    return node, data


Declared = tuple[int, int | None]  # (sectionId, its line): for the check across files


def _declared(node: yaml.Node | None, data: object) -> Declared | None:
    sid = data.get("sectionId") if isinstance(data, dict) else None
    if not isinstance(sid, int) or isinstance(sid, bool):
        return None
    found = _node_at(node, ["sectionId"])
    return sid, (found.start_mark.line + 1 if found is not None and found is not node else None)


def _parse_file(file: Path, root: Path, check_files: bool
                ) -> tuple[Section | None, list[ManifestError], Declared | None]:
    """The section a manifest declares, or its problems; and its sectionId whenever it has a
    usable one (so a duplicate is reported even beside other problems)."""
    label = str(file)
    try:
        _check_size(file.stat().st_size, label)  # before reading it into memory
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        return None, [ManifestError(label, None, "", f"cannot read: {err}")], None
    except InvalidManifests as err:
        return None, err.errors, None
    try:
        node, data = read_yaml(text, label)
    except InvalidManifests as err:
        return None, err.errors, None
    declared = _declared(node, data)
    ctx = _Context(label, node)
    if not isinstance(data, dict):
        ctx.error([], "expected a mapping with sectionId, video and languages")
        return None, ctx.errors, None
    validator = jsonschema.Draft202012Validator(schema())
    schema_paths: list[list] = []
    for err in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        path = list(err.absolute_path)
        schema_paths.append(path)
        if err.validator == "pattern":
            ctx.error(path, _PATTERN_MESSAGES.get(str(path[-1]), "{} is not allowed here")
                      .format(shown(err.instance)))
        elif err.validator == "additionalProperties" and isinstance(err.instance, dict):
            allowed = set(err.schema.get("properties", {}))
            for key in sorted(k for k in err.instance if k not in allowed):
                ctx.error(path + [key], f"{shown(key)} was unexpected (not a field of the schema)")
        else:
            message = err.message.replace(repr(err.instance), shown(err.instance))
            ctx.error(path, redact(message))
    flagged = {tuple(e) for e in schema_paths}

    def valid(*path: str | int) -> bool:
        """No schema error at, around or inside this field: its value has the schema's shape."""
        return not any(f[: len(path)] == path or path[: len(f)] == f for f in flagged)

    sid = data.get("sectionId")
    if valid("sectionId") and (not isinstance(sid, int) or isinstance(sid, bool)):
        ctx.error(["sectionId"], f"{shown(sid)} is not an integer")  # the schema takes 1.0

    base = file.resolve().parent
    video = (_source(ctx, ["video"], data["video"], base, root, check_files)
             if "video" in data and valid("video") else None)
    raw_languages = [(i, raw) for i, raw in enumerate(data.get("languages") or [])
                     if valid("languages", i)]
    languages: list[Language] = []
    seen_codes: dict[str, int] = {}
    seen_names: dict[str, int] = {}
    defaults = [i for i, lang in raw_languages if lang.get("default")]
    if len(defaults) > 1:
        ctx.error(["languages", defaults[1], "default"], "only one language may be the default")
    default_index = defaults[0] if defaults else 0
    dubbed = any("audio" not in raw for _i, raw in raw_languages)
    source_language = data.get("sourceLanguage", AUTO)
    if dubbed and valid("sourceLanguage") and elevenlabs_code(source_language) is None:
        ctx.error(["sourceLanguage"], f"ElevenLabs does not take {shown(source_language)} as "
                  f"the spoken language; use auto or one of: {offered_dubbing()}")
    for i, raw in raw_languages:
        code = raw["code"]
        hint = mistaken_code(code, named="name" in raw)
        if hint or not langcodes.tag_is_valid(code):
            ctx.error(["languages", i, "code"],
                      hint or f"{shown(code)} is not a valid BCP 47 language tag")
            continue
        code = canonical_tag(code)  # before anything is keyed on it: folders, LANGUAGE, dubs
        if code in seen_codes:
            ctx.error(
                ["languages", i, "code"],
                f"duplicate language {shown(raw['code'])} (also languages[{seen_codes[code]}]: "
                f"both are {code})",
            )
            continue
        seen_codes[code] = i
        name = raw.get("name") or english_name(code)
        if name in seen_names:
            ctx.error(
                ["languages", i, "name"],
                f"NAME {shown(name)} is also used by languages[{seen_names[name]}]; "
                "set a unique name",
            )
        seen_names[name] = i
        audio: Source | None = None
        if "audio" in raw:
            audio = (
                VIDEO_TRACK
                if raw["audio"] == "source"
                else _source(ctx, ["languages", i, "audio"], raw["audio"], base, root,
                             check_files)
            )
        elif elevenlabs_code(code) is None:
            ctx.error(["languages", i, "code"], f"ElevenLabs does not dub {shown(code)}; give "
                      f"this language audio, or use one it dubs: {offered_dubbing()}")
        # `dub`: a dubbed language's own transcript; for the video's own track, the source
        # transcript of the section's first dub.
        transcribed = audio is None or (audio == VIDEO_TRACK and dubbed)
        subtitles = (_subtitles(ctx, ["languages", i, "subtitles"], raw["subtitles"], base, root,
                                check_files) if "subtitles" in raw
                     else DUB_TRANSCRIPT if data.get("subtitles") == "dub" and transcribed
                     else None)
        if subtitles == DUB_TRANSCRIPT and not transcribed:
            ctx.error(["languages", i, "subtitles"], "'dub' is the transcript of a dub, but "
                      + ("no language of the section is dubbed" if audio == VIDEO_TRACK else
                         "this language has audio (not dubbed)")
                      + ": give a .vtt or .srt file")
        languages.append(Language(code, name, i == default_index, audio, subtitles,
                                  raw.get("fit")))
    if ctx.errors or video is None:
        return None, ctx.errors, declared
    dubbing = data.get("dubbing", {})
    return (
        Section(
            section_id=data["sectionId"],
            video=video,
            languages=tuple(languages),
            file=label,
            source_language=canonical_tag(data.get("sourceLanguage", "auto")),
            dubbing=DubbingSettings(dubbing.get("numSpeakers", 0), dubbing.get("watermark", False)),
        ),
        [],
        declared,
    )


def load_manifests(paths: list[Path], *, root: Path | None = None,
                   check_files: bool = False) -> list[Section]:
    """Load and validate every manifest; raise InvalidManifests listing every problem of every
    file (a sectionId two files declare is reported even when one of them has other problems).

    `root` bounds relative paths: by default the git work tree holding the manifests, else the
    folder given (or the folder of the file given). `check_files` also requires every relative
    input to be an existing regular file (`reconcile validate`; a plan reports it per section).
    """
    files = manifest_files(paths)
    errors: list[ManifestError] = []
    if not files:
        raise InvalidManifests(
            [ManifestError(", ".join(map(str, paths)) or ".", None, "", "no manifests found")]
        )
    sections: list[Section] = []
    owner: dict[int, str] = {}
    for file in files:
        if not file.exists():
            errors.append(ManifestError(str(file), None, "", "no such file"))
            continue
        start = file.resolve().parent
        bound = root or find_root(start) or (
            next((p.resolve() for p in paths if p.is_dir() and start.is_relative_to(p.resolve())),
                 start)
        )
        section, problems, declared = _parse_file(file, bound.resolve(), check_files)
        errors += problems
        if declared is not None and declared[0] in owner:
            errors.append(ManifestError(str(file), declared[1], "sectionId",
                                        f"duplicate sectionId {declared[0]} "
                                        f"(also in {owner[declared[0]]})"))
            continue
        if declared is not None:
            owner[declared[0]] = str(file)
        if section is not None:
            sections.append(section)
    if errors:
        raise InvalidManifests(errors)
    return sorted(sections, key=lambda s: s.section_id)

