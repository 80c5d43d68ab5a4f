"""User names compared the way people read them: one normalisation for "same name", one for "looks the same".

* ``username_key``: NFKC, then Unicode case folding (``str.casefold``), the
  "compatibility caseless match" of Unicode §3.13. Two names with one key are one
  user: ``Ada``, ``ADA`` and ``ａｄａ`` (fullwidth) all sign in as ``ada``, and so does
  ``Kate`` spelled with the Kelvin sign (U+212A, which NFKC makes ``K``): that is what
  the normalisation says, on purpose. It replaces ``str.lower()``, which gave the
  same answer for the Kelvin sign but no documented rule for the rest.
* ``username_skeleton``: every character replaced by one representative of its
  class of look-alikes (Unicode's confusables data, UTS #39, as packaged by
  ``confusable-homoglyphs``), then the key. Two names with one skeleton cannot
  both be registered: beside ``alice``, ``aIice`` (capital I), ``a1ice`` and
  ``AIice`` are refused, as ``bob``/``b0b`` and ``modern``/``rnodern`` are.

A name may hold only ``[A-Za-z0-9_.-]`` (``rawws.accounts.passwords.USERNAME``), so
the classes that matter are those among these characters: ``{0, O}``, ``{1, I, l}``
and ``{m, rn}``; they are read from the library's data, not written here.
"""

from __future__ import annotations

import functools
import string
import unicodedata

#: the characters a user name may hold (``rawws.accounts.passwords.USERNAME``)
NAME_CHARACTERS = frozenset(string.ascii_letters + string.digits + "_.-")
BIDI_MARKS = "\u200e\u200f"  # the confusables data wraps right-to-left glyphs in these


def username_key(username: str) -> str:
    """The name as compared for identity: NFKC, then case folding."""
    return unicodedata.normalize("NFKC", username).casefold()


def username_skeleton(username: str) -> str:
    """The name as compared for look-alikes: each confusable character as its class's representative, then the key."""
    representatives = _representatives()
    text = unicodedata.normalize("NFKC", username)
    # Twice: case folding can make a character that has look-alikes (``M`` → ``m`` ~ ``rn``).
    for _ in range(2):
        text = username_key("".join(representatives.get(c, c) for c in text))
    return text


@functools.cache
def _representatives() -> dict[str, str]:
    """Each name character that has look-alikes among name characters → its class's representative.

    Classes are the connected sets of the confusables relation (union-find). The
    representative is the longest member (``rn`` for ``m``: a single character can
    become two, never the reverse), then a letter over a digit, then lower case over
    upper (``l`` for ``1`` and ``I``), so that case folding afterwards keeps them one.
    Built on first use: the library reads its 0.9 MB table when imported (~0.1 s), which
    only a registration or a migration needs.
    """
    from confusable_homoglyphs import confusables  # type: ignore[import-untyped]

    parent: dict[str, str] = {}

    def find(item: str) -> str:
        while parent.setdefault(item, item) != item:
            item = parent[item]
        return item

    for character in sorted(NAME_CHARACTERS):
        found = confusables.is_confusable(character, greedy=True, preferred_aliases=[])
        for entry in found or []:
            for glyph in entry["homoglyphs"]:
                text = glyph["c"].strip(BIDI_MARKS)
                if text and set(text) <= NAME_CHARACTERS and text != character:
                    parent[find(text)] = find(character)
    classes: dict[str, list[str]] = {}
    for member in list(parent):
        classes.setdefault(find(member), []).append(member)
    representatives: dict[str, str] = {}
    for members in classes.values():
        chosen = max(
            members, key=lambda m: (len(m), m.isalpha(), m.islower(), -ord(m[0]))
        )
        for member in members:
            if len(member) == 1 and member != chosen:
                representatives[member] = chosen
    return representatives
