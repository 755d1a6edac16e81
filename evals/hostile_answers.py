"""Answers written to break a grader: huge numbers, explosive parses, deep nesting, 100k-character
replies, unclosed braces, odd code points. Used by the grading benchmark (`--hostile`) and the tests,
which check that every grade returns a verdict and never raises.

Each case is (name, reference, response, problem).
"""

from __future__ import annotations

HostileCase = tuple[str, str, str, str | None]


def _boxed(answer: str) -> str:
    return f"Working it out carefully.\n\nThe final answer is $\\boxed{{{answer}}}$."


def hostile_cases() -> list[HostileCase]:
    digits = "1" + "0" * 5000
    nest = 3000
    cases: list[HostileCase] = [
        ("power tower", "42", _boxed("9^{9^{9^{9^{9}}}}"), None),
        ("huge exponent, e-notation", "42", _boxed("1e999999999"), None),
        ("huge exponent, times ten", "3.0 \\times 10^{8}", _boxed("3.0 \\times 10^{999999999}"), None),
        ("huge exponent in the reference", "10^{999999999}", _boxed("5"), None),
        ("huge power of two", "2^{10}", _boxed("2^{99999999999}"), None),
        ("huge power, letters", "x^2", _boxed("x^{99999999999}"), None),
        ("power of ten with thousands of digits against a decimal", "1.0 \\times 10^{5000}", _boxed(digits), None),
        ("thousands of digits against thousands of digits", digits, _boxed(digits + "1"), None),
        ("decimal with thousands of digits", "0.5", _boxed("0." + "3" * 20000), None),
        ("factorial", "120", _boxed("1000000!"), None),
        ("factorial of a power", "120", _boxed("(10^{9})!"), None),
        ("repeated factorial", "720", _boxed("3!!!!!!"), None),
        ("deep parentheses", "1", _boxed("(" * nest + "1" + ")" * nest), None),
        ("deep fractions", "1", _boxed("\\frac{1}{" * 400 + "1" + "}" * 400), None),
        ("deep roots", "2", _boxed("\\sqrt{" * 400 + "16" + "}" * 400), None),
        ("deep braces", "1", _boxed("{" * nest + "1" + "}" * nest), None),
        ("long sum", "50000", _boxed("+".join(["1"] * 50000)), None),
        ("long product of letters", "x", _boxed("x" * 100000), None),
        ("100k digits", "7", _boxed("7" * 100000), None),
        ("100k characters of prose", "photosynthesis", "word " * 20000 + "\nFinal answer: " + "photosynthesis " * 2000, None),
        ("unclosed boxes", "42", "\\boxed{" * 10000 + "42", None),
        ("unclosed boxes after an answer", "42", "The answer is \\boxed{42}. " + "\\boxed{" * 10000, None),
        ("many boxes", "42", " ".join(["\\boxed{42}"] * 20000), None),
        ("many boxes that differ", "42", " or ".join(f"\\boxed{{{i}}}" for i in range(20000)), None),
        ("many final-answer markers", "42", "Final answer: 41\n" * 20000 + "Final answer: 42", None),
        ("spaces", "42", " " * 100000 + "42", None),
        ("newlines", "42", "\n" * 100000 + "Final answer: 42", None),
        ("marker without a newline", "42", "answer " * 30000, None),
        ("lone surrogate", "42", _boxed("4\ud8002"), None),
        ("NUL and controls", "42", _boxed("4\x002\x07\x1b[31m"), None),
        ("combining marks", "é", _boxed("e" + "\u0301" * 50000), None),
        ("right-to-left override", "42", _boxed("\u202e24"), None),
        ("integral", "1", _boxed("\\int_0^{10^{9}} x^{x^{x}} \\, dx"), None),
        ("huge sum", "1", _boxed("\\sum_{n=1}^{10^{12}} n^{n}"), None),
        ("limit", "1", _boxed("\\lim_{n\\to\\infty} (1+1/n)^{n^{n}}"), None),
        ("big matrix", "\\begin{pmatrix}1\\end{pmatrix}",
         _boxed("\\begin{pmatrix}" + "\\\\".join("&".join("x" for _ in range(40)) for _ in range(40)) + "\\end{pmatrix}"), None),
        ("big set", "\\{1, 2\\}", _boxed("\\{" + ", ".join(str(i) for i in range(20000)) + "\\}"), None),
        ("big interval bounds", "(0, 1)", _boxed("(0, 10^{999999999})"), None),
        ("quantity with a huge exponent", "5 m", _boxed("5 \\times 10^{999999999} m"), None),
        ("quantity with a huge unit power", "5 m", _boxed("5 m^{99999999}"), None),
        ("percent with a huge exponent", "25%", _boxed("1e99999999%"), None),
        ("ratio of many parts", "1:2", _boxed(":".join(["1"] * 20000)), None),
        ("ratio of huge numbers", "1:2", _boxed("1:" + "9" * 20000), None),
        ("sequence of many numbers", "1 2 3", _boxed(" ".join(["1"] * 30000)), None),
        ("formula with a huge count", "H2O", _boxed("C99999999999H2"), None),
        ("long formula", "H2O", _boxed("CH2" * 20000), None),
        ("long SMILES", "CCO", _boxed("C" * 50000), None),
        ("SMILES with deep branches", "CCO", _boxed("C(" * 3000 + "C" + ")" * 3000), None),
        ("big-O tower", "O(n^2)", _boxed("O(n^{n^{n^{n^{n^{99999}}}}})"), None),
        ("big-O of a factorial", "O(n!)", _boxed("O((10^{9})!)"), None),
        ("far-future date", "1776", _boxed("99999999999999999999"), None),
        ("date with many digits", "July 4, 1776", _boxed("July 4, " + "9" * 5000), None),
        ("multiple choice flood", "B", "**Answer: " + "B or " * 20000 + "C**",
         "Which is it?\n(A) one\n(B) two\n(C) three\n(D) four"),
        ("huge problem text", "B", "**Answer: B**", "(A) x " * 30000),
        ("many assignments", "x = 1", _boxed(", ".join(f"x_{i} = {i}" for i in range(10000))), None),
        ("yes and a flood", "yes", _boxed("yes " * 30000), None),
        ("equation with a tower", "x = 2", _boxed("x^{x^{x^{x}}} = 2^{2^{2^{2}}}"), None),
        ("trig of a huge number", "0", _boxed("\\sin(10^{999999999})"), None),
        ("nested exponentials", "1", _boxed("e^{e^{e^{e^{e^{e^{10}}}}}}"), None),
        ("hostile reference", "\\boxed{" * 10000, _boxed("42"), None),
        ("huge reference", "9" * 100000, _boxed("9" * 100000), None),
        ("empty everything", "", "", None),
        ("transcription flood", "/θ/", _boxed("/" + "θ" * 50000 + "/"), None),
        ("config flood", "1s^2 2s^2", _boxed(" ".join(["1s^2"] * 20000)), None),
        ("oxidation flood", "+2", _boxed("+" + "9" * 20000), None),
    ]
    return cases
