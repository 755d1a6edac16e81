"""Quantities with units, compared by pint: dimensions must agree, values after conversion.

A unit pint cannot read means the text is not a quantity here (a noun after a
number, "46 chromosomes"); a unit on one side only is not certain either way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any

from chimera.tools.grading.numbers import Number, _round_sig, agree, integer_digits, leading_number

_UNIT_CHARS = re.compile(r"^[A-Za-zµΩÅ°%0-9*/^()\-. ·⋅{}]+$")  # a LaTeX command left over is math, not a unit
_REWRITES = [
    (re.compile(r"°\s*C\b|℃"), "degC"), (re.compile(r"°\s*F\b|℉"), "degF"), (re.compile(r"°\s*K\b"), "K"),
    (re.compile(r"°"), "degree"), (re.compile(r"Ω"), "ohm"), (re.compile(r"µ"), "u"), (re.compile(r"Å"), "angstrom"),
    (re.compile(r"\\cdot|·|⋅|\\times|×"), "*"), (re.compile(r"\bper\b"), "/"), (re.compile(r"\^\s*\{([^{}]*)\}"), r"^(\1)"),
    (re.compile(r"[{}]"), ""), (re.compile(r"\^"), "**"),
]
# Dimensionless units compare only within their own family (8 bits are a byte; 5 degrees are no byte).
_FAMILIES = [{"bit", "byte"}, {"radian", "degree", "arcminute", "arcsecond", "turn", "revolution"},
             {"percent", "ppm", "permille", "ppb"}]
# Words pint reads as units but answers use as nouns or symbols of something else.
_NOT_UNITS = {"a", "R", "c", "e", "u", "point", "points", "pt", "tonne", "t", "k", "x", "y", "z", "n", "i", "b",
              "B", "AU", "E", "G", "P", "Ci", "sr", "d", "q", "r", "v", "p", "l"}
_AMBIGUOUS_WORDS = {"pi", "in", "at", "as", "us", "is", "or", "and", "of", "to", "by", "on", "the", "an", "it", "m/s/s"}


@lru_cache(maxsize=1)
def registry() -> Any:
    import pint

    return pint.UnitRegistry(autoconvert_offset_to_baseunit=True)


@dataclass(frozen=True)
class Quantity:
    number: Number
    unit: str  # as pint reads it


def _pint_unit(text: str) -> str | None:
    text = text.strip()
    if not text or len(text) > 40 or not _UNIT_CHARS.match(text):
        return None
    for pattern, replacement in _REWRITES:
        text = pattern.sub(replacement, text)
    tokens = re.findall(r"[A-Za-z_]+", text)
    if not tokens or (len(tokens) == 1 and tokens[0] in _NOT_UNITS) or any(t.lower() in _AMBIGUOUS_WORDS for t in tokens):
        return None
    text = re.sub(r"(?<=[A-Za-z0-9)])\s+(?=[A-Za-z(])", "*", text.strip())
    try:
        registry().parse_units(text)
    except Exception:  # noqa: BLE001 - pint raises several types for text that is no unit
        return None
    return text


@lru_cache(maxsize=4096)
def parse_quantity(text: str) -> Quantity | None:
    """`12.5 km/h` -> Quantity; a number with no unit, or with words pint does not know, is None."""
    found = leading_number(text)
    if not found or not found[1] or found[0].percent:
        return None
    number, rest = found
    unit = _pint_unit(rest)
    return Quantity(number, unit) if unit else None


def _family(unit: str) -> str | None:
    names = {str(u) for u in registry().parse_units(unit)._units}
    for index, family in enumerate(_FAMILIES):
        if names and names <= {n for f in family for n in (f, f"kilo{f}", f"mega{f}", f"giga{f}", f"kibi{f}",
                                                               f"mebi{f}", f"gibi{f}", f"milli{f}", f"micro{f}")}:
            return str(index)
    return None


def _integral_dimensions(unit: str) -> bool:
    dims = registry().parse_units(unit).dimensionality
    return all(float(power).is_integer() for power in dims.values())


def compare(reference: Quantity, response: Quantity) -> tuple[bool | None, str]:
    ureg = registry()
    ref_units, got_units = ureg.parse_units(reference.unit), ureg.parse_units(response.unit)
    if ref_units.dimensionality != got_units.dimensionality:
        if not (_integral_dimensions(reference.unit) and _integral_dimensions(response.unit)):
            return None, "units of different unit systems"
        return False, f"dimensions differ: {ref_units.dimensionality} vs {got_units.dimensionality}"
    if ref_units.dimensionless:
        ref_family, got_family = _family(reference.unit), _family(response.unit)
        if ref_family is None or ref_family != got_family:
            return None, "dimensionless units of different kinds"
    try:
        converted = ureg.Quantity(float(response.number.value), got_units).to(ref_units).magnitude
    except Exception:  # noqa: BLE001
        return None, "no conversion between the units"
    value = Fraction(converted).limit_denominator(10 ** 15) if converted else Fraction(0)
    if abs(value - Fraction(converted)) > abs(Fraction(converted)) * Fraction(1, 10 ** 12):
        value = Fraction(converted)
    ref_number = reference.number
    if ref_number.exact:
        # a measured integer shows its digits as its precision; 300 may be one figure or three
        full = Number(ref_number.value, False, integer_digits(ref_number.value))
        got = Number(value, False, response.number.sig or 15)
        verdict = agree(full, got, measured=True)
        if verdict is False:
            stripped = str(abs(ref_number.value.numerator)).rstrip("0") or "0"
            if ref_number.value.denominator == 1 and len(stripped) < full.sig:  # type: ignore[operator]
                coarse = Number(ref_number.value, False, len(stripped))
                if _round_sig(value, len(stripped)) == ref_number.value or agree(coarse, got, measured=True):
                    return None, "the reference's trailing zeros leave its precision open"
        if verdict and ref_number.value and abs(value - ref_number.value) > abs(ref_number.value) / 200:
            return None, "within the rounding of a whole number, but more than 0.5% from it"
        return verdict, f"{float(value):.6g} {reference.unit} vs {float(ref_number.value):.6g} {reference.unit}"
    got = Number(value, False, response.number.sig or 15)
    verdict = agree(ref_number, got, measured=True)
    if verdict is False and response.number.sig is not None and ref_number.sig is not None \
            and response.number.sig < ref_number.sig and _round_sig(ref_number.value, response.number.sig) == \
            _round_sig(value, response.number.sig):
        return None, "the response is given to fewer figures than the reference"
    return verdict, f"{float(value):.6g} vs {float(ref_number.value):.6g} {reference.unit}"
