"""What the rules are willing to read, so that no grade can run long, whatever the input.

A grade must end within a second on any thread of any process, so nothing here relies on a signal or
a timeout: inputs that could make a parse or a big-number computation explode are refused up front,
and the caller leaves them undecided. Every limit is far above what a real final answer needs.
"""

from __future__ import annotations

import re
import unicodedata

MAX_RESPONSE_CHARS = 200_000  # a response is read up to this length from its end (where the answer is)
MAX_ANSWER_CHARS = 1_000  # an extracted answer, or a reference, longer than this is left undecided
MAX_DIGITS = 300  # a number with more digits is not read as a number
MAX_EXPONENT = 400  # 10^e, 1e e: beyond this the value is not computed
MAX_SYMBOLIC_CHARS = 300  # what math-verify / sympy are handed at most
MAX_NESTING = 12  # brace and parenthesis depth a symbolic parse is handed at most

_EXPLOSIVE = re.compile(
    r"\\(?:sum|prod|int|iint|oint|lim|limsup|liminf|uparrow|Gamma|zeta|operatorname)\b"
    r"|\d{31,}|\d\s*_|[₀-₉]")  # big operators, special functions, 31+-digit literals, a base subscript
_COMBINATORIAL = re.compile(r"!|\\(?:binom|choose|dbinom|tbinom)\b")
_EXPONENT = re.compile(r"\^\s*(?:\{\s*)?([-+]?\s*\d+)")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200d\u2060\u2061\ufeff\ud800-\udfff]")
# Invisible operators read as what they mean: 4\u20622 is 4 times 2, not 42.
_INVISIBLE_OPERATORS = str.maketrans({"\u2062": "*", "\u2063": ",", "\u2064": "+"})
# Direction controls make a text render otherwise than it reads (\u202e42 shows as 24): such an answer is no rule's.
DIRECTION = re.compile(r"[\u200e\u200f\u202a-\u202e\u2066-\u2069]")


# Letters that look like Latin ones (Cyrillic, Greek capitals, small capitals): read as the Latin letter, on both
# sides of a comparison alike, so "nоt" with a Cyrillic о is "not" to every rule.
_LOOKALIKES = str.maketrans(
    "аеорсухіјѕԁԛԝАВЕКМНОРСТХІЈЅΑΒΕΖΗΙΚΜΝΟΡΤΥΧοɴᴏᴛᴀʙᴄᴅᴇɢʜɪᴊᴋʟᴍᴘʀꜱᴜᴠᴡʏᴢ",
    "aeopcyxijsdqwABEKMHOPCTXIJSABEZHIKMNOPTYXonotabcdeghijklmprsuvwyz")
_MATH_ALPHANUMERIC = re.compile("[\U0001d400-\U0001d7ff]")


def clean(text: str) -> str:
    """Control characters, zero-width characters and lone surrogates removed: they carry no answer; invisible
    operators written as what they mean; look-alike and mathematical letters as plain ones. Direction controls
    are kept, for the grader to refuse."""
    text = _CONTROL.sub("", text).translate(_INVISIBLE_OPERATORS).translate(_LOOKALIKES)
    return _MATH_ALPHANUMERIC.sub(lambda m: unicodedata.normalize("NFKC", m.group(0)), text)


def nesting(text: str) -> int:
    depth = deepest = 0
    for ch in text:
        if ch in "{([":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "})]":
            depth = max(depth - 1, 0)
    return deepest


def _tower(text: str) -> bool:
    """An exponent that itself holds an exponent (a^{b^{c}}): its value can have astronomically many digits."""
    depth, in_exponent = 0, list[bool]()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "^":
            if any(in_exponent):
                return True
            if i + 1 < len(text) and text[i + 1] == "{":
                in_exponent.append(True)
                depth += 1
                i += 2
                continue
        elif ch == "{":
            in_exponent.append(False)
            depth += 1
        elif ch == "}" and in_exponent:
            in_exponent.pop()
            depth -= 1
        i += 1
    return False


def symbolic_safe(text: str) -> bool:
    """May `text` be handed to a symbolic parser (fast evaluator, math-verify, sympy) without risk of a
    runaway computation: short, shallow, no factorials or big operators, no huge literals or exponents,
    no power towers."""
    if len(text) > MAX_SYMBOLIC_CHARS or _EXPLOSIVE.search(text) or nesting(text) > MAX_NESTING:
        return False
    if _COMBINATORIAL.search(text) and (text.count("!") > 1 or "^" in text or re.search(r"\d{4,}", text)):
        return False  # 5!, \binom{5}{2} and n! are fine; (10^9)!, 3!!! and 100000! are not
    for exponent in _EXPONENT.findall(text):
        if abs(int(exponent.replace(" ", ""))) > MAX_EXPONENT:
            return False
    return not _tower(text)
