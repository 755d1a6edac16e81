"""A small, fast evaluator for the LaTeX arithmetic most final answers are written in.

math-verify parses LaTeX with an ANTLR grammar at ~15 ms an answer; most answers
are numbers, radicals, fractions, powers, pi, or polynomials in one or two
letters. This reads those directly and decides equivalence by evaluating both
sides at a few fixed points (complex arithmetic, so `i` works). Anything it
does not know (sets with letters, matrices, equations, integrals...) returns
None, and the caller hands it to math-verify.
"""

from __future__ import annotations

import cmath
import math
import re

_TOKEN = re.compile(r"\s*(\d+\.?\d*|\.\d+|\\[a-zA-Z]+|[a-zA-Z]|[-+*/^(){}\[\],!])")
_FUNCS = {"sin": cmath.sin, "cos": cmath.cos, "tan": cmath.tan, "ln": cmath.log, "exp": cmath.exp,
          "sqrt": cmath.sqrt, "arcsin": cmath.asin, "arccos": cmath.acos, "arctan": cmath.atan,
          "sinh": cmath.sinh, "cosh": cmath.cosh, "tanh": cmath.tanh}
_CONSTS: dict[str, float | None] = {"pi": math.pi, "infty": None}
_IGNORED = {"left", "right", "displaystyle", ",", "!"}
_WORD = re.compile(r"[a-zA-Z]{3,}")
_COMMAND = re.compile(r"\\[a-zA-Z]+")
POINTS: tuple[dict[str, complex], ...] = ({"default": 0.7316}, {"default": 1.4142 + 0.3127j}, {"default": -0.6180 + 1.1213j})


class _Unknown(Exception):
    """The text uses something this evaluator does not read."""


def _tokens(text: str) -> list[str]:
    text = text.replace("\\cdot", "*").replace("\\times", "*").replace("\\,", " ").replace("\\!", "")
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        match = _TOKEN.match(text, pos)
        if not match:
            raise _Unknown(text[pos])
        token = match.group(1)
        if not (token.startswith("\\") and token[1:] in _IGNORED):
            tokens.append(token)
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[str], env: dict[str, complex]):
        self.tokens, self.i, self.env = tokens, 0, env
        self.letters: set[str] = set()

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise _Unknown(f"expected {expected}")
        self.i += 1
        return token

    def expr(self) -> complex:
        value = self.term()
        while self.peek() in ("+", "-"):
            value = value + self.term() if self.take() == "+" else value - self.term()
        return value

    def term(self) -> complex:
        value = self.unary()
        while True:
            token = self.peek()
            if token in ("*", "/"):
                self.take()
                right = self.unary()
                value = value * right if token == "*" else value / right
            elif token is not None and self._starts_atom(token):
                value = value * self.power()  # implicit multiplication: 2x, 3\sqrt{2}, x(x+1)
            else:
                return value

    def unary(self) -> complex:
        if self.peek() in ("-", "+"):
            return -self.unary() if self.take() == "-" else self.unary()
        return self.power()

    def power(self) -> complex:
        base = self.atom()
        if self.peek() == "^":
            self.take()
            exponent = self.group() if self.peek() == "{" else self.unary_atom()
            return base ** exponent
        return base

    def unary_atom(self) -> complex:
        if self.peek() == "-":
            self.take()
            return -self.atom()
        return self.atom()

    def group(self) -> complex:
        if self.peek() == "{":
            self.take("{")
            value = self.expr()
            self.take("}")
            return value
        token = self.peek()
        if token is not None and token.isdigit() and len(token) > 1:  # \frac12: one digit per argument
            self.tokens[self.i] = token[1:]
            return complex(int(token[0]))
        return self.atom()

    def _starts_atom(self, token: str) -> bool:
        return token[0].isdigit() or token[0] == "." or token.isalpha() or token in ("(", "{") or (
            token.startswith("\\") and (token[1:] in _FUNCS or token[1:] in _CONSTS or token[1:] == "frac"))

    def atom(self) -> complex:
        token = self.take()
        if token[0].isdigit() or token[0] == ".":
            return complex(float(token))
        if token in ("(", "{"):
            value = self.expr()
            self.take(")" if token == "(" else "}")
            return value
        if token.isalpha() and len(token) == 1:
            if token == "e":
                return complex(math.e)
            if token == "i":
                return 1j
            self.letters.add(token)
            return self.env.get(token, self.env["default"]) * (1 + 0.137 * (ord(token) - 97))
        if token.startswith("\\"):
            name = token[1:]
            if name in ("frac", "dfrac", "tfrac"):
                return self.group() / self.group()
            if name == "sqrt":
                if self.peek() == "[":
                    self.take("[")
                    degree = self.expr()
                    self.take("]")
                    return self.group() ** (1 / degree)
                return cmath.sqrt(self.group())
            if name in _FUNCS:
                argument = self.group() if self.peek() in ("{", "(") else self.power()
                return _FUNCS[name](argument)
            constant = _CONSTS.get(name)
            if constant is not None:
                return complex(constant)
        raise _Unknown(token)


def evaluate(text: str, env: dict[str, complex] | None = None) -> complex | None:
    """The value of a LaTeX arithmetic expression, or None when it is not one this reads."""
    try:
        parser = _Parser(_tokens(text), env or POINTS[0])
        value = parser.expr()
        if parser.peek() is not None:
            return None
    except (_Unknown, ZeroDivisionError, OverflowError, ValueError, TypeError):
        return None
    if not (cmath.isfinite(value)):
        return None
    return value


def equivalent(a: str, b: str) -> bool | None:
    """Whether two expressions agree at every test point; None when either cannot be evaluated."""
    if "=" in a or "=" in b or "," in a or "," in b:
        return None  # equations, tuples and sets go to math-verify
    if any(_WORD.search(_COMMAND.sub(" ", text)) for text in (a, b)):
        return None  # words are not products of one-letter variables
    for point in POINTS:
        left, right = evaluate(a, point), evaluate(b, point)
        if left is None or right is None or max(abs(left), abs(right)) > 2**53:
            return None  # beyond float precision only an exact comparison can tell
        if not cmath.isclose(left, right, rel_tol=1e-9, abs_tol=1e-12):
            return False
    return True


_BRACKETS = {"\\{": "\\}", "(": ")", "[": ")", "]": "]"}


def bracketed(text: str) -> tuple[str, str, list[complex | float]] | None:
    """A set, interval or tuple of constants: (opening, closing, values); infinity as float inf."""
    text = text.strip()
    for opening in ("\\{", "(", "["):
        if text.startswith(opening):
            break
    else:
        return None
    closing = text[-2:] if text.endswith("\\}") else text[-1:]
    if closing not in (")", "]", "\\}") or (opening == "\\{") != (closing == "\\}"):
        return None
    inner = text[len(opening): len(text) - len(closing)]
    if any(ch in inner for ch in "()[]{}") and "\\frac" not in inner and "\\sqrt" not in inner:
        return None  # nested structure: leave it to math-verify
    values: list[complex | float] = []
    for part in inner.split(","):
        part = part.strip()
        if part in ("\\infty", "+\\infty", "\\infty"):
            values.append(math.inf)
        elif part == "-\\infty":
            values.append(-math.inf)
        else:
            if _WORD.search(_COMMAND.sub(" ", part)) or re.search(r"[a-zA-Z]", _COMMAND.sub("", part).replace("e", "")):
                return None  # letters: not constants
            value = evaluate(part)
            if value is None:
                return None
            values.append(value)
    return opening, closing, values


def same_bracketed(a: str, b: str) -> bool | None:
    """Sets compare unordered, intervals and tuples in order with their bracket types; None if not both."""
    left, right = bracketed(a), bracketed(b)
    if left is None or right is None:
        return None
    if left[0] != right[0] or left[1] != right[1] or len(left[2]) != len(right[2]):
        return False
    def key(v: complex | float) -> tuple[float, float]:
        return (v.real, v.imag) if isinstance(v, complex) else (v, 0.0)
    xs, ys = (sorted(left[2], key=key), sorted(right[2], key=key)) if left[0] == "\\{" else (left[2], right[2])
    return all(x == y if math.isinf(abs(x)) or math.isinf(abs(y)) else cmath.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)
               for x, y in zip(xs, ys))
