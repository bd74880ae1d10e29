"""Bytes -> text in the encodings people have: UTF-8, Windows-1252, Latin-1, ... or detected.

``prepare_text.encoding`` is ``auto`` or any codec name Python knows (``utf-8``, ``cp1252``,
``latin-1``, ``mac_roman``...). ``auto`` reads UTF-8 when the bytes are valid UTF-8 (exact,
and what most files are), honours a UTF-16/32 byte-order mark, and otherwise asks
charset-normalizer (MIT), the detector ``requests`` uses. Among its candidates that explain the
bytes equally well it prefers Windows-1252: English text with curly quotes (byte 0x93) fits
cp1250 and cp1252 alike, and cp1252 is what Windows editors wrote (the seed project's novels are
cp1252); a tie broken the other way would turn ``à`` into ``ŕ``.

Binary files are refused in one line: NUL bytes, no encoding that decodes them, or a decoding
that is mostly control characters.
"""

from __future__ import annotations

import codecs

from genlab.errors import GenlabError, InputError

# candidates that only a byte-order mark may choose: without one, any even-length byte string
# "decodes" as UTF-16 into CJK characters
_BOM_ONLY = ("utf_16", "utf_16_be", "utf_16_le", "utf_32", "utf_32_be", "utf_32_le")
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
# a decoding in which more than this share of characters are control codes is binary, not text
MAX_CONTROL_SHARE = 0.01
PREFERRED = "cp1252"


class TextEncodingError(GenlabError, ValueError):
    """The bytes are not text in the asked (or any detected) encoding; the message is one line."""


def check_encoding_name(name: str) -> str:
    """`name` if it is ``auto`` or a codec Python knows, else a ValueError naming the choices."""
    if name == "auto":
        return name
    try:
        codecs.lookup(name)
    except LookupError:
        raise InputError(f"unknown text encoding {name!r} (allowed: auto, or a Python codec name "
                         "such as utf-8, cp1252, latin-1, mac_roman)") from None
    return name


def _control_share(text: str) -> float:
    if not text:
        return 0.0
    bad = sum(1 for c in text if (c < " " and c not in "\t\n\r\f") or "\x7f" <= c <= "\x9f")
    return bad / len(text)


def detect_encoding(raw: bytes, final: bool = True) -> str:
    """The encoding ``auto`` picks for `raw` (see the module docstring); TextEncodingError if none.

    ``final=False``: `raw` is the head of a longer file, so a character cut at its end is fine.
    """
    for bom, name in _BOMS:
        if raw.startswith(bom):
            return name
    if b"\x00" in raw:
        raise TextEncodingError("is not text (it holds NUL bytes)")
    try:
        codecs.getincrementaldecoder("utf-8")().decode(raw, final=final)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    import charset_normalizer  # imported here: a second or so, and only non-UTF-8 files need it

    matches = charset_normalizer.from_bytes(raw, cp_exclusion=list(_BOM_ONLY))
    best = matches.best()
    if best is None:
        raise TextEncodingError("is not text in any encoding charset-normalizer knows")
    for m in matches:
        if m.chaos == best.chaos and m.coherence == best.coherence and PREFERRED in m.could_be_from_charset:
            return PREFERRED
    return codecs.lookup(best.encoding).name


def decode_text(raw: bytes, encoding: str = "auto", final: bool = True) -> tuple[str, str]:
    """(`raw` decoded, the encoding used); `encoding` is ``auto`` or a codec name.

    A byte the named encoding cannot decode, NUL bytes or a mostly-control decoding is a
    :class:`TextEncodingError` whose one-line message starts with ``is not ...`` (callers put
    the file name in front). ``final=False``: `raw` is a file's head (a cut character is fine).
    """
    used = detect_encoding(raw, final) if encoding == "auto" else encoding
    if encoding != "auto" and b"\x00" in raw and not used.replace("-", "_").lower().startswith(("utf_16", "utf_32", "utf16", "utf32")):
        raise TextEncodingError("is not text (it holds NUL bytes)")
    try:
        text = codecs.getincrementaldecoder(used)().decode(raw, final=final)
    except UnicodeDecodeError as exc:
        raise TextEncodingError(f"is not {used} text (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
                                + ("; try prepare_text.encoding=auto or cp1252" if encoding != "auto" else "")) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if _control_share(text) > MAX_CONTROL_SHARE:
        raise TextEncodingError(f"is not text (as {used}, more than {MAX_CONTROL_SHARE:.0%} of it is control characters)")
    return text, used
