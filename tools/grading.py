"""Answer grading: a cascade of rules that each decide what they own and pass the rest on.

1. extract the final answer from a long response (last \\boxed{}, "Final answer:" /
   "The answer is", "**Answer: B**", or a short response taken whole);
2. normalize it (\\dfrac, \\text{}, thousands separators, units after a number,
   percent, `x = 3`, case);
3. decide: exact match, multiple-choice letter, numbers (scientific notation,
   fractions, percent, rounding to the reference's precision), unordered lists of
   roots, big-O and other text after normalization, then math-verify for the
   rest of mathematics (expressions, sets, intervals, tuples, matrices, complex numbers);
4. a grade no rule can decide is `undecided`; the labeler model judges those.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from fractions import Fraction

from chimera.tools.fastmath import equivalent, evaluate, same_bracketed


@dataclass(frozen=True)
class Grade:
    correct: bool | None
    method: str  # exact, choice, numeric, roots, text, math-verify, empty, undecided (judge: set by the caller)
    extracted: str | None
    detail: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


# -- extraction ---------------------------------------------------------------

_ANSWER_LINE = re.compile(
    r"(?:final\s+answer|the\s+(?:correct\s+)?answer\s+is|answer)\s*(?:is)?\s*[:：]?\s*\**\s*(.+)", re.I)
_SHORT = 80


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}), braces balanced."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth, begin = 1, i
    while i < len(text) and depth:
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
    return text[begin : i - 1].strip() if depth == 0 else None


def extract_final_answer(response: str) -> str | None:
    response = (response or "").strip()
    if not response:
        return None
    boxed = last_boxed(response)
    if boxed is not None:
        return boxed
    lines = [m.group(1) for m in _ANSWER_LINE.finditer(response)]
    if lines:
        answer = lines[-1].strip()
        answer = re.sub(r"^\*+|\*+$", "", answer).strip()
        return answer.rstrip(".").strip() or None
    if len(response) <= _SHORT and "\n" not in response:
        return response.rstrip(".")
    return None


# -- normalization ------------------------------------------------------------

_WRAPPERS = re.compile(r"\\(?:text|mathrm|textbf|mathbf|textit|mbox|operatorname)\s*\{([^{}]*)\}")
_UNIT = r"(?:[a-zA-Zµμ°Ω]+(?:\^?-?\d)?(?:\s*[/·*]\s*[a-zA-Zµμ°Ω]+(?:\^?-?\d)?)*)"


def normalize(answer: str) -> str:
    text = answer.strip()
    text = text.replace("$", "").replace("\\(", "").replace("\\)", "").replace("\\[", "").replace("\\]", "")
    text = re.sub(r"\\[dt]frac", r"\\frac", text)
    text = text.replace("\\left", "").replace("\\right", "").replace("\\!", "").replace("\\,", " ")
    text = text.replace("\\%", "%").replace("{,}", "")
    text = re.sub(r"(?<!\\)\\ ", " ", text)  # a LaTeX space, not a matrix row break
    text = re.sub(r"\\log(?![_a-zA-Z])", r"\\ln", text)  # a bare \log is the natural log, as in most answers
    text = re.sub(r"\^\s*\{?\\circ\}?", "°", text)
    for _ in range(3):
        text = _WRAPPERS.sub(r"\1", text)
    text = re.sub(r"^\s*[a-zA-Z]\s*=\s*(?=[^=]+$)", "", text)  # "x = 3" -> "3" (a single assignment)
    text = text.strip().rstrip(".").strip()
    if re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?", text):
        text = text.replace(",", "")
    return " ".join(text.split())


def _choice(text: str) -> str | None:
    """A multiple-choice letter in its usual spellings: B, (B), B), B., option B, **B**."""
    match = re.fullmatch(r"\**\s*(?:option|choice)?\s*\(?\s*([A-J])\s*\)?\s*[.:]?\s*\**", text.strip(), re.I)
    return match.group(1).upper() if match and (text.strip()[0] in "(*" or len(text.strip()) <= 3
                                               or text.lower().startswith(("option", "choice"))) else None


_NUMBER = re.compile(
    r"^(?P<sign>[-+−]?)\s*(?:(?P<num>\d+(?:\.\d*)?|\.\d+)(?:\s*(?:[eE]\s*(?P<e>[-+]?\d+)|"
    r"(?:\\times|×|\*|x)\s*10\s*\^\s*\{?\s*(?P<p>[-+−]?\d+)\s*\}?))?"
    r"|10\s*\^\s*\{?\s*(?P<bp>[-+−]?\d+)\s*\}?"
    r"|\\frac\s*\{\s*(?P<fn>-?\d+)\s*\}\s*\{\s*(?P<fd>\d+)\s*\}|(?P<sn>\d+)\s*/\s*(?P<sd>\d+))"
    r"\s*(?P<pct>%)?\s*(?P<unit>" + _UNIT + r")?$")


def as_number(text: str) -> tuple[float, bool] | None:
    """A plain number (with optional exponent, fraction, percent or unit) -> (value, was_percent)."""
    match = _NUMBER.match(text.strip())
    if not match:
        return None
    if match["num"] is not None:
        value = float(match["num"])
        exponent = match["e"] or (match["p"] or "").replace("−", "-")
        if exponent:
            value *= 10 ** int(exponent)
    elif match["bp"] is not None:
        value = 10.0 ** int(match["bp"].replace("−", "-"))
    elif match["fn"] is not None:
        value = float(Fraction(int(match["fn"]), int(match["fd"]))) if int(match["fd"]) else math.nan
    else:
        value = float(Fraction(int(match["sn"]), int(match["sd"]))) if int(match["sd"]) else math.nan
    if match["sign"] in ("-", "−"):
        value = -value
    return value, bool(match["pct"])


def _exact(text: str) -> Fraction | None:
    """An integer or a/b fraction (no units, percent or exponent) as an exact Fraction."""
    match = re.fullmatch(r"\s*([-−]?)\s*(?:(\d+)|(\d+)\s*/\s*(\d+)|\\frac\s*\{\s*(\d+)\s*\}\s*\{\s*(\d+)\s*\})\s*", text)
    if not match:
        return None
    sign = -1 if match[1] else 1
    if match[2]:
        return sign * Fraction(int(match[2]))
    num, den = (match[3], match[4]) if match[3] else (match[5], match[6])
    return sign * Fraction(int(num), int(den)) if int(den) else None


def _decimals(text: str) -> int | None:
    """Places after the decimal point of a plain decimal (None with an exponent: 2.5e-4 is not 1 place)."""
    if re.search(r"\d\s*(?:[eE]\s*[-+]?\d|\\times|×)", text):
        return None
    match = re.match(r"^[-+−]?\d*\.(\d+)\s*%?\s*" + _UNIT + r"?$", text.strip())
    return len(match.group(1)) if match else None


def _numbers_equal(reference: str, response: str) -> bool | None:
    ref, got = as_number(reference), as_number(response)
    if ref is None or got is None:
        return None
    (r, r_pct), (g, g_pct) = ref, got
    exact_ref, exact_got = _exact(reference), _exact(response)
    if exact_ref is not None and exact_got is not None:
        return exact_ref == exact_got  # integers and fractions compare exactly, however large
    candidates = {g}
    if r_pct != g_pct:  # 45% vs 0.45
        candidates |= {g * 100, g / 100}
    decimals = _decimals(reference)
    for value in candidates:
        if math.isclose(value, r, rel_tol=1e-9, abs_tol=1e-12):
            return True
        if (decimals is not None and decimals <= 6 and abs(r) >= 10 ** -decimals
                and round(value, decimals) == round(r, decimals)):
            return True  # the reference was rounded; a more precise response agrees with it
    return False


def _number_list(text: str) -> list[float] | None:
    if text.startswith(("(", "[", "\\{", "{")):
        return None  # bracketed: an ordered tuple, interval or set for math-verify
    parts = [p for p in re.split(r"\s*(?:,|;|\band\b|\bor\b)\s*", text) if p]
    if len(parts) < 2:
        return None
    values = []
    for part in parts:
        number = as_number(normalize(part))
        if number is None:
            return None
        values.append(number[0])
    return values


def _is_text_answer(text: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z][A-Za-z \-',]*", text)) and not re.fullmatch(r"[a-z](\s*[a-z])?", text)


def _big_o(text: str) -> str | None:
    match = re.fullmatch(r"(?:\\mathcal\s*)?\{?([OΘΩo]|\\Theta|\\Omega)\}?\s*\((.*)\)", text)
    if not match:
        return None
    body = re.sub(r"\\|\s|\{|\}", "", match.group(2)).replace("log_2", "log").replace("lg", "log")
    return f"{match.group(1).lstrip(chr(92))}({body})"


_NUMBER_WORDS = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                 "twelve", "twenty", "hundred", "thousand", "million", "half", "third", "quarter"}
_YES = {"yes", "true", "y"}
_NO = {"no", "false", "n"}


def _yes_no(text: str) -> bool | None:
    word = _words(text)
    return True if word in _YES else False if word in _NO else None


def _approximates(decimal: str, exact: str) -> bool | None:
    """A decimal with two or more places against an exact value: equal when the value rounds to it."""
    places = _decimals(decimal)
    number = as_number(decimal)
    if places is None or places < 2 or number is None or number[1]:
        return None
    value = evaluate(exact)
    if value is None:
        try:
            value = complex(_math(exact)[0].evalf())
        except (IndexError, TypeError, ValueError, AttributeError):
            return None
    if abs(value.imag) > 1e-12:
        return None
    return round(value.real, places) == round(number[0], places)


def _words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9+\-/.^ ]+", " ", text.lower()).split())


# -- the cascade --------------------------------------------------------------

def grade(reference: str, response: str) -> Grade:
    extracted = extract_final_answer(response)
    if extracted is None:
        if not (response or "").strip():
            return Grade(False, "empty", None, "empty response")
        return Grade(None, "undecided", None, "no final answer could be extracted")
    ref, got = normalize(reference), normalize(extracted)
    if ref == got or ref.lower() == got.lower():
        return Grade(True, "exact", extracted, "equal after normalization")
    ref_choice = _choice(ref)
    if ref_choice is not None:
        got_choice = _choice(got)
        if got_choice is not None:
            return Grade(got_choice == ref_choice, "choice", extracted, f"{got_choice} vs {ref_choice}")
    if as_number(ref) is not None and _is_text_answer(got):
        if any(word in _NUMBER_WORDS for word in _words(got).split()):
            return Grade(None, "undecided", extracted, "a number in words; needs a judge")
        return Grade(False, "numeric", extracted, "a word where the reference is a number")
    numeric = _numbers_equal(ref, got)
    if numeric is not None:
        return Grade(numeric, "numeric", extracted, f"{got} vs {ref}")
    ref_roots, got_roots = _number_list(ref), _number_list(got)
    if ref_roots is not None and got_roots is not None:
        same = len(ref_roots) == len(got_roots) and all(
            math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9) for a, b in zip(sorted(ref_roots), sorted(got_roots)))
        return Grade(same, "roots", extracted, "compared as unordered lists")
    ref_yes, got_yes = _yes_no(ref), _yes_no(got)
    if ref_yes is not None and got_yes is not None:
        return Grade(ref_yes == got_yes, "text", extracted, "yes/no answer")
    ref_o, got_o = _big_o(ref), _big_o(got)
    if ref_o is not None and got_o is not None:
        return Grade(ref_o == got_o, "text", extracted, f"{got_o} vs {ref_o}")
    if _is_text_answer(ref):
        if _words(ref) == _words(got):
            return Grade(True, "text", extracted, "same words after normalization")
        return Grade(None, "undecided", extracted, "free-form answer; needs a judge")
    approx = _approximates(ref, got) if as_number(ref) else _approximates(got, ref) if as_number(got) else None
    if approx is not None:
        return Grade(approx, "numeric", extracted, "decimal against the exact value, to the decimal's precision")
    same = same_bracketed(ref, got)
    if same is not None:
        return Grade(same, "evaluation", extracted, "compared element by element")
    same = equivalent(ref, got)
    if same is not None:
        return Grade(same, "evaluation", extracted, "equal at every test point" if same else "differ at a test point")
    gold, predicted = _math(ref), _math(got)
    if gold and predicted:
        from math_verify import verify

        return Grade(bool(verify(gold, predicted)), "math-verify", extracted, f"{predicted[-1]} vs {gold[-1]}")
    return Grade(None, "undecided", extracted, "no rule applies; needs a judge")


def _math(text: str) -> list:
    from math_verify import parse  # imported on first use: it loads sympy, seconds of start-up most runs never need

    try:
        return parse(f"${text}$") or parse(text)
    except Exception:  # noqa: BLE001 - math-verify raises on odd LaTeX; no parse means no rule applies
        return []
