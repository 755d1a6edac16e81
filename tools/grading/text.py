"""Presentation stripped from an answer: LaTeX wrappers, math delimiters, markdown, Unicode look-alikes.

What is left is what a reader sees; every comparison starts from it. Nothing
here folds case or drops a sign: those are decisions the typed rules make.
"""

from __future__ import annotations

import re
import unicodedata

_WRAPPERS = re.compile(
    r"\\(?:boxed|fbox|smash|texttt|verb|text|mathrm|textbf|mathbf|textit|mathit|textrm|textsf|mathsf|mbox|operatorname|emph|boldsymbol|"
    r"textnormal|mathnormal|ce|pu)\s*\{([^{}]*)\}")
_SPACES = re.compile(r"(?<!\\)\\[,;:! ]|~|\\(?:enspace|quad|qquad|thinspace|medspace|thickspace|hfill)\b"
                     r"|\\(?:hspace|kern)\*?\s*\{[^{}]*\}")
_DASHES = str.maketrans({"\u2212": "-", "\u2013": "-", "\u2014": "-", "\u2010": "-", "\u2011": "-", "\u2012": "-",
                         "\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u00a0": " ", "\u2009": " ",
                         "\u202f": " ", "\u2044": "/"})
_FULLWIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}  # fullwidth ASCII (４２, －) as ASCII
_SUPERSCRIPTS = str.maketrans({"\u00b2": "^2", "\u00b3": "^3", "\u00b9": "^1", "\u2070": "^0", "\u2074": "^4",
                               "\u2075": "^5", "\u2076": "^6", "\u2077": "^7", "\u2078": "^8", "\u2079": "^9"})
_SUPER_MINUS = re.compile("\u207b([\u00b9\u00b2\u00b3\u2074-\u2079])")
_SYMBOLS = [("\\%", "%"), ("\\$", "$dollar"), ("\\degree", "°"), ("\\mu ", "µ"), ("\\mu", "µ"), ("μ", "µ"),
            ("\\Omega", "Ω"), ("\\AA", "Å"), ("\\ell", "l"), ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"),
            ("\\left", ""), ("\\right", ""), ("\\displaystyle", ""), ("\\textstyle", ""), ("\\,", " ")]
_DEGREE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|\\circ")


def plain(answer: str) -> str:
    """The answer as a reader sees it, on one line."""
    text = unicodedata.normalize("NFC", answer).translate(_FULLWIDTH).translate(_DASHES).replace("{,}", ",")
    text = _SUPER_MINUS.sub(lambda m: "^-" + m.group(1).translate(_SUPERSCRIPTS)[1:], text)
    text = text.translate(_SUPERSCRIPTS)
    text = re.sub(r"^\s*```[\w+-]*\s*\n?|\n?\s*```\s*$", "", text)  # a fenced code block around the answer
    text = re.sub(r"\*\*|__", "", text)
    text = re.sub(r"^\s*#+\s*", "", text)
    text = text.strip()
    if len(text) > 1 and text[0] == text[-1] and text[0] in "*_`":
        text = text[1:-1]
    text = text.replace("`", "")
    for delimiter in ("$", "\\(", "\\)", "\\[", "\\]"):
        text = text.replace(delimiter, "")
    text = text.replace("$dollar", "$")
    for old, new in _SYMBOLS:
        text = text.replace(old, new)
    text = text.replace("\\$", "$")
    text = _DEGREE.sub("°", text)
    for _ in range(4):
        unwrapped = _WRAPPERS.sub(r"\1", text)
        if unwrapped == text:
            break
        text = unwrapped
    text = _SPACES.sub(" ", text)
    text = " ".join(text.split())
    return text.rstrip(".").strip()


def strip_marks(text: str) -> str:
    """Diacritics removed (é -> e); letters that decompose into none (ß, ø, IPA symbols) stay."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))

