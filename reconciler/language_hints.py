"""Country codes written where a language code belongs (`kr` for Korean, `jp` for Japanese).

Some are no language at all (`jp`, `cn`, `gr` ...): the manifest is refused anyway, and the
error now names the likely language. Others are another, real language (`kr` is Kanuri, `se`
Northern Sami, `br` Breton, `tw` Twi): almost always a mistake in a catalogue like ours, so they
are refused too, unless the language entry gives its own `name` (which says the rare language
is meant).
"""

from __future__ import annotations

import langcodes

# country code -> the language usually meant
MISTAKEN = {
    "kr": "ko", "jp": "ja", "cn": "zh", "gr": "el", "dk": "da", "se": "sv", "cz": "cs",
    "ua": "uk", "vn": "vi", "br": "pt-BR", "tw": "zh-Hant", "ir": "fa", "il": "he",
}


def mistaken_code(code: str, *, named: bool) -> str | None:
    """Why `code` is probably a country code, with the language meant; None when it is not in
    the table, or is a real language confirmed by an explicit `name` (`named`)."""
    meant = MISTAKEN.get(code.lower())
    if meant is None:
        return None
    guess = f"did you mean {meant} ({langcodes.Language.get(meant).display_name()})?"
    if not langcodes.tag_is_valid(code):
        return f"{code} is not a language code ({code.upper()} is a country) — {guess}"
    if named:
        return None
    language = langcodes.Language.get(code).display_name()
    return (f"{code} is {language} — {guess} (if {language} is meant, give the language a "
            "`name`)")
