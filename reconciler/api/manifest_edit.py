"""The API's edits of a manifest people wrote: round-trip YAML, so only the change is new.

Why: a manifest is reviewed text in git. Re-serialising it (PyYAML) drops every comment and
re-quotes and re-orders; the API's commit would then be a rewrite of the file, not "add ja".
ruamel.yaml's round-trip mode keeps comments, key order, quoting, blank lines and the file's
indentation; the API only appends language entries and, with replaceVideo, swaps the video.

What it parses has already passed the CLI's safe reader (`manifest.read_yaml`: size cap, no
anchors or aliases, no duplicate keys), and what it writes is validated by that same reader
before it replaces the file (service._write_manifest), so the two parsers never disagree
silently.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString
from ruamel.yaml.tokens import CommentToken
from ruamel.yaml.util import load_yaml_guess_indent

from .config import MANIFEST_HEADER

WIDTH = 4096  # never re-fold a long line the author wrote on one line


@dataclass(frozen=True)
class ManifestEdit:
    """What a request changes in a section's manifest: a new video (replaceVideo) and
    language entries appended in order ({"code": "ja"} or {"code": "ko", "audio": "source"})."""

    video: str | None = None
    languages: list[dict[str, str]] = field(default_factory=list)


def new_manifest(section_id: int, video: str, source_language: str | None,
                 languages: list[dict[str, str]]) -> str:
    """The text of a manifest the API creates (with a header saying who wrote it)."""
    doc = CommentedMap(sectionId=section_id, video=video)
    if source_language:
        doc["sourceLanguage"] = source_language
    doc["languages"] = [CommentedMap(entry) for entry in languages]
    return MANIFEST_HEADER + _dump(doc, _yaml(2, 2, 0))


def edited(text: str, edit: ManifestEdit) -> str:
    """`text` with the edit applied and nothing else changed."""
    doc, sequence, offset = load_yaml_guess_indent(text, yaml=_yaml(2, 2, 0))
    yaml = _yaml(2, sequence or 2, offset or 0)  # the file's own list indentation
    if edit.video is not None:
        _replace(doc, "video", edit.video)
    if edit.languages:
        languages = doc.get("languages")
        if not isinstance(languages, CommentedSeq):
            languages = doc["languages"] = CommentedSeq()
        for entry in edit.languages:
            _append(languages, CommentedMap(entry))
    return _dump(doc, yaml)


def _yaml(mapping: int, sequence: int, offset: int) -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = WIDTH
    yaml.brace_single_entry_mapping_in_flow_sequence = True  # `[{code: en}]` stays as written
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    return yaml


def _dump(doc: Any, yaml: YAML) -> str:
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def _replace(doc: CommentedMap, key: str, value: str) -> None:
    """Set a scalar, quoted the way the author quoted the old one, its end-of-line comment
    kept as far from it as before (ruamel keeps the comment's column, not its gap)."""
    old = doc.get(key)
    for style in (DoubleQuotedScalarString, SingleQuotedScalarString):
        if isinstance(old, style):
            value = style(value)
            break
    slots = doc.ca.items.get(key)
    comment = slots[2] if slots and len(slots) > 2 else None
    if isinstance(comment, CommentToken) and isinstance(old, str):
        comment.column += len(value) - len(old)
    doc[key] = value


def _append(languages: CommentedSeq, entry: CommentedMap) -> None:
    """Append an entry after the last one. ruamel keeps the comments and blank lines that
    follow a sequence on its last entry; they are moved to the new last entry, so they stay
    after the list (the old last entry keeps only its own end-of-line comment)."""
    last = languages[-1] if languages else None
    languages.append(entry)
    if not isinstance(last, CommentedMap) or not last:
        return
    key = list(last.keys())[-1]
    slots = last.ca.items.get(key)
    token = slots[2] if slots and len(slots) > 2 else None
    if not isinstance(token, CommentToken):
        return
    own, newline, trailing = token.value.partition("\n")
    if not trailing:
        return
    token.value = own + newline
    entry.ca.items[list(entry.keys())[-1]] = [
        None, None, CommentToken("\n" + trailing, token.start_mark, None), None]
