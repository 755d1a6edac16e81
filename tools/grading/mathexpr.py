"""Mathematics: expressions, equations, inequalities, intervals, sets, tuples and matrices.

The fast evaluator decides what it reads; math-verify the rest. Its `true` is
trusted; its `false` only when both sides are mathematics of the same shape
(two sets, two intervals, two relations...), since it reads names and
formulas as algebra and an interval against an inequality as unequal.
"""

from __future__ import annotations

import logging
import re
from fractions import Fraction
from typing import Literal

from chimera.tools.fastmath import equivalent, evaluate, same_bracketed
from chimera.tools.grading.bounds import symbolic_safe
from chimera.tools.grading.numbers import Number, agree, parse_number
from chimera.tools.grading.quantities import parse_quantity

logging.getLogger("math_verify").setLevel(logging.ERROR)  # it warns on every call made without its signal timeout

Shape = Literal["matrix", "set", "interval", "tuple", "relation", "expression"]

_KNOWN_WORDS = {"sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "sqrt", "frac", "pi", "infty", "cdot",
                "times", "le", "ge", "leq", "geq", "neq", "ne", "lt", "gt", "in", "cup", "cap", "emptyset", "varnothing",
                "mathbb", "begin", "end", "pmatrix", "bmatrix", "matrix", "vmatrix", "arcsin", "arccos", "arctan",
                "sinh", "cosh", "tanh", "binom", "choose", "pm", "mp", "circ", "theta", "alpha", "beta", "gamma",
                "delta", "lambda", "mu", "sigma", "omega", "phi", "varphi", "epsilon", "rho", "tau", "max", "min",
                "lim", "sum", "prod", "int", "det", "mod", "bmod", "pmod", "gcd", "lcm", "ldots", "cdots", "dots",
                "quad", "qquad", "setminus", "subset", "subseteq", "approx", "to", "infinity", "hat", "vec", "bar",
                "overline", "mathbf", "operatorname", "i", "e", "or", "and"}
_PLAIN_FUNCTIONS = {"sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "sqrt", "max", "min", "gcd", "lcm",
                    "det", "mod", "lim", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "pi"}
_RELATION = re.compile(r"=|<|>|\\le|\\ge|\\leq|\\geq|\\neq|≤|≥|≠")


def looks_math(text: str) -> bool:
    """Numbers, operators, one-letter variables and LaTeX commands only: no words, units, degrees or percent."""
    if not text or len(text) > 400 or re.search(r"[°%µΩÅ]", text) or re.search(r"\b0[xXbBoO][0-9A-Fa-f]", text):
        return False
    if parse_quantity(text) is not None:
        return False  # "2 h" is two hours, not 2 times h
    if re.search(r"\b(?:" + "|".join(sorted(_PLAIN_FUNCTIONS - {"pi"})) + r")\s*$", text):
        return False  # a function name with nothing to apply to is a word ("120 min")
    for word in re.findall(r"\\?[A-Za-z]{2,}", text):
        known = _KNOWN_WORDS if word.startswith("\\") else _PLAIN_FUNCTIONS
        if word.lstrip("\\").lower() not in known:
            return False
    return bool(re.search(r"[\d\\^+\-*/=<>()\[\]{}]|^[a-zA-Z]$", text))


def shape(text: str) -> Shape:
    text = text.strip()
    if "\\begin" in text:
        return "matrix"
    if text.startswith(("\\{", "{")) and text.endswith("}"):
        return "set"
    if _RELATION.search(text) or re.search(r"\\in(?![a-z])", text):
        return "relation"
    if re.match(r"^[(\[].*[)\]]$", text) and "," in text:
        return "interval" if text[0] != text[-1].replace(")", "(").replace("]", "[") else "tuple"
    return "expression"


def compare(reference: str, response: str) -> tuple[bool | None, str] | None:
    if not (looks_math(reference) and looks_math(response)):
        return None
    if not (symbolic_safe(reference) and symbolic_safe(response)):
        return None, "too large or deep to evaluate safely"
    same = same_bracketed(reference, response)
    if same is not None:
        return same, "compared element by element"
    approximation = _approximation(reference, response)
    if approximation is not None:
        return approximation
    same = equivalent(reference, response)
    if same is not None:
        return same, "equal at every test point" if same else "differ at a test point"
    gold, predicted = _parse(reference), _parse(response)
    if not gold or not predicted:
        return None, "math-verify could not read both"
    from math_verify import verify

    try:
        verified = bool(verify(gold, predicted, timeout_seconds=None))  # a signal timeout works only on the main thread
    except Exception:  # noqa: BLE001 - math-verify raises on odd input; no verdict then
        return None, "math-verify failed"
    if verified:
        return True, "math-verify"
    if re.search(r"\\log(?!_)|\blog\b", reference + " " + response):
        return None, "math-verify: a log of unstated base"
    if shape(reference) == shape(response):
        return False, f"math-verify ({shape(reference)})"
    return None, f"math-verify: a {shape(response)} against a {shape(reference)}"


def _approximation(reference: str, response: str) -> tuple[bool | None, str] | None:
    """A decimal against an exact expression (sqrt 5 and 2.236): it agrees when the exact value rounds to it."""
    ref_n, got_n = parse_number(reference), parse_number(response)
    if (ref_n is None) == (got_n is None):
        return None
    decimal, exact_text = (got_n, reference) if got_n is not None else (ref_n, response)
    if decimal is None or decimal.exact or decimal.sig is None or decimal.percent:
        return None
    value = evaluate(exact_text)
    if value is None or abs(value.imag) > 1e-12:
        return None
    exact = Number(Fraction(value.real).limit_denominator(10 ** 12), False, 15)
    if agree(decimal, exact, measured=True):
        return (True, "a decimal that rounds from the exact value") if decimal.sig >= 4 else \
            (None, "a decimal of few figures for an exact value")
    return False, "a decimal the exact value does not round to"


def _parse(text: str) -> list:
    from math_verify import parse  # imported on first use: it loads sympy, seconds of start-up most runs never need

    try:
        return parse(f"${text}$", parsing_timeout=None) or parse(text, parsing_timeout=None)
    except Exception:  # noqa: BLE001 - math-verify raises on odd LaTeX; no parse means no rule applies
        return []
