"""Answer grading, precision first: a rule gives a verdict only when it is certain; the rest is `undecided`
and goes to the judge (the labeler model).

1. The reference: empty or a placeholder ("...", an empty \\boxed{}) is invalid, never matched.
2. The response's final answer: its last explicit statement (`extract`); none, a
   placeholder, or a hedge between answers is never correct.
3. The comparison follows the reference's type: multiple choice, yes/no,
   asymptotic class, date or era, oxidation state, electron configuration,
   SMILES, formula, quantity with unit (pint), number or percentage, ratio,
   sequence, assignment, mathematics (fast evaluator, then math-verify), a
   code literal, and a name or phrase. Each type's rule decides what it owns
   and may say "not certain", which ends the cascade there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from fractions import Fraction

from chimera.tools.grading import chemistry, choice, complexity, dates, mathexpr, names
from chimera.tools.grading.bounds import DIRECTION, MAX_ANSWER_CHARS, clean
from chimera.tools.grading.commitment import APPROXIMATE, DECLINES, candidates, kind_of, relation_or_range, single_valued
from chimera.tools.grading.extract import Extraction, extract, is_placeholder
from chimera.tools.grading.numbers import agree, as_percent_pair, leading_number, parse_number
from chimera.tools.grading.quantities import compare as compare_quantities
from chimera.tools.grading.quantities import parse_quantity
from chimera.tools.grading.text import plain

__all__ = ["Grade", "grade", "extract_final_answer", "is_placeholder"]


@dataclass(frozen=True)
class Grade:
    correct: bool | None
    method: str  # the rule that decided, "undecided", or "judge" (set by the labeler)
    extracted: str | None
    detail: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


Verdict = tuple[bool | None, str]
Rule = Callable[[str, str, str | None], Verdict | None]

_ASSIGNMENT = re.compile(r"^([A-Za-z](?:_\{?[A-Za-z0-9]{1,3}\}?|[0-9])?|\\[a-z]{2,8}|\d[a-z])\s*=\s*([^=<>?]+)$")
_PH = re.compile(r"^pH\s*(?:=|of|is|:)?\s*(?=[\d.])")
_RATIO = re.compile(r"^\d+(?:\.\d+)?(?:\s*:\s*\d+(?:\.\d+)?)+$")
_SEQUENCE = re.compile(r"^-?\d+(?:\s+-?\d+)+$")
_OUTPUT = re.compile(r"(?i)\b(?:what\s+(?:does|will|would)\b.{0,80}\b(?:print|output|display|return|evaluate)|"
                     r"(?:program|code|script|snippet|function|command)(?:'s)?\s+output|\bis\s+printed\b|"
                     r"\boutputs?\s+of\b|\bprints?\s+what\b|\bexact\s+output\b)")
_LITERAL = re.compile(r"[!?;\"\[\]{}<>=`#|\\]")
_PYTHON_WORDS = {"True", "False", "None", "null", "nil", "true", "false"}
_YES_NO = {"yes": True, "no": False, "true": True, "false": False}
_NOUN = re.compile(r"^[A-Za-z][A-Za-z\s-]{0,30}$")
# Words after a number that change its value: "42 thousand", "42 squared", "42 percent", "42 less one".
_MAGNITUDE = re.compile(r"(?i)\b(?:hundred|thousand|million|billion|trillion|dozen|score|squared|cubed|percent|per|"
                        r"times|less|more|plus|minus|fold|halves|half|quarters?|thirds?|th|nd|rd|st|e|k|m|i|x|vs|versus|or|and|not|but|"
                        r"to|than|if|unless|maybe|possibly|of|the|a|an|factorial|prime|primes|digits?|base)\b")


def extract_final_answer(response: str) -> str | None:
    return extract(response).answer


def _strip_assignments(reference: str, response: str) -> tuple[str, str]:
    ref, got = _ASSIGNMENT.match(reference), _ASSIGNMENT.match(response)
    if ref and got and ref.group(1) == got.group(1):
        return ref.group(2).strip(), got.group(2).strip()
    if ref and not got and "," not in ref.group(2) and "=" not in response:
        return ref.group(2).strip(), response
    if got and not ref and "," not in got.group(2) and "=" not in reference:  # "O=CC" is a molecule, not O = CC
        return reference, got.group(2).strip()
    return reference, response


def _yes_no(reference: str, response: str, problem: str | None) -> Verdict | None:
    ref = _YES_NO.get(reference.strip(" .!").lower())
    match = re.match(r"(?i)^(yes|no|true|false)(?:[.,;:!](?=\s|$)|$)", response.strip())
    if ref is None or not match:
        return None
    got = _YES_NO[match.group(1).lower()]
    if got != ref:
        return False, "the other yes/no answer"
    if reference in _PYTHON_WORDS and match.group(1) != reference and reference.lower() != "yes":
        return None, "a literal in another case"
    return True, "the same yes/no answer"


def _quantities(reference: str, response: str, problem: str | None) -> Verdict | None:
    ref_q, got_q = parse_quantity(reference), parse_quantity(response)
    if ref_q and got_q:
        return compare_quantities(ref_q, got_q)
    if ref_q and parse_number(response):
        return None, "the response leaves out the unit"
    if got_q and parse_number(reference):
        return None, "the response has a unit the reference does not"
    return None


_BASED = re.compile(r"^0[xXbBoO]([0-9A-Fa-f]+)$")


def _numbers(reference: str, response: str, problem: str | None) -> Verdict | None:
    ref_n, got_n = parse_number(reference), parse_number(response)
    ref_based, got_based = _BASED.match(reference.strip()), _BASED.match(response.strip())
    if ref_n and got_n and bool(ref_based) != bool(got_based):
        digits = (ref_based or got_based).group(1).lower()  # type: ignore[union-attr]
        plain_digits = (response if ref_based else reference).strip().lower()
        if ref_n.value == got_n.value:
            return True, "the same integer, with and without its base prefix"
        if digits == plain_digits:
            return None, "the same digits in another base: the question tells which"
        return None, "a number in another base against a plain one"
    if ref_n and got_n:
        if ref_n.percent or got_n.percent:
            return as_percent_pair(ref_n, got_n), "percentage against a number"
        return agree(ref_n, got_n), f"{response} vs {reference}"
    ref_q, got_q = parse_quantity(reference), parse_quantity(response)
    if (ref_n or ref_q) and (got_n or got_q):
        return None, "not comparable as numbers"
    counted = leading_number(response)
    if ref_n and counted and _counted_noun(counted[1], problem):
        return (True, "the same count") if agree(ref_n, counted[0]) else (None, "a number with a noun")
    if (ref_n or ref_q) and counted:
        return None, "a number with words the rules do not read"
    return None


def _counted_noun(words: str, problem: str | None) -> bool:
    """"46 chromosomes" for a count of 46: the words after the number name what the problem asks to count (they
    appear in it), and none of them changes the value ("42 thousand", "42 in magnitude", "42. Double it")."""
    if not (_NOUN.match(words) and problem) or _MAGNITUDE.search(words) or len(words.split()) > 2:
        return False
    asked = {w.lower().rstrip("s") for w in re.findall(r"[A-Za-z]{3,}", problem)}
    return all(w.lower().rstrip("s") in asked for w in words.split())


def _ratio(reference: str, response: str, problem: str | None) -> Verdict | None:
    if not (_RATIO.match(reference) and _RATIO.match(response)):
        return None
    ref = [Fraction(part) for part in reference.replace(" ", "").split(":")]
    got = [Fraction(part) for part in response.replace(" ", "").split(":")]
    if len(ref) != len(got):
        return False, "a ratio of another length"
    if not ref[0] or not got[0]:
        return ref == got, "ratio"
    return [r / ref[0] for r in ref] == [g / got[0] for g in got], "ratio"


def _number_list(text: str) -> list | None:
    if text.startswith(("(", "[", "\\{", "{")) or "," not in text:
        return None
    values = [parse_number(part) for part in text.split(",")]
    return None if None in values else values


def _listed(reference: str, response: str, problem: str | None) -> Verdict | None:
    """Numbers listed without brackets (roots, say): same order agrees; the same numbers in another order
    may be a set or a pair, which only the question tells."""
    ref, got = _number_list(reference), _number_list(response)
    if ref is None or got is None:
        return None
    if len(ref) != len(got):
        return False, "a different count of numbers"
    if all(agree(a, b) is True for a, b in zip(ref, got)):
        return True, "the same numbers in the same order"
    by_value = [agree(a, b) for a, b in zip(sorted(ref, key=lambda n: n.value), sorted(got, key=lambda n: n.value))]
    if all(v is True for v in by_value):
        return None, "the same numbers in another order"
    if None not in by_value:
        return False, "different numbers"
    return None, "numbers the rules cannot pair up"


def _sequence(reference: str, response: str, problem: str | None) -> Verdict | None:
    if not (_SEQUENCE.match(reference) and _SEQUENCE.match(response)):
        return None
    return reference.split() == response.split(), "sequence of numbers"


_PAIR = re.compile(r"([A-Za-z])\s*=\s*([^,;=]+?)\s*(?:[,;]|\band\b|\bor\b|$)")


def _solutions(text: str) -> tuple[str, tuple[str, ...], str] | None:
    """`a = 2, b = 3` -> ("assign", ...); `x = 1 or x = 2` / `x \\in \\{1, 2\\}` -> ("set", ...)."""
    member = re.fullmatch(r"([A-Za-z])\s*\\in\s*\\?\{(.+?)\\?\}", text.strip())
    if member:
        return "set", tuple(sorted(v.strip() for v in member.group(2).split(","))), member.group(1)
    pairs = _PAIR.findall(text)
    if len(pairs) < 2 or _PAIR.sub("", text).strip(" ,;"):
        return None
    variables = {v for v, _ in pairs}
    if len(variables) == 1:
        return "set", tuple(sorted(value.strip() for _, value in pairs)), pairs[0][0]
    if len(variables) == len(pairs):
        return "assign", tuple(f"{v}={value.strip()}" for v, value in sorted(pairs)), ""
    return None


def _assignments(reference: str, response: str, problem: str | None) -> Verdict | None:
    ref, got = _solutions(reference), _solutions(response)
    if ref is None or got is None or ref[0] != got[0] or ref[2] != got[2]:
        return None
    if len(ref[1]) != len(got[1]):
        return False, "a different number of values"
    if ref[0] == "assign":
        ref_pairs = [item.split("=", 1) for item in ref[1]]
        got_pairs = [item.split("=", 1) for item in got[1]]
        if [k for k, _ in ref_pairs] != [k for k, _ in got_pairs]:
            return None, "different variables"
        verdicts = [_value(a, b) for (_, a), (_, b) in zip(ref_pairs, got_pairs)]
    else:
        ref_values = [parse_number(v) for v in ref[1]]
        got_values = [parse_number(v) for v in got[1]]
        if None in ref_values or None in got_values:
            return None, "values the rules do not read"
        ref_set = {n.value for n in ref_values if n}
        got_set = {n.value for n in got_values if n}
        return ref_set == got_set, "the same solution set" if ref_set == got_set else "another solution set"
    if all(v is True for v in verdicts):
        return True, "every variable agrees"
    if any(v is False for v in verdicts):
        return False, "a variable disagrees"
    return None, "a value the rules cannot decide"


def _value(reference: str, response: str) -> bool | None:
    ref_n, got_n = parse_number(reference), parse_number(response)
    if ref_n and got_n:
        return agree(ref_n, got_n)
    result = mathexpr.compare(reference, response)
    return result[0] if result else None


def _literal(reference: str, response: str, problem: str | None) -> Verdict | None:
    output = bool(problem and _OUTPUT.search(problem))
    literal = bool(_LITERAL.search(reference)) or reference in _PYTHON_WORDS or \
        (reference.isupper() and len(reference) > 3 and reference.isalpha())
    if output:
        return (reference.strip() == response.strip()), "program output, compared exactly"
    if literal and names.fold(reference) == names.fold(response):
        return None, "differs only in case, spacing or punctuation; literal text may need it exact"
    return None


_TRANSCRIPTION = re.compile(r"^([/\[])([^\d\s,/\[\]]+)([/\]])$")


_MODIFIER_LETTERS = {"h": "ʰ", "w": "ʷ", "j": "ʲ", "n": "ⁿ", "l": "ˡ", "ɣ": "ˠ", "ʕ": "ˤ", "ʔ": "ˀ"}


def _modifiers(text: str) -> str:
    """A superscript written as ^h, ^{h} or \\textsuperscript{h} is the modifier letter ʰ."""
    return re.sub(r"(?:\^\{?|\\textsuperscript\{)(\S)\}?", lambda m: _MODIFIER_LETTERS.get(m.group(1), m.group(0)), text)


def _transcription(reference: str, response: str, problem: str | None) -> Verdict | None:
    """Phonemic /.../ and phonetic [...] transcriptions: symbol for symbol; /θ/ and [θ] are not the same claim."""
    ref, got = _TRANSCRIPTION.match(reference.strip()), _TRANSCRIPTION.match(response.strip())
    if not ref and not got:
        return None
    if not (ref and got) or ref.group(1) != got.group(1):
        return None, "transcriptions in different brackets, or one without"
    unstressed = lambda m: _modifiers(re.sub("[ˈˌ.]", "", m.group(2)))  # noqa: E731
    return unstressed(ref) == unstressed(got), "transcription, symbol for symbol"


def _names(reference: str, response: str, problem: str | None) -> Verdict | None:
    if not re.search(r"[A-Za-zÀ-ɏ]", reference):
        return None
    return names.compare(reference, response)


RULES: list[tuple[str, Rule]] = [
    ("choice", choice.compare),
    ("yes-no", _yes_no),
    ("big-o", lambda r, g, p: complexity.compare(r, g)),
    ("date", lambda r, g, p: dates.compare(r, g)),
    ("oxidation-state", lambda r, g, p: chemistry.compare_oxidation(r, g)),
    ("electron-configuration", lambda r, g, p: chemistry.compare_configuration(r, g)),
    ("hybridization", lambda r, g, p: chemistry.compare_hybridization(r, g)),
    ("smiles", lambda r, g, p: chemistry.compare_smiles(r, g)),
    ("formula", lambda r, g, p: chemistry.compare_formulas(r, g)),
    ("transcription", _transcription),
    ("ratio", _ratio),
    ("sequence", _sequence),
    ("list", _listed),
    ("quantity", _quantities),
    ("number", _numbers),
    ("assignment", _assignments),
    ("math", lambda r, g, p: mathexpr.compare(r, g)),
    ("literal", _literal),
    ("name", _names),
]


def decide(reference: str, response: str, problem: str | None = None) -> tuple[bool | None, str, str]:
    """(correct, method, detail) for two plain answers; correct None means a judge must decide."""
    reference, response = _strip_assignments(reference, response)
    reference, response = _PH.sub("", reference), _PH.sub("", response)
    if reference == response:
        return True, "exact", "equal as written"
    for method, rule in RULES:
        try:
            result = rule(reference, response, problem)
        except Exception as error:  # noqa: BLE001 - a rule that cannot read an odd input leaves it undecided
            return None, "undecided", f"the {method} rule could not read it ({type(error).__name__})"
        if result is not None:
            return result[0], method if result[0] is not None else "undecided", result[1]
    return None, "undecided", "no rule applies; needs a judge"


_UNORDERED = re.compile(r"(?i)\b(?:all|roots?|solutions?|zeros?|values|set)\b")


def _items(text: str) -> tuple[list[str], bool]:
    """The values of a many-valued answer ("\\{2, 5\\}", "x = 2 or x = 5", "2 and 5"), and whether they
    were written as a set."""
    braced = bool(re.fullmatch(r"\\?\{.*\\?\}", text.strip()))
    inner = re.sub(r"^\\?\{|\\?\}$", "", text.strip()) if braced else text
    parts = [re.sub(r"^[A-Za-z](?:_\{?\d+\}?)?\s*=\s*", "", part).strip() for part in candidates(inner).parts]
    return [part for part in parts if part], braced


def _as_set(reference: str, answer: str, problem: str | None) -> Grade | None:
    """A many-valued reference (all roots, a set) against the values the answer lists, in any joiner."""
    ref, ref_braced = _items(reference)
    got, got_braced = _items(answer)
    if len(ref) < 2 or len(got) < 1:
        return None
    pairs = [[decide(r, g, problem)[0] for r in ref] for g in got]
    if any(all(v is False for v in row) for row in pairs):
        return Grade(False, "set", answer, "a value that is none of the reference's")
    if len(got) != len(ref):
        if all(any(v is True for v in row) for row in pairs):
            return Grade(False, "set", answer, f"{len(got)} values where the reference has {len(ref)}")
        return None
    if all(pairs[i][i] is True for i in range(len(got))):
        return Grade(True, "set", answer, "the same values in the same order")
    unordered = ref_braced or got_braced or bool(problem and _UNORDERED.search(problem))
    used: set[int] = set()
    for row in pairs:
        match = next((j for j, v in enumerate(row) if v is True and j not in used), None)
        if match is None:
            return None
        used.add(match)
    if unordered:
        return Grade(True, "set", answer, "the same values as a set")
    return None


_ODDS = re.compile(r"(?i)\b(?:chance|probab\w*|likely|unlikely|odds|percent|sometimes|depends|depending|partly|partially)"
                   r"\b|%")


def _uncommitted(reference: str, answer: str, problem: str | None) -> Grade | None:
    """Against a single-valued reference: several candidates, a relation or a range is a hedge, never a hit."""
    if not single_valued(reference):
        return None
    parts = candidates(answer)
    if parts.joiner == "list" and dates.parse_when(answer) is not None:
        parts = candidates("")  # "September 2, 1945" is one date, not two candidates
    if parts.joiner is not None:
        verdicts = [decide(reference, part, problem)[0] for part in parts.parts]
        if len(parts.parts) >= 2 and all(v is True for v in verdicts):
            return None  # the same answer said twice ("0.5, i.e. 1/2")
        if True in verdicts and None in verdicts and parts.joiner == "list":
            return Grade(None, "undecided", answer, "the answer with words a rule cannot read beside it")
        named_twice = True in verdicts and (False in verdicts or parts.joiner == "and")
        if parts.joiner == "or" or named_twice or len(parts.parts) == 1:
            return Grade(False, "hedge", answer, f"{len(parts.parts)} candidates for one value")
    if APPROXIMATE.search(answer) and not APPROXIMATE.search(reference):
        return Grade(None, "undecided", answer, "an approximation of a value stated exactly; a judge decides")
    assignment = re.fullmatch(r"\s*[A-Za-z](?:_\{?\w+\}?)?(?:\([a-z]\))?\s*=\s*[^=]+", answer)  # x = 5, p(x) = ...
    if "=" in answer and "=" not in reference and mathexpr.looks_math(answer) and not assignment:
        return Grade(None, "undecided", answer, "an equation where the reference is a value; a judge decides")
    if kind_of(reference) == "yesno" and kind_of(answer.split(",")[0].split(".")[0].strip()) == "yesno" \
            and re.search(r"(?i)\b(?:not|n't|never|although|though|but|however|except|unless|wrong|false|no)\b",
                          re.sub(r"(?i)^\W*(?:yes|no|true|false)\b", "", answer)):
        return Grade(None, "undecided", answer, "a yes or no qualified by what follows; a judge decides")
    if kind_of(reference) == "yesno" and (len({w.lower() in ("yes", "true") for w in re.findall(
            r"(?i)(?<![a-z])(?:yes|no|true|false)(?![a-z])", answer)}) > 1 or _ODDS.search(answer)):
        return Grade(False, "hedge", answer, "both yes and no, or a yes with odds")
    if DECLINES.search(answer) and not DECLINES.search(reference):
        return Grade(False, "declined", answer, "the response declines to answer; the reference does not")
    if mathexpr.shape(reference) == "expression" and relation_or_range(answer, reference):
        return Grade(False, "hedge", answer, "a relation or a range, where the reference is one value")
    if mathexpr.shape(answer) in ("set", "interval") and mathexpr.shape(reference) == "expression" \
            and len(candidates(answer.strip("\\{}()[] ")).parts) >= 2:
        return Grade(False, "hedge", answer, "a set or an interval, where the reference is one value")
    return None


def grade(reference: str, response: str, problem: str | None = None) -> Grade:
    """Grade `response` (a whole solution) against `reference`; `problem`, when given, names the options of a
    multiple-choice question and tells program output from prose. Total and bounded: any input gets a Grade
    (never an exception) within a second, on any thread."""
    try:
        return _grade(clean(_text(reference)), _text(response), clean(_text(problem)) or None)  # extract cleans the response
    except Exception as error:  # noqa: BLE001 - a reward must never stop a trainer or a run
        return Grade(None, "undecided", None, f"the grader could not read this input ({type(error).__name__})")


def _text(value: object) -> str:
    return "" if value is None else value if isinstance(value, str) else str(value)


def _other_option(problem: str | None, found: Extraction) -> str | None:
    """On a multiple-choice problem: a different option named right after the answer, by letter or by its text."""
    choices = choice.options(problem)
    if not choices or not found.answer:
        return None
    mine = choice.letter(plain(found.answer), choices)
    after = plain(found.after.split("\n", 1)[0]) if found.after.strip() else ""
    if mine is None or not after:
        return None
    for letter in re.findall(r"(?:\boption\s+|\bchoice\s+|\()([A-J])\b\)?", after):
        if letter != mine:
            return letter
    for letter, text in choices.items():
        if letter != mine and len(text) >= 2 and re.search(r"(?<!\w)" + re.escape(names.fold(text)) + r"(?!\w)",
                                                          names.fold(after)):
            return letter
    return None


def _grade(reference: str, response: str, problem: str | None) -> Grade:
    ref = plain(reference)
    if is_placeholder(ref):
        return Grade(False, "invalid-reference", None, "the reference answer is empty or a placeholder")
    if len(ref) > MAX_ANSWER_CHARS:
        return Grade(None, "undecided", None, "the reference is too long for the rules")
    found = extract(response)
    if found.status == "empty":
        return Grade(False, "empty", None, "empty response")
    if found.status == "none" or found.answer is None:
        return Grade(None, "undecided", None, "no final answer could be extracted")
    if found.status == "placeholder":
        return Grade(False, "placeholder", found.answer, "the final answer is a placeholder")
    if found.status == "hedge":
        return Grade(False, "hedge", found.answer, "the response does not commit to one answer")
    if found.status == "unsettled":
        return Grade(None, "undecided", found.answer, "what follows the answer may change it; a judge decides")
    named = _other_option(problem, found)
    if named:
        return Grade(False, "hedge", found.answer, f"another option is named beside the answer ({named})")
    answer = found.answer
    if found.group:
        if single_valued(ref):
            return Grade(False, "hedge", ", ".join(found.group), "several different boxed answers for one value")
        answer = ", ".join(found.group)  # the parts of a many-valued reference
    got = plain(answer)
    if DIRECTION.search(answer):
        return Grade(None, "undecided", found.answer, "direction controls change how the answer reads")
    if APPROXIMATE.search(answer) and not APPROXIMATE.search(reference):  # before plain() turns "~" into a space
        return Grade(None, "undecided", found.answer, "an approximation of a value stated exactly; a judge decides")
    if len(got) > MAX_ANSWER_CHARS:
        return Grade(None, "undecided", found.answer, "the answer is too long for the rules")
    if got == ref:
        return Grade(True, "exact", found.answer, "equal as written")
    hedge = _uncommitted(ref, got, problem)
    if hedge is not None:
        return hedge
    correct, method, detail = decide(ref, got, problem)
    if correct is None and not single_valued(ref):
        as_set = _as_set(ref, got, problem)
        if as_set is not None:
            return as_set
    return Grade(correct, method, found.answer, detail)
