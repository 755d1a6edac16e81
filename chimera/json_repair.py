"""LaTeX written into JSON strings with one backslash: `"\\frac{1}{2}"` is valid JSON, but `\\f` is a form feed,
so the reply would be stored with a control character where the command was (`\\text` -> tab + "ext", `\\neq`
-> newline + "eq", `\\beta` -> backspace + "eta"). A model writes such replies often; the JSON text is mended
before it is parsed, so the command survives as the model meant it."""

from __future__ import annotations

import re

# LaTeX commands whose first letter is also a JSON escape (b f n r t u): after one backslash they parse as
# control characters. Longer names first, so "\\textbf" is not read as "\\text".
_COMMANDS = sorted("""
frac dfrac tfrac cfrac forall flat frown fbox footnote
text textbf textit textrm texttt textsf textnormal textsuperscript textsubscript times theta tau tan tanh to top
triangle tilde textstyle therefore tfrac tiny tt
neq ne nu nabla newline not notin ni nmid neg nless ngtr nexists natural nolimits noindent
beta begin bar binom boxed bmod bigcup bigcap big bigg Big Bigg bullet bot backslash bf bmatrix boldsymbol
rho right rightarrow Rightarrow rangle rm rfloor rceil rbrace real
""".split(), key=len, reverse=True)
_ESCAPED = re.compile(r"(?<!\\)((?:\\\\)*)\\(" + "|".join(_COMMANDS) + r")(?![A-Za-z])")
_STRAY = re.compile(r"(?<!\\)((?:\\\\)*)\\([bf])")  # backspace or form feed: never meant in a model's reply
_INVALID = re.compile(r"(?<!\\)((?:\\\\)*)\\([^\"\\/bfnrtu])")  # \alpha, \{ ...: not JSON escapes at all


def mend_latex_escapes(text: str) -> str:
    """The JSON text with a single backslash before a LaTeX command doubled, so it parses as a backslash."""
    text = _ESCAPED.sub(lambda m: m.group(1) + "\\\\" + m.group(2), text)
    text = _STRAY.sub(lambda m: m.group(1) + "\\\\" + m.group(2), text)
    return _INVALID.sub(lambda m: m.group(1) + "\\\\" + m.group(2), text)
