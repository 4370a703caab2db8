"""The languages ElevenLabs dubs, and the code it takes for a manifest's BCP 47 tag.

Manifests name languages by BCP 47 tag (`pt-BR`, `zh-Hans`, `ko-KR`); ElevenLabs' dubbing API
takes "a valid iso639-1 or iso639-3 language code" for `target_lang`/`source_lang` and in the
`/audio/{language_code}` and `/transcript/{language_code}` paths. The tag stays the name of the
language everywhere else (HLS `LANGUAGE`/`NAME`, S3 keys); only requests to ElevenLabs use the
code from `elevenlabs_code`.

Source: the official `elevenlabs` Python SDK 2.78.0 (PyPI; `dubbing/raw_client.py`, the field
descriptions above) and ElevenLabs' documentation of dubbing's 32 languages
(elevenlabs-docs, fern/docs/pages/capabilities/dubbing.mdx). Update both together.
"""

from __future__ import annotations

import langcodes

SOURCE = "elevenlabs SDK 2.78.0 / ElevenLabs docs: Dubbing (32 languages)"

# ElevenLabs' code -> the language's English name. ISO 639-1 where the language has one,
# else ISO 639-3 (Filipino: fil).
DUBBING_LANGUAGES: dict[str, str] = {
    "ar": "Arabic",
    "bg": "Bulgarian",
    "cs": "Czech",
    "da": "Danish",
    "de": "German",
    "el": "Greek",
    "en": "English",
    "es": "Spanish",
    "fi": "Finnish",
    "fil": "Filipino",
    "fr": "French",
    "hi": "Hindi",
    "hr": "Croatian",
    "hu": "Hungarian",
    "id": "Indonesian",
    "it": "Italian",
    "ja": "Japanese",
    "ko": "Korean",
    "ms": "Malay",
    "nl": "Dutch",
    "no": "Norwegian",
    "pl": "Polish",
    "pt": "Portuguese",
    "ro": "Romanian",
    "ru": "Russian",
    "sk": "Slovak",
    "sv": "Swedish",
    "ta": "Tamil",
    "tr": "Turkish",
    "uk": "Ukrainian",
    "vi": "Vietnamese",
    "zh": "Chinese",
}

# Primary subtags that are another name for a language ElevenLabs lists under its own code:
# Norwegian Bokmål and Nynorsk are dubbed as Norwegian, Mandarin as Chinese.
_SAME_LANGUAGE = {"nb": "no", "nn": "no", "cmn": "zh"}

AUTO = "auto"  # source_lang: let ElevenLabs detect the spoken language


def elevenlabs_code(tag: str) -> str | None:
    """The ElevenLabs code for a BCP 47 tag (`pt-BR` -> `pt`, `zh-Hans` -> `zh`, `tl` -> `fil`),
    or None when ElevenLabs does not dub that language. `auto` stays `auto`."""
    if tag == AUTO:
        return AUTO
    try:
        primary = langcodes.Language.get(langcodes.standardize_tag(tag)).language
    except langcodes.tag_parser.LanguageTagError:
        return None
    code = _SAME_LANGUAGE.get(primary or "", primary)
    return code if code in DUBBING_LANGUAGES else None


def offered() -> str:
    """The languages ElevenLabs dubs, for an error message: `ar, bg, cs, ...`."""
    return ", ".join(DUBBING_LANGUAGES)
