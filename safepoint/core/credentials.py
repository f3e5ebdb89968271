"""The known credential formats redaction finds by default: a small table of prefixes and shapes.

Each format is recognised by its own documented shape (a fixed prefix and a run of token characters), not by
entropy, so ordinary text, ids, hashes and base64 data are left alone. `anchors` are literal bytes every match
contains, for `find` on one string. On the save path `suspect` decides first, over the encoded JSON, whether any
string may hold one: a scan for a few single bytes each format must contain (`-` of `sk-`, `_` of `ghp_`, ...),
checked where they occur; the patterns then run only on strings when it says yes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Format:
    name: str
    anchors: tuple[bytes, ...]
    pattern: re.Pattern[str]
    #: the pattern group holding the secret itself (0: the whole match; a label before it stays readable)
    group: int = 0


def _f(name: str, anchors: tuple[bytes, ...], pattern: str, group: int = 0) -> Format:
    return Format(name, anchors, re.compile(pattern), group)


# Token characters around a match must not continue it: a key inside a longer word is not that key.
_B = r"(?<![A-Za-z0-9_\-])"
_E = r"(?![A-Za-z0-9_\-])"

FORMATS: tuple[Format, ...] = (
    _f("anthropic", (b"sk-ant-",), _B + r"sk-ant-[A-Za-z0-9_\-]{20,}" + _E),
    _f("openai", (b"sk-",), _B + r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}" + _E),
    _f("stripe", (b"_live_",), _B + r"(?:sk|rk)_live_[A-Za-z0-9]{20,}" + _E),
    _f("google", (b"AIza",), _B + r"AIza[0-9A-Za-z_\-]{35}" + _E),
    _f("aws_access_key_id", (b"AKIA", b"ASIA"), r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])"),
    _f(
        "aws_secret_access_key",
        (b"ecret_access_key", b"ECRET_ACCESS_KEY", b"ecretAccessKey"),
        r"(?i:secret_?access_?key)[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])",
        1,
    ),
    _f("github", (b"hp_", b"ho_", b"hu_", b"hs_", b"hr_"), _B + r"gh[pousr]_[A-Za-z0-9]{36,}" + _E),
    _f("github", (b"github_pat_",), _B + r"github_pat_[A-Za-z0-9_]{22,}" + _E),
    _f("slack", (b"xox",), _B + r"xox[abposr]-[A-Za-z0-9\-]{10,}" + _E),
    _f("slack", (b"xapp-",), _B + r"xapp-[0-9]-[A-Za-z0-9\-]{10,}" + _E),
    _f("jwt", (b"eyJ",), _B + r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}" + _E),
    _f(
        "private_key",
        (b"PRIVATE KEY-----",),
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----(?:.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|.*)",
    ),
    _f("bearer", (b"earer",), r"(?i:\bbearer)\s+([A-Za-z0-9\-._~+/]{16,}=*)(?![A-Za-z0-9\-._~+/=])", 1),
)
_DOTALL = {"private_key"}
FORMATS = tuple(
    Format(f.name, f.anchors, re.compile(f.pattern.pattern, re.DOTALL), f.group) if f.name in _DOTALL else f
    for f in FORMATS
)
ANCHORS: tuple[bytes, ...] = tuple(sorted({anchor for f in FORMATS for anchor in f.anchors}))

_TOKEN = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def _dash(data: bytes, i: int) -> bool:
    # sk-... (openai, anthropic) at a token boundary, xox?- / xapp- (slack), "... PRIVATE KEY-----" (PEM)
    if data.endswith(b"sk", 0, i):
        return i < 3 or data[i - 3] not in _TOKEN
    return data.endswith((b"xoxa", b"xoxb", b"xoxo", b"xoxp", b"xoxr", b"xoxs", b"xapp", b"PRIVATE KEY"), 0, i)


def _underscore(data: bytes, i: int) -> bool:
    # gh?_ / github_pat_ (github), sk_live_ / rk_live_ (stripe), secret_access_key labels (aws)
    if data.endswith((b"ghp", b"gho", b"ghu", b"ghs", b"ghr", b"github", b"secret", b"Secret", b"SECRET"), 0, i):
        return True
    return data.endswith((b"sk", b"rk"), 0, i) and data.startswith(b"live_", i + 1)


def _literal(data: bytes, literal: bytes, first: int, second: int) -> bool:
    """Whether `literal` occurs in `data`, found through two of its bytes (at offsets `first`, `second`): their
    occurrences are walked side by side, and once either byte has no more occurrences every place the literal
    could be has been checked. So the cost follows the rarer of the two bytes, whichever it is in this data."""
    a, b = literal[first : first + 1], literal[second : second + 1]
    i, j = data.find(a), data.find(b)
    while i != -1 and j != -1:
        if data.startswith(literal, i - first) or data.startswith(literal, j - second):
            return True
        i, j = data.find(a, i + 1), data.find(b, j + 1)
    return False


def _each(data: bytes, byte: bytes, check: Callable[[bytes, int], bool]) -> bool:
    i = data.find(byte)
    while i != -1:
        if check(data, i):
            return True
        i = data.find(byte, i + 1)
    return False


# Finding a single byte is a memchr, the C library's fastest scan (~1 us per 64 KiB where `in` with a short
# string takes 40-50 us); the few places a rare byte occurs are then checked.
_LITERALS = ((b"AIza", 1, 2), (b"AKIA", 1, 2), (b"ASIA", 1, 2), (b"eyJ", 2, 1), (b"AccessKey", 6, 0))


def suspect(encoded: bytes) -> bool:
    """Whether encoded JSON may hold a known credential (False is certain; True asks for `find`)."""
    return (
        _each(encoded, b"-", _dash)
        or _each(encoded, b"_", _underscore)
        or any(_literal(encoded, literal, a, b) for literal, a, b in _LITERALS)
        or _each(encoded, b"B", lambda data, i: data.startswith((b"Bearer", b"BEARER"), i))
        or b"bearer" in encoded  # lower case: no rare byte in it to look for
    )


def find(text: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, format name) of every known credential in `text`, in order, not overlapping."""
    spans: list[tuple[int, int, str]] = []
    for fmt in FORMATS:
        if not any(anchor.decode() in text for anchor in fmt.anchors):
            continue
        for match in fmt.pattern.finditer(text):
            start, end = match.span(fmt.group)
            if not any(s < end and start < e for s, e, _ in spans):
                spans.append((start, end, fmt.name))
    return iter(sorted(spans))
