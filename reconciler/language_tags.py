"""BCP 47 language tags as manifests declare them: the canonical case every folder, LANGUAGE
attribute and dub is keyed on, and the English name NAME defaults to (CLDR, via langcodes)."""

from __future__ import annotations

import langcodes


def canonical_tag(tag: str) -> str:
    """A language tag in BCP 47's canonical case (RFC 5646 2.1.1): `EN-us` -> `en-US`,
    `zh-hans` -> `zh-Hans`. Up to the first singleton (`x-`, `u-` ...), a later two-letter
    subtag is a region (UPPER) and a four-letter one a script (Title); all else is lower. Only
    case changes, so the tag means what it meant; S3 folders and LANGUAGE are keyed on it."""
    subtags = tag.lower().split("-")
    for i, subtag in enumerate(subtags[1:], 1):
        if len(subtags[i - 1]) == 1:
            break  # an extension or private use follows: lowercase to the end
        if len(subtag) == 2:
            subtags[i] = subtag.upper()
        elif len(subtag) == 4 and subtag.isalpha():
            subtags[i] = subtag.title()
    return "-".join(subtags)


def english_name(code: str) -> str:
    return langcodes.Language.get(code).display_name("en")
