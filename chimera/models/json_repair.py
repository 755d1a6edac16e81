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


# A lone surrogate or a NUL written as a JSON escape: no store can keep the character it decodes to.
_UNICODE_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u([0-9a-fA-F]{4})")


def _storable_escapes(text: str) -> str:
    matches = list(_UNICODE_ESCAPE.finditer(text))
    if not matches:
        return text
    out, last, i = [], 0, 0
    while i < len(matches):
        match, code = matches[i], int(matches[i].group(2), 16)
        low = matches[i + 1] if i + 1 < len(matches) else None
        paired = 0xD800 <= code <= 0xDBFF and low is not None and low.start() == match.end() \
            and not low.group(1) and 0xDC00 <= int(low.group(2), 16) <= 0xDFFF
        if paired:
            i += 2
            continue
        if code == 0 or 0xD800 <= code <= 0xDFFF:
            out.append(text[last:match.start()] + match.group(1) + "\\ufffd")
            last = match.end()
        i += 1
    return "".join(out) + text[last:]


def mend_latex_escapes(text: str) -> str:
    """The JSON text with a single backslash before a LaTeX command doubled, so it parses as a backslash; a lone
    surrogate or a NUL escape becomes U+FFFD, visibly."""
    text = _storable_escapes(text)
    text = _ESCAPED.sub(lambda m: m.group(1) + "\\\\" + m.group(2), text)
    text = _STRAY.sub(lambda m: m.group(1) + "\\\\" + m.group(2), text)
    return _INVALID.sub(lambda m: m.group(1) + "\\\\" + m.group(2), text)
