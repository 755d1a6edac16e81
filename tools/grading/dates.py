"""Years, dates, eras and centuries: BC/BCE and AD/CE carry a sign; a full date contains its year."""

from __future__ import annotations

import re
from dataclasses import dataclass

_MONTHS = {m: i + 1 for i, m in enumerate(
    "january february march april may june july august september october november december".split())}
_MONTHS.update({m[:3]: i for m, i in list(_MONTHS.items())})
_MONTHS["sept"] = 9
_BC = r"(?:B\.?\s?C\.?(?:\s?E\.?)?)"
_AD = r"(?:A\.?\s?D\.?|C\.?\s?E\.?)"
_ERA = rf"(?P<era>{_BC}|{_AD})"
_YEAR = re.compile(rf"^(?:(?P<pre>{_AD})\s*)?(?P<year>\d{{1,4}})\s*{_ERA}?$")
_CENTURY = re.compile(rf"(?i)^(?:the\s+)?(?P<n>\d{{1,2}})(?:st|nd|rd|th)\s+century\s*{_ERA}?$")
_RANGE = re.compile(rf"^(?P<a>\d{{3,4}})\s*(?:-|to)\s*(?P<b>\d{{2,4}})\s*{_ERA}?$")
_DAY_MONTH_YEAR = re.compile(r"(?i)^(?:the\s+)?(?P<d>\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<m>[a-z]+)\.?,?\s+(?P<y>\d{1,4})"
                             rf"\s*{_ERA}?$")
_MONTH_DAY_YEAR = re.compile(r"(?i)^(?P<m>[a-z]+)\.?\s+(?P<d>\d{1,2})(?:st|nd|rd|th)?,?\s+(?P<y>\d{1,4})"
                             rf"\s*{_ERA}?$")
_MONTH_YEAR = re.compile(rf"(?i)^(?P<m>[a-z]+)\.?,?\s+(?P<y>\d{{1,4}})\s*{_ERA}?$")
_ISO = re.compile(r"^(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})$")


@dataclass(frozen=True)
class When:
    year: int  # negative for BC
    month: int | None = None
    day: int | None = None
    era_given: bool = False


def _signed(year: str, era: str | None, pre: str | None = None) -> tuple[int, bool]:
    value = int(year)
    if era and re.fullmatch(_BC, era.strip()):
        return -value, True
    return value, bool(era or pre)


def parse_when(text: str) -> When | None:
    """A year with or without its era, or a full or month date; None for anything else."""
    text = text.strip().rstrip(".").strip()
    match = _YEAR.match(text)
    if match:
        year, given = _signed(match["year"], match["era"], match["pre"])
        return When(year, era_given=given)
    match = _ISO.match(text)
    if match:
        month, day = int(match["m"]), int(match["d"])
        return When(int(match["y"]), month, day, False) if 1 <= month <= 12 and 1 <= day <= 31 else None
    for pattern in (_DAY_MONTH_YEAR, _MONTH_DAY_YEAR):
        match = pattern.match(text)
        if match and match["m"].lower() in _MONTHS and 1 <= int(match["d"]) <= 31 and _plausible(match):
            year, given = _signed(match["y"], match["era"])
            return When(year, _MONTHS[match["m"].lower()], int(match["d"]), given)
    match = _MONTH_YEAR.match(text)
    if match and match["m"].lower() in _MONTHS and _plausible(match):
        year, given = _signed(match["y"], match["era"])
        return When(year, _MONTHS[match["m"].lower()], None, given)
    return None


def _plausible(match: re.Match[str]) -> bool:
    """A date's year below 100 needs its era: "December 12" is no year 12."""
    return int(match["y"]) >= 100 or bool(match["era"])


def _century(text: str) -> tuple[int, int] | None:
    match = _CENTURY.match(text.strip())
    if not match:
        return None
    sign = -1 if match["era"] and re.fullmatch(_BC, match["era"].strip()) else 1
    return int(match["n"]), sign


def _range(text: str) -> tuple[int, int] | None:
    match = _RANGE.match(text.strip())
    if not match:
        return None
    first, second = match["a"], match["b"]
    if len(second) < len(first):
        second = first[: len(first) - len(second)] + second  # 1914-18
    sign = -1 if match["era"] and re.fullmatch(_BC, match["era"].strip()) else 1
    return sign * int(first), sign * int(second)


def compare(reference: str, response: str) -> tuple[bool | None, str] | None:
    """None when the pair is not about dates; else a verdict (None: not certain)."""
    ref_c, got_c = _century(reference), _century(response)
    if ref_c and got_c:
        return ref_c == got_c, "century and era"
    ref_r, got_r = _range(reference), _range(response)
    if ref_r and got_r:
        return ref_r == got_r, "year range"
    ref, got = parse_when(reference), parse_when(response)
    if ref is None or got is None:
        return None
    plain_numbers = not ref.era_given and not got.era_given and ref.month is None and got.month is None
    if plain_numbers:
        return None  # two bare integers: the number rule decides
    if ref.month is None and ref.day is None:
        if abs(ref.year) != abs(got.year):
            return False, "a different year"
        if ref.year != got.year:
            if ref.year < 0 and not got.era_given:
                return None, "the era is missing"
            return False, "the other era"
        if ref.year < 0 and not got.era_given:
            return None, "the era is missing"
        return True, "the same year" if got.month is None else "a date in the asked year"
    if got.month is None:
        return (None, "a year where a full date was asked") if abs(got.year) == abs(ref.year) else \
            (False, "a different year")
    if ref.year != got.year or ref.month != got.month:
        return False, "a different date"
    if ref.day is None or got.day is None:
        return (True, "the same month") if ref.day is None else (None, "a month where a day was asked")
    return ref.day == got.day, "date"
