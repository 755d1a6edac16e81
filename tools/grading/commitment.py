"""Commitment: a response earns a verdict only for the one answer it commits to.

A policy trained on a reward learns any answer form the reward accepts, so every non-committal form
is a hedge, which is never correct: several candidates for a single-valued question (any joiner, any
order, in one box or across several), a candidate followed by a retraction or an alternative, a set,
range or relation that merely contains the value. Text addressed to the grader is removed before the
answer is looked for, so it can never make an answer correct.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

_NOTE = (r"(?:\bnote\s+(?:to|for)\s+(?:the\s+)?(?:grader|evaluator|checker|judge|reviewer|marker|verifier)"
         r"|\bgrader\b|\bauto-?grader\b|reference\s+answer|expected\s+answer|ground[\s-]+truth"
         r"|\bmark\s+(?:this|it|the\s+\w+|my\s+\w+)\s+(?:as\s+)?(?:correct|right|true)"
         r"|\b(?:answer|response|solution)\s+(?:is|should\s+be|must\s+be)\s+(?:marked|graded|scored|judged|considered)\b"
         r"|ignore\s+(?:all\s+|any\s+|the\s+|your\s+)?(?:previous|prior|above|earlier|other)\s+(?:instructions|rules|text)"
         r"|\b(?:system|developer)\s*(?:prompt|message|override|instruction)"
         r"|\boutput\s+[\"'`]?(?:correct|true|1)\b|\bfull\s+(?:credit|marks|reward)\b|\breward\s*(?:=|of|:)\s*1)")
_NOTE_SPAN = re.compile(r"(?is)[\[(<{][^\[\]()<>{}\n]{0,400}?" + _NOTE + r"[^\[\]()<>{}]{0,400}?[\])>}]")
_NOTE_LINE = re.compile(r"(?im)^.*" + _NOTE + r".*$")

# A retraction or an alternative after (or beside) the answer: the response has not committed.
RETRACTION = re.compile(
    r"(?i)\b(?:actually|alternatively|wait|hmm+|on\s+second\s+thought|or\s+(?:maybe|possibly|perhaps|rather|else|instead)"
    r"|could\s+(?:also|instead|equally|as\s+well)\s+be|might\s+(?:also\s+|instead\s+|well\s+)?be|may\s+(?:also\s+)?be"
    r"|unless|not\s+(?:sure|certain)|uncertain|possibly|perhaps|maybe|either|depending\s+on|if\s+instead"
    r"|though\s+\S+(?:\s+\S+){0,6}\s+(?:also|too|possible|plausible)|or\s+it\s+could|it\s+could\s+also"
    r"|no,\s+(?:it'?s|it\s+is|the\s+answer)|i\s+(?:mean|meant)|scratch\s+that|correction"
    r"|(?:also|equally)\s+(?:plausible|possible|valid|correct|acceptable|likely|defensible))\b")
# Between two different boxed answers: the later one offered as another reading, not as a revision.
ALTERNATIVE_BETWEEN = re.compile(
    r"(?i)\b(?:another|alternative(?:ly)?|otherwise|other\s+(?:interpretation|reading|possibility|answer|case|convention)"
    r"|if\s+(?:we|you|one|instead)\b|under\s+(?:a|the)\s+(?:different|other)|or\b|instead)")

Joiner = Literal["or", "and", "list"]
_OR = re.compile(r"(?i)\s+or\s+|\s*\\text\s*\{\s*or\s*\}\s*|\s+/\s+|\s*\\pm\s*|\s*±\s*|\s*\+/-\s*"
                 r"|\s*,?\s*\b(?:maybe|possibly|perhaps|alternatively|otherwise|else)\s+")
_LEADING_HEDGE = re.compile(r"(?i)^\s*(?:either|one\s+of|any\s+of|possibly|perhaps|maybe|probably)\s+")
_AND = re.compile(r"(?i)\s+(?:and|&|\\&|as\s+well\s+as|plus|together\s+with)\s+|\s*\\text\s*\{\s*and\s*\}\s*")
_LIST = re.compile(r"\s*[;,]\s*(?!\d{3}\b)|\s*\\quad\s*")
_SLASH = re.compile(r"(?<=[A-Za-z\])])\s*/\s*(?=[A-Za-z\[(])")  # "stack/queue", "[ʃ]/[ʒ]"; not "m/s" after a number
_WORD_PAIR = re.compile(r"(?i)^(yes|no|true|false|[A-J])\s*/\s*(yes|no|true|false|[A-J])$")
_ASIDE = re.compile(r"(?is)^(.+?)\s*\(\s*(?:or|alternatively|maybe|possibly|perhaps|otherwise)\b\s*(.+?)\)\s*$")
# After the answer: "(or X)", or a sentence that opens with "or".
ALTERNATIVE_AFTER = re.compile(r"(?i)\(\s*(?:or|alternatively|maybe|possibly|perhaps)\b|^\W{0,4}or\b")
RELATION = re.compile(
    r"<|>|≤|≥|≠|≮|≯|⩾|⩽|∼|∝|≡|≐|≟|≅|≃|∈|∉|⊂|⊆|⊃|⊇|→|↦|=\s*\?|\\(?:to|sim|propto|equiv|doteq|mapsto|rightarrow)(?![a-zA-Z])|\\(?:le|ge|leq|geq|neq|ne|lt|gt|leqslant|geqslant|nless|ngtr|in|notin|subset|subseteq)(?![a-zA-Z])")
RANGE_WORDS = re.compile(
    r"(?i)\b(?:at\s+(?:least|most)|more\s+than|less\s+than|fewer\s+than|greater\s+than|no\s+(?:more|less|fewer|earlier|later|"
    r"greater|smaller)\s+than|up\s+to|not\s+(?:more|less)\s+than|in\s+the\s+range|range\s+of|somewhere"
    r"|or\s+(?:more|less|fewer|greater|so)|and\s+(?:above|below|up|more))\b|\bbetween\s+\S.*?\s+and\s+\S|\bfrom\s+\S+\s+to\s+\S"
    r"|\\pm|±|\+/-")
# Declining to answer ("cannot be determined") is an answer only where the reference says so too.
DECLINES = re.compile(
    r"(?i)\b(?:cannot|can't|can\s+not|could\s+not|impossible\s+to)\s+(?:be\s+)?(?:determined?|decided?|known?|tell|say|answered)"
    r"|\bnot\s+enough\s+information|\binsufficient\s+(?:information|data)|\bindeterminate\b|\bundetermined\b"
    r"|\bno\s+(?:unique|definite|single)\s+answer|\bunknowable\b|\bnot\s+(?:determinable|possible\s+to\s+determine)")


@dataclass(frozen=True)
class Candidates:
    parts: tuple[str, ...]
    joiner: Joiner | None  # None: one candidate


def without_notes(text: str) -> str:
    """Bracketed asides and whole lines addressed to a grader removed."""
    text = _NOTE_SPAN.sub(" ", text)
    return _NOTE_LINE.sub("", text)


def _masked(text: str) -> str:
    """Everything inside brackets and braces replaced by one character, so joiners are found at the top level
    only (the commas of a set or an interval are not candidates)."""
    out, depth = [], 0
    i = 0
    while i < len(text):
        ch = text[i]
        if text.startswith("\\{", i) or text.startswith("\\}", i):
            depth += 1 if text[i + 1] == "{" else -1
            out.append("\x01\x01")
            i += 2
            continue
        if ch in "([{":
            depth += 1
            out.append("\x01")
        elif ch in ")]}":
            out.append("\x01")
            depth = max(depth - 1, 0)
        else:
            out.append("\x01" if depth else ch)
        i += 1
    return "".join(out)


def _split(text: str, pattern: re.Pattern[str]) -> list[str]:
    masked = _masked(text)
    parts, start = [], 0
    for match in pattern.finditer(masked):
        if match.start() == 0:
            continue
        parts.append(text[start:match.start()])
        start = match.end()
    parts.append(text[start:])
    return [part.strip(" .;,") for part in parts if part.strip(" .;,")]


def candidates(answer: str) -> Candidates:
    """The alternatives an answer names: "2 or 5", "B and D", "Yes/No", "either A or B", "42 (or 43)"."""
    text = answer.strip()
    aside = _ASIDE.match(text)
    if aside:
        return Candidates((aside.group(1).strip(), aside.group(2).strip()), "or")
    pair = _WORD_PAIR.match(text)
    if pair:
        return Candidates((pair.group(1), pair.group(2)), "or")
    hedged = bool(_LEADING_HEDGE.match(text))
    text = _LEADING_HEDGE.sub("", text)
    parts = _split(text, _OR)
    if len(parts) < 2 and not re.search(r"\d", text) and re.fullmatch(r"[^\s/]+(?:\s*/\s*[^\s/]+)+", text):
        parts = _split(text, _SLASH)  # "stack/queue" names two; "/p/ is a plosive" is a sentence
    if len(parts) >= 2:
        return Candidates(tuple(parts), "or")
    for pattern, joiner in ((_AND, "and"), (_LIST, "list")):
        parts = _split(text, pattern)
        if len(parts) >= 2:
            return Candidates(tuple(parts), "or" if hedged else joiner)  # type: ignore[arg-type]
    return Candidates((text,), "or" if hedged else None)


def single_valued(reference: str) -> bool:
    """A reference that is one value (a number, a word, a letter, an interval or a tuple as one object),
    not a list or set of values."""
    text = reference.strip()
    if re.match(r"^\\?\{.*\\?\}$", text) and "," in text:
        return False
    return all(len(_split(text, pattern)) < 2 for pattern in (_OR, _AND, _LIST)) and "\\pm" not in text and "±" not in text


def relation_or_range(answer: str, reference: str) -> bool:
    """An inequality, a membership or a range in the answer, where the reference states a value."""
    if (RELATION.search(answer) and not RELATION.search(reference)) or ("\\pm" in answer or "±" in answer) and not (
            "\\pm" in reference or "±" in reference):
        return True
    return bool(RANGE_WORDS.search(answer) and not RANGE_WORDS.search(reference) and re.search(r"\d", answer + reference))


# -- what a reader sees ---------------------------------------------------------------------------------------

_HIDE_COMMANDS = re.compile(r"\\(?:phantom|vphantom|hphantom|iffalse)\s*(?=\{)")
_STRUCK = re.compile(r"~~[^~\n]+~~|<(?:s|del|strike)>.*?</(?:s|del|strike)>", re.S)  # struck-through text is withdrawn
_INVISIBLE_COLOR = r"(?:white|transparent|none|#f{3}(?:f{3})?\b)"
_TEXTCOLOR = re.compile(r"\\(?:textcolor|colorbox)\s*\{\s*" + _INVISIBLE_COLOR + r"\s*\}\s*(?=\{)", re.I)
_COLOR = re.compile(r"\\color\s*\{\s*" + _INVISIBLE_COLOR + r"\s*\}", re.I)
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
_HIDDEN_HTML = re.compile(
    r"(?is)<(span|div|p|font|i|b|small)\b[^>]*(?:display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0|opacity\s*:\s*0"
    r"|color\s*[:=]\s*[\"']?" + _INVISIBLE_COLOR + r")[^>]*>.*?</\1\s*>")
_IFFALSE = re.compile(r"\\iffalse\b.*?(?:\\fi\b|\Z)", re.S)
_LATEX_COMMENT = re.compile(r"(?m)(?<![\\\d])%[^\n]*\\(?:boxed|fbox)[^\n]*$")
_FENCE = re.compile(r"```.*?(?:```|\Z)", re.S)
_FORMAT_TAGS = re.compile(r"(?i)</?(?:b|i|u|em|strong|mark|span|small|big|code|font|p|div)\b[^>]*>|<br\s*/?>")


def _braces(text: str) -> dict[int, int]:
    """Each "{" to its matching "}", in one pass."""
    pairs, stack = {}, []
    for i, ch in enumerate(text):
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            pairs[stack.pop()] = i
    return pairs


def visible(text: str) -> str:
    """The response as a reader sees it rendered: phantoms, invisible colours, comments and hidden HTML removed;
    a box inside a code block is text, not a box."""
    text = _IFFALSE.sub(" ", _HIDDEN_HTML.sub(" ", _HTML_COMMENT.sub(" ", _STRUCK.sub(" ", text))))
    text = _FORMAT_TAGS.sub("", _LATEX_COMMENT.sub(" ", text))
    text = _FENCE.sub(lambda m: m.group(0).replace("\\boxed", "\\Boxed").replace("\\fbox", "\\Fbox"), text)
    if "{" not in text:
        return text
    pairs = _braces(text)
    cut: list[tuple[int, int]] = []
    for pattern in (_HIDE_COMMANDS, _TEXTCOLOR):
        for match in pattern.finditer(text):
            close = pairs.get(match.end())
            cut.append((match.start(), close + 1 if close is not None else len(text)))
    if _COLOR.search(text):
        stack: list[int] = []
        colors = {m.start(): m for m in _COLOR.finditer(text)}
        for i, ch in enumerate(text):
            if ch == "{":
                stack.append(i)
            elif ch == "}" and stack:
                stack.pop()
            elif i in colors:  # {\color{white} ...}: the enclosing group, braces and all
                group_start = stack[-1] if stack else i
                end = pairs.get(stack[-1], len(text) - 1) + 1 if stack else len(text)
                cut.append((group_start, end))
    if not cut:
        return text
    out, last = [], 0
    for start, end in sorted(cut):
        if start >= last:
            out.append(text[last:start])
            last = end
        else:
            last = max(last, end)
    out.append(text[last:])
    return " ".join(out)


# -- a commitment, and what undoes it ---------------------------------------------------------------------------

# The words just before a boxed answer that make it no commitment: "not \boxed{42}", "if it were \boxed{42}".
NEGATED_BEFORE = re.compile(
    r"(?i)(?:\b(?:not|never|isn't|aren't|rather\s+than|instead\s+of|except|excluding|nor)[\s${}(]*(?:\\\(|\\\[)?\s*"
    r"|\b(?:if|suppose|supposing|assume|assuming|whether|were|candidate|guess|tentatively)\b[^.,;!?\n]{0,60}"
    r"|\bis\s+it\s*(?:\$|\\\()?\s*|\bcould\s+it\s+be\s*)$")
# Right after the answer: a question, a verdict against it, or the box used as an operand (\boxed{2}^2).
UNDONE_AFTER = re.compile(
    r"(?i)^[\s$)\]}*_]*(?:\?|!\?|\^|_\{?|\\(?:cdot|times)\b|[*+/]\s*[\w\\(]"
    r"|(?:is|was|would\s+be|seems|looks)\s+(?:wrong|incorrect|false|not\b|a\s+mistake|an\s+error|unlikely|doubtful))")
# A trailing phrase that only explains the answer: numbers after it are no second candidate.
EXPLAINS = re.compile(
    r"(?i)^[\s$.,:;)\]}*_-]*(?:i\.?\s?e\.?|e\.?\s?g\.?|that\s+is|which|where|since|because|as\b|check|verif|indeed|so\b|"
    r"therefore|thus|units?\b|per\b|with\b|from\b|for\b|using\b|by\b|at\b|rounded|to\s+\d|correct\s+to|accurate|"
    r"✓|∎|\(?\d+\s*(?:significant|sig|s\.f|decimal|d\.p|places|figures|digits))")
MORE_RETRACTION = re.compile(
    r"(?i)\b(?:another\s+(?:possible\s+|plausible\s+|valid\s+)?(?:answer|possibility|option|reading|value)"
    r"|if\s+(?:I|we)\s+(?:misread|misunderstood|misinterpreted)|p\.\s?s\.|sonst|ansonsten|otherwise"
    r"|(?:probably|possibly|may\s+be|might\s+be|could\s+be)\s+(?:wrong|incorrect|mistaken|off)"
    r"|not\s+(?:confident|completely\s+sure|fully\s+sure)|unsure|i\s+doubt|also\s+(?:works|fits|holds|right|true)"
    r"|works\s+too|or\s+rather|if\s+(?:we|you|one|I)\s+(?:count|read|interpret|assume|take|consider)\b[^.\n]{0,40}"
    r"\b(?:differently|otherwise|instead)|however,?\s+if|differently\s+we\s+get|on\s+(?:second\s+)?reflection"
    r"|(?:correct|right|true|actual|real)\s+(?:value|answer|result|option)\s+(?:is|would\s+be|should\s+be))\b")
REVISION = re.compile(
    r"(?i)\b(?:wait|no\b|wrong|mistake|error|incorrect|actually|correction|corrected|instead|re-?check|recomput|"
    r"recalculat|re-?do|redo|fix|oops|sorry|on\s+reflection|reconsider|let\s+me\s+re)")
APPROXIMATE = re.compile(
    r"(?i)\\approx|≈|≃|≅|\\simeq|\\sim\b|(?<![\w\\])~\s*\d|\bapprox(?:imately|\.)?(?!\w)|\babout\b|\baround\b"
    r"|\broughly\b|\bcirca\b|\bc\.\s*\d|\d\s*-?ish\b|^[-+]?\d+(?:\.\d+)?\s*\^\s*\{?\s*[+]\s*\}?\s*$|\bor\s+so\b")

Kind = Literal["letter", "yesno", "transcription", "bigo", "number"]
_KINDS: list[tuple[Kind, re.Pattern[str]]] = [
    ("letter", re.compile(r"^\(?[A-J]\)?$")),
    ("yesno", re.compile(r"(?i)^(?:yes|no|true|false)$")),
    ("transcription", re.compile(r"^[/\[][^/\[\]]+[/\]]$")),
    ("bigo", re.compile(r"^(?:O|o|Θ|Ω|\\Theta|\\Omega|\\mathcal\s*\{?O\}?)\s*\(")),
    ("number", re.compile(r"^[-+]?(?:\d[\d,]*(?:\.\d+)?|\.\d+)$")),
]
_TOKENS: dict[Kind, re.Pattern[str]] = {
    "letter": re.compile(r"(?<![A-Za-z'’])\(?([A-J])\)?(?![A-Za-z'’])(?!\s+[a-z])"),
    "yesno": re.compile(r"(?i)(?<![A-Za-z])(yes|true|false|nein|oui|non|ja|no(?=\s*[.,;:!?)\]]|\s*$))(?![A-Za-z])"),
    "transcription": re.compile(r"([/\[][^\s/\[\]]{1,30}[/\]])"),
    "bigo": re.compile(r"((?:O|Θ|Ω|\\Theta|\\Omega)\s*\((?:[^()]|\([^()]*\))*\))"),
    "number": re.compile(r"(?<![\w^_.])([-+]?\d+(?:\.\d+)?)(?!\w|\.\d)"),
}
_YES = {"yes", "true", "ja", "oui"}
_CLOSERS = re.compile(r"(?i)^(?:q\.?e\.?d\.?|∎|□|✓|✔|done|end|\\end\{\w+\*?\}|\\\]|\$\$|\*+|-+|=+)\W*$")
_VERB = re.compile(r"(?i)\b(?:is|are|was|were|be|has|have|had|hope|helps?|check|verif\w*|note|let|can|will|would|should|"
                   r"means|gives|follows|holds|matches|confirms|thanks?)\b")


def kind_of(answer: str) -> Kind | None:
    text = answer.strip()
    return next((kind for kind, pattern in _KINDS if pattern.match(text)), None)


def _same(kind: Kind, a: str, b: str) -> bool:
    a, b = a.strip("() ").lower(), b.strip("() ").lower()
    if kind == "yesno":
        return (a in _YES) == (b in _YES)
    if kind == "number":
        try:
            return float(a.replace(",", "")) == float(b.replace(",", ""))
        except ValueError:
            return False
    return re.sub(r"\s+", "", a) == re.sub(r"\s+", "", b)


def other_candidate(answer: str, rest_of_line: str, after_line: str) -> str | None:
    """A second value of the answer's own kind right after it (on its line, or alone on the next line):
    "\\boxed{42}, 43", "\\boxed{B}\\n\\n**C**", "\\boxed{Yes}\\n\\nNo." Returns it, or None."""
    kind = kind_of(answer)
    rest = re.sub(r"[\^_]\s*\{?[-+]?\d+\}?", " ", rest_of_line)  # exponents and subscripts belong to units
    if not EXPLAINS.match(rest):
        for found in _TOKENS[kind].findall(rest) if kind else []:
            if not _same(kind, found, answer):  # type: ignore[arg-type]
                return found
    line = next((ln.strip() for ln in after_line.splitlines() if ln.strip()), "")
    bare = line.strip(" $*_.:;!()[]\\")
    if not line or _CLOSERS.match(line) or len(bare) > 40 or _VERB.search(bare) or EXPLAINS.match(line):
        return None
    if kind is not None:
        tokens = _TOKENS[kind].findall(line)
        return next((t for t in tokens if not _same(kind, t, answer)), None)
    return bare if bare and bare.lower() != answer.strip().lower() and not re.search(r"\d", bare) else None


# -- a box that stands alone in its sentence ----------------------------------------------------------------------

# After a box, in its sentence: nothing but punctuation and closing delimiters.
_CLOSING = re.compile(r"^[\s$)\]}*_`]*(?:\\\)|\\\])?[\s$)\]}*_`]*[.,:!]?[\s$)\]}*_`]*$")
_IS_THE_ANSWER = re.compile(
    r"(?i)^\W{0,3}(?:(?:is|would\s+be|will\s+be)\s+(?:the|our|my)\s+(?:final\s+)?(?:answer|result|value)\b"
    r"|(?:and\s+)?(?:done|q\.?e\.?d\.?|that'?s\s+it|we\s+are\s+done|as\s+(?:required|claimed|expected))\W*$)")
DISOWNED = re.compile(
    r"(?i)\b(?:wrong|incorrect|false|ruled\s+out|eliminated|impossible|fails?|failed|does\s*n[o']t|doesn't|is\s*n[o']t|isn't"
    r"|not\s+(?:the|correct|right|valid|it)|guess(?:ed|ing)?|unverified|unconfirmed|unsure|confidence|placeholder|todo|tbd"
    r"|to\s+be\s+(?:determined|confirmed|checked)|lol|jk|kidding|with\s+probability|reject(?:ed|s)?|discard(?:ed)?)\b"
    r"|[✗❌👎✘]|[\u0335-\u0338]")
QUESTIONED = re.compile(r"[?？;¿؟﹖‽⁇⁈⁉]|\.\.\.|…|\\l?dots\b|\\cdots\b|\(\s*\?\s*\)")
REDEFINES = re.compile(r"\\(?:re)?newcommand|\\providecommand|\\def\s*\\|\\let\s*\\|\\DeclareMathOperator|\\renewenvironment")
_GLUED = re.compile(r"^(?:[\w%‰'′″²³¹⁰-⁹₀-₉!+]|\\%|\.\d|\\(?:pi|prime|circ|%|times|cdot|cup|cap|setminus|!)\b)")


_CONNECTIVE = (r"(?:therefore|thus|hence|so|then|finally|overall|in\s+conclusion|in\s+summary|in\s+total|in\s+short|"
               r"all\s+in\s+all|altogether|consequently|as\s+a\s+result|putting\s+(?:it|this|everything|these|them|it\s+all)\s+together|"
               r"combining\s+(?:these|everything|both|them|the\s+(?:two|cases|results))|we\s+conclude(?:\s+that)?)")
# "the answer is", or "the <quantity> is" naming what was asked ("the distance is", "the number of ways is")
_QUANTITIES = (r"answer|result|value|solution|output|distance|displacement|speed|velocity|acceleration|area|volume|mass|"
               r"weight|energy|work|power|force|momentum|charge|current|voltage|resistance|frequency|wavelength|period|"
               r"temperature|pressure|density|concentration|molarity|ph|yield|probability|sum|product|total|count|length|"
               r"time|slope|range|domain|limit|ratio|rate|angle|radius|diameter|perimeter|circumference|height|width|mean|"
               r"median|mode|variance|minimum|maximum|derivative|integral|determinant|rank|degree|year|date|name|author|"
               r"element|compound|formula|gene|enzyme|term|word|language|capital|complexity|runtime|order|remainder|"
               r"quotient|difference|number\s+of\s+[A-Za-z-]{3,24}")
# "the answer is", or "the <quantity> is" naming what was asked ("the distance is", "the number of ways is")
_SUBJECT = (r"(?:(?:the|our|my)\s+(?:final\s+|correct\s+|required\s+|requested\s+|desired\s+|unique\s+|total\s+)?"
            r"(?:" + _QUANTITIES + r")|(?:final\s+)?answer)")
_LEAD_VERB = r"(?:is|are|=|:|：|equals|comes\s+to|reads)"
_OPENERS = (r"(?:we\s+(?:get|obtain|find|have)|this\s+gives|which\s+gives|that\s+gives|it\s+is|it's|there\s+(?:are|is)|"
            r"the\s+answer\s+is\s+therefore)")
_ARITHMETIC = r"\d(?:[\d\s+\-*/^().{}]|\\times|\\cdot|\\frac|\\div)*="  # "6 \\times 7 =": a computation ending in it
_VARIABLE = (r"(?:[A-Za-z](?:_\{?\w{1,3}\}?)?(?:\(\s*[A-Za-z0-9]{1,3}\s*\))?|\\(?:theta|alpha|beta|lambda|omega|phi|mu|sigma|"
             r"tau|rho|delta|gamma)|(?!(?:half|double|twice|triple|negative|minus|inverse|reciprocal|square|root|sqrt|log|"
             r"ln|exp|sum|difference|lower|upper|bound|error|wrong|not|approx\w*|estimate|guess|answer)\b)[A-Za-z]{2,24})\s*=")
# The only words that may stand before a committed answer in its sentence: a connective ("therefore"), then a
# statement's lead ("the answer is", "we get", "x ="). Anything else qualifies it ("up to sign", "at least",
# "2x =", "the answer squared is"), and the whole sentence is then the answer, which a rule rarely decides.
LEAD_ALLOWED = re.compile(
    rf"(?i)^\s*(?:{_CONNECTIVE}\s*[,:]?\s*)?(?:(?:{_SUBJECT}\s*{_LEAD_VERB}?\s*)?{_VARIABLE}|{_ARITHMETIC}|{_SUBJECT}\s*{_LEAD_VERB}?|{_OPENERS}|)"
    r"\s*[:=：]?\s*$")
_LEAD_PREFIX = re.compile(
    rf"(?i)^\s*(?:{_CONNECTIVE}\s*[,:]?\s*)?(?:{_SUBJECT}\s*{_LEAD_VERB}|{_OPENERS})\s*[:=：]?\s*")
# The words right before the answer when the sentence began with something else ("Working through the cases,
# the result is"): a statement's lead, preceded by nothing that qualifies the claim.
_IMMEDIATE_LEAD = re.compile(
    rf"(?i)(?:^|(?<=[\s,;:(]))(?:{_SUBJECT}\s*{_LEAD_VERB}|{_OPENERS}|(?<![\w\\}}]){_VARIABLE}|{_CONNECTIVE})\s*[:=：]?\s*$")
QUALIFIERS = re.compile(
    r"(?i)\b(?:up\s+to|modulo|mod|except|unless|if|assuming|suppose|approximately|approx|roughly|about|around|almost|nearly"
    r"|at\s+(?:least|most)|not|n't|never|false|wrong|incorrect|claims?|claimed|supposedly|allegedly|base|thousands?|millions?"
    r"|magnitude|absolute|sign|negative|minus|half|twice|double|triple|squared|cubed|square\s+root|reciprocal|inverse"
    r"|lower|upper|bound|estimate|guess|probably|possibly|maybe|perhaps|likely|seems?|appears?|think|believe|doubt|hope"
    r"|example|e\.g|i\.e|sike|joke|kidding|wish|would\s+like|pretend|hypothetical\w*|imagine|uncertain\w*|unsure|guess\w*"
    r"|placeholder|give\s+up|giving\s+up|gave\s+up|no\s+solution|cannot|can't|unknown|arbitrar\w*|random\w*|sure"
    r"|answer|result|solution|wild|blind|confiden\w*)\b|[?¿]")
_MARKUP = re.compile(r"\*\*|__|`|\$|\\\(|\\\)|\\\[|\\\]|^\s*(?:#+|>+|[-*+]\s)\s*", re.M)
_SENTENCE_END = re.compile(r"(?<!\bvs)(?<!\be\.g)(?<!\bi\.e)(?<!\bcf)(?<!\betc)(?<!\d)[.;!?](?=\s|$)")


def sentence_start(text: str) -> int:
    """Where the sentence that `text` ends in begins (after the last sentence end or line break)."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    return max([*ends, text.rfind("\n") + 1, 0])


# A clause that says how the answer was reached, before its statement: "Working through both cases, the answer
# is", "Since both roots are positive, x =". Any other opening ("When n is even,", "Naively,", "Most people say")
# qualifies the claim, and no list of qualifiers could be complete, so only these open a committed statement.
_JUSTIFICATION = re.compile(
    rf"(?i)^\s*(?:{_CONNECTIVE}\s*,?\s*)?(?:(?:after|by|using|combining|putting|working|solving|substituting|simplifying|"
    r"computing|evaluating|checking|counting|adding|multiplying|dividing|applying|plugging|from|with|since|because|as|given|"
    r"taking|collecting|reducing|factoring|expanding|integrating|differentiating|summing|recalling|noting)\b[^,;]{0,100},"
    r"\s*)+$")


def lead_allowed(lead: str) -> bool:
    """Only a statement's lead before the answer, opened at most by a clause that says how it was reached."""
    text = _MARKUP.sub(" ", lead).replace("*", " ")
    if LEAD_ALLOWED.match(text):
        return True
    immediate = _IMMEDIATE_LEAD.search(text)
    earlier = text[:immediate.start()] if immediate else ""
    return bool(immediate) and bool(_JUSTIFICATION.match(earlier)) and not QUALIFIERS.search(earlier)


def box_statement(line_prefix: str, content: str, line_suffix: str) -> str | None:
    """None when the box stands alone in its sentence: only an allowed lead before it, only punctuation and
    closing delimiters after it (then its content is the answer). Otherwise the sentence it is part of, as the
    answer: "-\\boxed{42}" is -42, "\\boxed{Na}Cl" is NaCl, "at least \\boxed{42}" is a bound, "\\boxed{42} is
    ruled out" is no answer at all."""
    lead = line_prefix[sentence_start(line_prefix):]
    end = next((m.start() + 1 for m in _SENTENCE_END.finditer(line_suffix)), len(line_suffix))
    rest = line_suffix[:end]
    if lead_allowed(lead) and (_CLOSING.match(rest) or _IS_THE_ANSWER.match(rest)) and not _GLUED.match(line_suffix):
        return None
    plain_lead = _MARKUP.sub(" ", lead)
    kept = _LEAD_PREFIX.match(plain_lead)
    shown = plain_lead[kept.end():] if kept else plain_lead
    return " ".join(f"{shown}{content}{rest}".split()).strip()


_TAIL_LINE_OK = re.compile(
    r"(?i)^(?:q\.?e\.?d\.?|∎|□|✓|✔|✅|done\.?|i\s+hope\s+(?:this|it|that)\s+(?:helps|is\s+correct)\W*"
    r"|this\s+is\s+the\s+final\s+answer\W*|\\end\{\w+\*?\})[.!\s]*$")


def tail_commits(tail: str) -> bool:
    """What follows the answer's sentence leaves it standing: nothing, closing delimiters, a closer ("QED",
    "I hope this helps") or a check that ends in a tick. Anything else may take it back or change it."""
    for line in tail.splitlines():
        bare = _MARKUP.sub(" ", line).strip(" .:;,)]}*_\t\u00a0")
        if bare and (not _TAIL_LINE_OK.match(bare) or "?" in bare):
            return False
    return not (RETRACTION.search(tail) or MORE_RETRACTION.search(tail))
