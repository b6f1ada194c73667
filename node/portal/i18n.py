"""The portal's texts: Babel `.po` catalogues (node/portal/locale/<lang>/LC_MESSAGES/*.po: `portal.po` and one
file per audience, read together as one catalogue; a key defined in two files is an error), Chinese by
default, English for every page.

Message ids are keys (`home.title`), never sentences, so that no page can fall back to an untranslated text:
both catalogues must hold every key (tests/portal/test_catalogues.py checks it against the templates and the
code). The catalogues are read with Babel when first needed and kept in memory; `pip install .` ships the `.po`
files (pyproject's package-data), so there is no compile step. The language of a request: `?lang=`, else the
`lang` cookie, else Accept-Language, else Chinese (node.credentials.messages.pick_language).
"""

from __future__ import annotations

import functools
from pathlib import Path

from babel.messages.pofile import read_po

from node.credentials.messages import LANGUAGES, pick_language

__all__ = ["DEFAULT_LANGUAGE", "LANGUAGES", "LOCALE_DIR", "Translator", "catalogue", "language_of", "region_name",
           "translator"]

LOCALE_DIR = Path(__file__).parent / "locale"
DEFAULT_LANGUAGE = "zh"
HTML_LANG = {"zh": "zh-CN", "en": "en"}


@functools.cache
def catalogue(lang: str) -> dict[str, str]:
    """msgid → translation of one language, from every `.po` file of it (fuzzy and empty entries left out)."""
    merged: dict[str, str] = {}
    for path in sorted((LOCALE_DIR / lang / "LC_MESSAGES").glob("*.po")):
        with path.open("rb") as fh:
            parsed = read_po(fh, locale=lang if lang != "zh" else "zh_Hans_CN")
        for m in parsed:
            if m.id and m.string and not m.fuzzy and isinstance(m.id, str):
                if m.id in merged:
                    raise ValueError(f"portal text {m.id!r} is defined twice ({path.name})")
                merged[m.id] = m.string
    return merged


class Translator:
    """`gettext` for one language. A key missing from the catalogue renders as the key itself (a test keeps
    that from ever happening); `%(name)s` placeholders are filled from keyword arguments."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self.html_lang = HTML_LANG[lang]
        self.messages = catalogue(lang)

    def gettext(self, key: str, **values: object) -> str:
        text = self.messages.get(key)
        if text is None:  # an API error code without a text of its own: the general message, never English
            text = self.messages.get("error.generic", key) if key.startswith("err.") else key
        return text % values if values else text

    __call__ = gettext

    def ngettext(self, singular: str, plural: str, n: int, **values: object) -> str:
        return self.gettext(singular if n == 1 else plural, n=n, **values)

    def has(self, key: str) -> bool:
        return key in self.messages


@functools.cache
def translator(lang: str) -> Translator:
    return Translator(lang if lang in LANGUAGES else DEFAULT_LANGUAGE)


def language_of(query_lang: str | None, cookie_lang: str | None, accept_language: str | None) -> str:
    chosen = query_lang if query_lang in LANGUAGES else cookie_lang if cookie_lang in LANGUAGES else None
    return pick_language(chosen, accept_language)


def region_name(t: Translator, code: object) -> str:
    """A region's short name (`shanghai` → 上海 / Shanghai) from the catalogue's `region.<code>`; a code without a
    text of its own (a member admitted later) is shown as it is."""
    if isinstance(code, str) and t.has(f"region.{code}"):
        return t(f"region.{code}")
    return "" if code is None else str(code)
