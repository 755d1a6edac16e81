"""Asymptotic classes (O, Θ, Ω) compared by the limit of their ratio, so constants, lower-order terms
and log bases do not matter."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from chimera.tools.grading.bounds import symbolic_safe

_BIG = re.compile(r"^(?:\\mathcal\s*\{?\s*(O)\s*\}?|(O|o|Θ|Ω|ω|\\Theta|\\Omega|\\omega|Theta|Omega))\s*\((.+)\)$")
_FUNCTIONS = {"log", "sqrt", "exp", "factorial"}


def _letter(match: re.Match[str]) -> str:
    letter = match.group(1) or match.group(2)
    return {"\\Theta": "Θ", "Theta": "Θ", "\\Omega": "Ω", "Omega": "Ω", "\\omega": "ω"}.get(letter, letter)


def _constant_log(match: re.Match[str]) -> str:
    """log_b N of two integers: the exponent it names (n^{log_2 8} is n^3); its ratio where not a whole number."""
    base, argument = int(match.group(1) or match.group(2)), int(match.group(3) or match.group(4))
    power, value = 0, 1
    while value < argument and base > 1:
        value, power = value * base, power + 1
    return str(power) if value == argument else f"(log({argument})/log({base}))"


def _to_sympy_text(body: str) -> str:
    text = body.replace("\\left", "").replace("\\right", "")
    text = re.sub(r"\\?log\s*_\s*(?:\{(\d{1,3})\}|(\d))\s*(?:\{\s*(\d{1,6})\s*\}|(\d{1,6})(?![\d.]))", _constant_log, text)
    text = re.sub(r"\\(?:cdot|times)", "*", text)
    text = re.sub(r"\\sqrt\s*\{([^{}]*)\}", r"sqrt(\1)", text)
    text = re.sub(r"\\sqrt\s*(\w)", r"sqrt(\1)", text)
    text = re.sub(r"\\?(?:log|lg|ln)\s*_\s*\{?[\w.]+\}?", "log", text)
    text = re.sub(r"\\(log|ln|lg|exp)", r"\1", text)
    text = re.sub(r"\b(?:lg|ln)\b", "log", text)
    text = text.replace("{", "(").replace("}", ")").replace("^", "**")
    text = re.sub(r"(?<=[0-9A-Za-z)])(log|sqrt|exp)(?=[\s(])", r" \1", text)
    for _ in range(4):  # "log log n" -> log(log(n)), innermost first
        applied = re.sub(r"\b(log|sqrt|exp)\s+(?!log\b|sqrt\b|exp\b)([A-Za-z0-9]+)", r"\1(\2)", text)
        applied = re.sub(r"\b(log|sqrt|exp)\s+((?:log|sqrt|exp)\([^()]*\))", r"\1(\2)", applied)
        if applied == text:
            break
        text = applied
    return text


@lru_cache(maxsize=2048)
def _expression(body: str) -> Any:
    from sympy import Symbol
    from sympy.parsing.sympy_parser import (
        convert_xor,
        factorial_notation,
        implicit_application,
        implicit_multiplication,
        parse_expr,
        standard_transformations,
    )

    text = _to_sympy_text(body)
    if re.search(r"[^\w\s*+\-/().!]", text):
        return None
    names = set(re.findall(r"[A-Za-z_]\w*", text)) - _FUNCTIONS
    if any(len(name) > 1 for name in names):
        return None
    local = {name: Symbol(name, positive=True) for name in names}
    transformations = standard_transformations + (implicit_multiplication, implicit_application, convert_xor,
                                                  factorial_notation)
    try:
        return parse_expr(text, local_dict=local, transformations=transformations)
    except Exception:  # noqa: BLE001 - sympy raises many types on odd input; no parse means no verdict
        return None


@lru_cache(maxsize=2048)
def _ratio_limit(a_text: str, b_text: str) -> str | None:
    """'finite' (same class), 'zero' or 'infinite' (different classes), None (not known)."""
    from sympy import Symbol, limit, oo, simplify

    a, b = _expression(a_text), _expression(b_text)
    if a is None or b is None:
        return None
    symbols = a.free_symbols | b.free_symbols
    try:
        if simplify(a - b) == 0:
            return "finite"
        if not symbols:
            return "finite" if a.is_positive and b.is_positive else None  # O(1) and O(5): both constant
        n = Symbol("n_", positive=True)
        ratio = (a / b).subs({s: n for s in symbols})
        value = limit(ratio, n, oo)
    except Exception:  # noqa: BLE001
        return None
    if value == 0:
        return "zero"
    if value in (oo, -oo):
        return "infinite"
    if value.is_finite and value.is_positive:
        return "finite" if len(symbols) == 1 else None  # several variables: one path agreeing proves nothing
    return None


def compare(reference: str, response: str) -> tuple[bool | None, str] | None:
    ref, got = _BIG.match(reference.strip()), _BIG.match(response.strip())
    if not ref or not got:
        return None
    if not (symbolic_safe(ref.group(3)) and symbolic_safe(got.group(3))):
        return None, "too large or deep to evaluate safely"
    if _letter(ref) != _letter(got):
        return None, f"{_letter(got)} against {_letter(ref)}"
    outcome = _ratio_limit(ref.group(3), got.group(3))
    if outcome != "finite" and re.search(r"\d\.\d", ref.group(3) + got.group(3)):
        return None, "a rounded exponent: the classes differ only by the rounding"
    if outcome is None:
        return None, "the ratio's limit is not known"
    return outcome == "finite", f"ratio tends to {outcome}"
