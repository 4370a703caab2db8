"""The status board: every section a row, every language a column (audio ✓/✗, subtitles
✓/✗/–), as an HTML table (the preview's index) or markdown (`verify --format markdown`, the
GitHub job summaries).

Built from what a player would get: observation of the store (preview) or a verify report
(through the CDN). ✓ = listed in master and complete; ✗ = declared or present but not served
(missing from master, incomplete, or failing a check); – = no subtitles for that language.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from . import layout
from .observed import ObservedSection
from .verify import VerifyReport

YES, NO, NONE = "✓", "✗", "–"


@dataclass(frozen=True)
class Row:
    section_id: int
    cells: dict[str, tuple[str, str]]  # language -> (audio mark, subtitles mark)


@dataclass(frozen=True)
class Board:
    languages: list[str]
    rows: list[Row]


def _board(rows: list[Row]) -> Board:
    languages = list(dict.fromkeys(code for row in rows for code in row.cells))
    return Board(languages, rows)


def from_observed(observed: dict[int, ObservedSection]) -> Board:
    """The board of what the store holds (no manifests needed)."""
    rows = []
    for sid, obs in sorted(observed.items()):
        audio_listed = obs.master_languages()
        text_listed = obs.master_languages("SUBTITLES")
        cells = {}
        for code in dict.fromkeys([*audio_listed, *sorted(obs.audio)]):
            audio = YES if code in audio_listed and obs.rendition(code).complete else NO
            cells[code] = (audio, NONE)
        for code in dict.fromkeys([*text_listed, *sorted(obs.subtitles)]):
            text = YES if code in text_listed and obs.subtitle_rendition(code).complete else NO
            cells[code] = (cells.get(code, (NO, NONE))[0], text)
        rows.append(Row(sid, cells))
    return _board(rows)


def from_verify(report: VerifyReport, expected: dict[int, list[str]] | None = None) -> Board:
    """The board of a verify run: a language whose objects failed a check is ✗, as is an
    expected language master does not list."""
    rows = []
    for section in report.sections:
        failed = [f.url for f in section.failures]

        def mark(folder: str, code: str, sid: int = section.section_id,
                 failed: list[str] = failed) -> str:
            prefix = f"{layout.language_root(sid, folder)}{code}/"
            return NO if any(prefix in url for url in failed) else YES

        cells = {code: (NO, NONE) for code in (expected or {}).get(section.section_id, [])}
        for code in section.languages:
            cells[code] = (mark("audio", code), NONE)
        for code in section.subtitles:
            cells[code] = (cells.get(code, (NO, NONE))[0], mark("subtitles", code))
        rows.append(Row(section.section_id, cells))
    return _board(rows)


def _cell(cell: tuple[str, str] | None) -> tuple[str, str]:
    return cell or (NONE, NONE)


def markdown(board: Board) -> str:
    """A GitHub-flavoured markdown table; each cell `audio ✓ · subtitles –`."""
    if not board.rows:
        return "No sections.\n"
    lines = ["| section | " + " | ".join(board.languages) + " |",
             "|---" * (len(board.languages) + 1) + "|"]
    for row in board.rows:
        cells = [_cell(row.cells.get(code)) for code in board.languages]
        lines.append(f"| {row.section_id} | "
                     + " | ".join(f"audio {a} · subtitles {t}" for a, t in cells) + " |")
    return "\n".join(lines) + "\n"


def html_table(board: Board) -> str:
    """The preview's table: each section and each ready cell links to the player."""
    if not board.rows:
        return "<p>No sections under assets/curriculumsection/ yet.</p>"
    head = "".join(f"<th>{html.escape(code)}</th>" for code in board.languages)
    body = []
    for row in board.rows:
        player = f"player.html?section={row.section_id}"
        cells = []
        for code in board.languages:
            audio, text = _cell(row.cells.get(code))
            cells.append(f'<td data-lang="{html.escape(code)}" data-audio="{audio}" '
                         f'data-subtitles="{text}">audio {audio} · subtitles {text}</td>')
        master = html.escape(layout.master_key(row.section_id))
        body.append(f'<tr data-section="{row.section_id}"><th><a href="{player}">Section '
                    f'{row.section_id}</a> (<a href="{master}">master.m3u8</a>)</th>'
                    f'{"".join(cells)}</tr>')
    return (f'<table id="board"><thead><tr><th>section</th>{head}</tr></thead>\n<tbody>\n'
            + "\n".join(body) + "\n</tbody></table>")
