"""Plain numbers: exact values, their written precision, and when two of them agree.

A number keeps what its writer showed: an integer or fraction is exact; a
decimal carries its significant figures. Agreement follows from that: exact
against exact is equality; a decimal reference was rounded, so a response
agrees when it rounds to it; a response rounded coarser than the reference is
not certain either way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from chimera.tools.grading.bounds import MAX_DIGITS, MAX_EXPONENT

_MANTISSA = r"(?:(?P<int>\d{1,3}(?:,\d{3})+|\d{1,3}(?: \d{3})+(?![\d.])|\d+)(?:\.(?P<frac>\d*))?|\.(?P<lead>\d+))"
_EXPONENT = (r"(?:\s*(?:[eE]\s*(?P<e>[-+]?\d+)|(?:\\times|×|\*|x|\\cdot|·)\s*10\s*\^\s*\{?\s*(?P<p>[-+]?\d+)\s*\}?))?")
NUMBER = re.compile(
    r"(?P<sign>[-+]?)\s*(?:"
    r"\\frac\s*\{\s*(?P<fn>\d+)\s*\}\s*\{\s*(?P<fd>\d+)\s*\}"
    r"|(?P<sn>\d+)\s*/\s*(?P<sd>\d+)(?![\d.])"
    r"|10\s*\^\s*\{?\s*(?P<bare>[-+]?\d+)\s*\}?|"
    + _MANTISSA + _EXPONENT + ")"
    r"\s*(?P<pct>%|\\%| percent\b)?")

_BASED = re.compile(r"^0([xXbBoO])([0-9A-Fa-f]{1,64})$")
_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
_WORDS.update({"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
               "hundred": 100, "a hundred": 100, "one hundred": 100, "thousand": 1000, "one thousand": 1000})


@dataclass(frozen=True)
class Number:
    value: Fraction
    exact: bool  # an integer or a fraction as written, not a rounded decimal
    sig: int | None  # significant figures shown (None for exact values)
    percent: bool = False

    @property
    def fraction_value(self) -> Fraction:
        """The value as a fraction of one: 25% -> 1/4."""
        return self.value / 100 if self.percent else self.value


def _match(text: str) -> tuple[Number, int] | None:
    match = NUMBER.match(text)
    if not match or match.end() == 0 or not any(match[g] for g in ("int", "lead", "bare", "fn", "sn")):
        return None
    sign = -1 if match["sign"] == "-" else 1
    percent = bool(match["pct"])
    if _too_large(match):
        return None
    if match["bare"] is not None:
        return Number(sign * Fraction(10) ** int(match["bare"]), True, None, percent), match.end()
    if match["fn"] is not None or match["sn"] is not None:
        num, den = (match["fn"], match["fd"]) if match["fn"] is not None else (match["sn"], match["sd"])
        if int(den) == 0:
            return None
        return Number(sign * Fraction(int(num), int(den)), True, None, percent), match.end()
    whole = (match["int"] or "").replace(",", "").replace(" ", "")
    decimals = match["frac"] if match["frac"] else match["lead"]
    digits = whole + (decimals or "")
    value = Fraction(int(whole or "0")) + (Fraction(int(decimals), 10 ** len(decimals)) if decimals else 0)
    exponent = match["e"] or match["p"]
    if exponent is not None:
        value *= Fraction(10) ** int(exponent)
    significant = digits.lstrip("0") or "0"
    exact = decimals is None and exponent is None
    return Number(sign * value, exact, None if exact else len(significant), percent), match.end()


def _too_large(match: re.Match[str]) -> bool:
    """More digits or a larger exponent than any answer needs: computing the value could take minutes."""
    digits = sum(len(match[g] or "") for g in ("int", "frac", "lead", "fn", "fd", "sn", "sd"))
    exponent = match["e"] or match["p"] or match["bare"]
    return digits > MAX_DIGITS or (exponent is not None and (len(exponent) > 6 or abs(int(exponent)) > MAX_EXPONENT))


def parse_number(text: str) -> Number | None:
    """`text` is one number and nothing else (an integer, decimal, fraction, power of ten, percent)."""
    text = text.strip()
    based = _BASED.match(text)
    if based:  # 0x1F, 0b101, 0o17: an integer in another base, never a product of letters
        return Number(Fraction(int(based.group(2), {"x": 16, "b": 2, "o": 8}[based.group(1).lower()])), True, None)
    word = _WORDS.get(text.lower())
    if word is not None:
        return Number(Fraction(word), True, None)
    found = _match(text)
    return found[0] if found and found[1] == len(text) else None


def leading_number(text: str) -> tuple[Number, str] | None:
    """A number at the start of `text` and what follows it (a unit, a noun)."""
    text = text.strip()
    found = _match(text)
    if not found:
        return None
    number, end = found
    rest = text[end:]
    if rest and not rest[0].isspace() and (rest[0].isdigit() or rest[0] in ".,/^"):
        return None
    return number, rest.strip()


def integer_digits(value: Fraction) -> int:
    """Significant figures an integer shows, trailing zeros included (300 -> 3)."""
    return len(str(abs(value.numerator)).lstrip("0")) or 1


def _round_sig(value: Fraction, sig: int) -> Fraction:
    if value == 0:
        return Fraction(0)
    magnitude = len(str(abs(value.numerator) // abs(value.denominator))) if abs(value) >= 1 else 0
    if abs(value) < 1:
        probe, magnitude = abs(value), 0
        while probe < 1:
            probe *= 10
            magnitude -= 1
        magnitude += 1
    scale = Fraction(10) ** (sig - magnitude)
    scaled = value * scale
    rounded = Fraction(int(scaled + Fraction(1, 2)) if scaled >= 0 else -int(-scaled + Fraction(1, 2)))
    return rounded / scale


def agree(reference: Number, response: Number, *, measured: bool = False) -> bool | None:
    """Do two numbers name the same value, as precisely as the reference was written?

    `measured`: the numbers are physical quantities, where a reference's figures
    are all it claims, so a response that rounds to it agrees.
    """
    ref, got = reference.fraction_value, response.fraction_value
    if ref == got:
        return True
    if reference.exact and response.exact:
        return False
    if reference.exact:
        if response.sig is not None and _round_sig(ref, response.sig) == got:
            # a rounded decimal of the exact value: to four figures or more it is the value; fewer, the question decides
            return True if response.sig >= 4 else None
        return False
    sig = reference.sig or 1
    if _round_sig(got, sig) == ref:
        if measured or sig >= 3 or response.exact:
            return True
        return None  # 0.5 against 0.52: too few figures in the reference to be sure it was rounded
    if response.sig is not None and response.sig < sig and _round_sig(ref, response.sig) == got:
        return None  # the response rounded more coarsely than the reference
    return False


def as_percent_pair(reference: Number, response: Number) -> bool | None:
    """A percentage against a plain number: 25% and 0.25 agree; 0.5% and 0.5 are not the same claim."""
    if reference.percent == response.percent:
        return agree(reference, response)
    percent, plain_number = (reference, response) if reference.percent else (response, reference)
    if percent.value == plain_number.value:
        return None  # "25" for "25%": the unit left out, or a different number; a judge reads the question
    return agree(reference, response)
