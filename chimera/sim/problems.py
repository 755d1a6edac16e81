"""Problem kinds the simulator drafts, each with a solver that recomputes the answer from the text.

A kind writes a problem from a random source and states its exact answer; its
`solve` reads the numbers back out of the statement, so a critic or a solver
in the simulator checks a problem by recomputing it, never by looking it up.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from chimera.sim.typed import TYPED_KINDS, TypedKind

Number = int | Fraction


def fmt(value: Number | str) -> str:
    if isinstance(value, Fraction):
        return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
    return str(value)


@dataclass(frozen=True)
class Kind:
    name: str
    families: tuple[str, ...]
    make: Callable[[random.Random], str]
    pattern: re.Pattern[str]
    compute: Callable[[re.Match[str]], Number | str]

    def solve(self, text: str) -> str | None:
        match = self.pattern.search(text)
        return fmt(self.compute(match)) if match else None


def _kind(name, families, make, pattern, compute) -> Kind:
    return Kind(name, tuple(families), make, re.compile(pattern, re.S), compute)


WORDS = ("allele", "biome", "codon", "enzyme", "genome", "ligand", "mitosis", "neuron", "operon",
         "plasmid", "ribosome", "synapse", "taxon", "vector", "zygote", "sonnet", "elegy", "ballad",
         "villanelle", "ode", "haiku", "epic", "satire", "fable", "idyll")

KINDS: list[Kind] = [
    _kind(
        "binomial", ["math"],
        lambda r: (f"A committee of {r.randint(3, 9)} members is to be chosen from {r.randint(12, 40)} "
                   "distinct candidates, with no roles inside the committee. In how many ways can the committee be chosen?"),
        r"committee of (\d+) members is to be chosen from (\d+) distinct",
        lambda m: math.comb(int(m[2]), int(m[1])),
    ),
    _kind(
        "linear", ["math"],
        lambda r: (f"Solve for the real number x: {r.randint(2, 19)}x + {r.randint(-50, 50)} = {r.randint(-90, 90)}. "
                   "Give x as a reduced fraction or an integer."),
        r"x: (\d+)x \+ (-?\d+) = (-?\d+)",
        lambda m: Fraction(int(m[3]) - int(m[2]), int(m[1])),
    ),
    _kind(
        "modpow", ["math", "computer"],
        lambda r: (f"Compute the remainder when ${r.randint(2, 97)}^{{{r.randint(20, 400)}}}$ is divided by "
                   f"{r.choice([7, 11, 13, 17, 19, 23, 29, 31, 1000, 997])}."),
        r"remainder when \$?(\d+)\^\{?(\d+)\}?\$? is divided by (\d+)",
        lambda m: pow(int(m[1]), int(m[2]), int(m[3])),
    ),
    _kind(
        "roots", ["math"],
        lambda r: (f"The roots of $x^2 - {r.randint(2, 30)}x + {r.randint(1, 60)} = 0$ are $r$ and $s$ (possibly "
                   "complex). Compute $r^2 + s^2$."),
        r"x\^2 - (\d+)x \+ (\d+) = 0",
        lambda m: int(m[1]) ** 2 - 2 * int(m[2]),
    ),
    _kind(
        "speed", ["physics"],
        lambda r: (lambda v, j: f"A particle covers {5 * v * j} metres in {18 * j} seconds at constant speed. "
                   "What is its speed in kilometres per hour?")(r.randint(3, 120), r.randint(1, 9)),
        r"covers (\d+) metres in (\d+) seconds",
        lambda m: Fraction(int(m[1]) * 18, int(m[2]) * 5),
    ),
    _kind(
        "kinetic", ["physics"],
        lambda r: (f"A body of mass {r.randint(1, 40)} kg moves at {r.randint(1, 30)} m/s. "
                   "What is its kinetic energy in joules?"),
        r"mass (\d+) kg moves at (\d+) m/s",
        lambda m: Fraction(int(m[1]) * int(m[2]) ** 2, 2),
    ),
    _kind(
        "moles", ["chemistry"],
        lambda r: (f"Taking the molar mass of water as 18 g/mol, how many moles of water molecules are in "
                   f"{r.randint(2, 400)} g of water? Give an exact fraction."),
        r"molar mass of water as (\d+) g/mol, how many moles of water molecules are in (\d+) g of water",
        lambda m: Fraction(int(m[2]), int(m[1])),
    ),
    _kind(
        "dilution", ["chemistry"],
        lambda r: (f"A {r.randint(1, 12)} M stock solution of volume {r.randint(5, 50)} mL is diluted with water "
                   f"to a total volume of {r.randint(60, 500)} mL. What is the new molarity, in M, as an exact fraction?"),
        r"A (\d+) M stock solution of volume (\d+) mL is diluted with water to a total volume of (\d+) mL",
        lambda m: Fraction(int(m[1]) * int(m[2]), int(m[3])),
    ),
    _kind(
        "hardy", ["biology"],
        lambda r: (f"In a large randomly mating population in Hardy-Weinberg equilibrium, the recessive allele has "
                   f"frequency {r.randint(1, 9)}/10. What fraction of the population is heterozygous?"),
        r"recessive allele has frequency (\d+)/10",
        lambda m: 2 * Fraction(int(m[1]), 10) * (1 - Fraction(int(m[1]), 10)),
    ),
    _kind(
        "alphabetical", ["biology", "literature", "other"],
        lambda r: (lambda ws, k: f"Sort the words {', '.join(ws)} in dictionary order. Which word is in position {k}?")(
            r.sample(WORDS, 5), r.randint(1, 5)),
        r"Sort the words ([a-z, ]+) in dictionary order\. Which word is in position (\d+)",
        lambda m: sorted(w.strip() for w in m[1].split(","))[int(m[2]) - 1],
    ),
    _kind(
        "edges", ["computer", "math"],
        lambda r: f"How many edges does the complete graph on {r.randint(5, 200)} vertices have?",
        r"complete graph on (\d+) vertices",
        lambda m: int(m[1]) * (int(m[1]) - 1) // 2,
    ),
    _kind(
        "binary", ["computer"],
        lambda r: f"What is the decimal value of the binary numeral {bin(r.randint(64, 2**20))[2:]}?",
        r"binary numeral ([01]+)",
        lambda m: int(m[1], 2),
    ),
]

FAMILY_KEYWORDS = {
    "math": ("math", "algebra", "geometry", "number", "combinator", "calculus", "statistic", "probab"),
    "physics": ("physic", "mechanic", "astro", "optic", "thermo"),
    "chemistry": ("chem",),
    "biology": ("bio", "genet", "ecolog", "medic"),
    "computer": ("computer", "comput", "algorithm", "software", "informat"),
    "history": ("histor",),
    "linguistics": ("linguist", "language", "phonolog", "syntax"),
    "literature": ("literat", "poet", "philos"),
}


def family_of(subject: str) -> str:
    lowered = subject.lower()
    for family, keys in FAMILY_KEYWORDS.items():
        if any(key in lowered for key in keys):
            return family
    return "other"


AnyKind = Kind | TypedKind


def kinds_for(subject: str) -> list[AnyKind]:
    family = family_of(subject)
    every: list[AnyKind] = [*KINDS, *TYPED_KINDS]
    chosen = [k for k in every if family in k.families]
    return chosen or list(KINDS)


def identify(text: str) -> tuple[AnyKind, str] | None:
    """The kind a statement belongs to and its true answer, or None when the statement cannot be solved."""
    typed_first: list[AnyKind] = [*TYPED_KINDS, *KINDS]
    for kind in typed_first:
        answer = kind.solve(text)
        if answer is not None:
            return kind, answer
    return None


def _typed_fact(text: str):
    return next(((kind, fact) for kind in TYPED_KINDS if (fact := kind.fact(text)) is not None), None)


def equivalent_form(text: str, answer: str, rng: random.Random) -> str:
    """The right answer as a model might write it: typed answers in another unit, notation or wording."""
    found = _typed_fact(text)
    return rng.choice((found[1].answer, *found[1].equivalents)) if found else answer


def near_miss(text: str, answer: str, rng: random.Random) -> str:
    """A wrong answer close to the right one: the wrong unit, the neighbouring year, the other isomer."""
    found = _typed_fact(text)
    return rng.choice(found[1].near_misses) if found else wrong_answer(answer, rng)


def accepts(text: str, answer: str) -> bool | None:
    """Ground truth for tests: is `answer` right for the problem `text`? None when the problem is not solvable."""
    for kind in TYPED_KINDS:
        verdict = kind.accepts(text, answer)
        if verdict is not None:
            return verdict
    solved = identify(text)
    if solved is None:
        return None
    try:
        return Fraction(answer.strip()) == Fraction(solved[1])
    except (ValueError, ZeroDivisionError):
        return answer.strip().lower() == solved[1].lower()


PEOPLE = ("Ada", "Bram", "Chiara", "Dmitri", "Elif", "Farid", "Greta", "Hiro", "Ines", "Jonas", "Kaveh", "Lena",
          "Mateo", "Nadia", "Oskar", "Priya", "Quinn", "Rosa", "Sami", "Tomas", "Uma", "Viktor", "Wen", "Yusuf",
          "Zora", "Amara", "Bruno", "Cleo", "Dario", "Esme")
ROLES = ("a first-year student", "a retired engineer", "a ship's navigator", "a museum guide", "a lab technician",
         "a chess coach", "a beekeeper", "a patent clerk", "a radio amateur", "a night-shift nurse",
         "a glassblower", "a cartographer", "a bookbinder", "a tram driver", "a violin maker",
         "a weather observer", "a surveyor", "a librarian", "a brewer", "a park ranger")
PLACES = ("at the harbour office", "in a mountain hut", "on a night train", "at a village fair", "in the archive",
          "at a lighthouse", "in a greenhouse", "on a research vessel", "at the observatory", "in a bakery",
          "at a chess club", "in a print shop", "at the river lock", "in a field camp", "at the town hall",
          "in a clock workshop", "on a ferry deck", "at a weather station", "in a quiet library",
          "at a vineyard", "in a seed bank", "at a toll bridge", "in a pottery studio", "at a border post",
          "in a sawmill", "at a ski lodge", "in a botanical garden", "at a tram depot", "in a salt mine",
          "at a fishing pier")
FRAMES = ("puts this question to a friend:", "writes this on a card:", "sets this puzzle:",
          "asks the group the following:", "leaves this note for a colleague:", "poses this exercise:",
          "reads this question aloud:", "jots down this problem:", "sends this question by letter:",
          "challenges a visitor with this:")


def with_setting(text: str, rng: random.Random) -> str:
    """The statement after a sentence that sets a scene (who asks it, where, how), as drafts for different
    topics and slots differ in wording and objects. The sentence holds no digit, so the statement's first
    number is still the problem's own (see `make_ill_posed`), and every kind still reads its problem back."""
    return f"{rng.choice(PEOPLE)}, {rng.choice(ROLES)} {rng.choice(PLACES)}, {rng.choice(FRAMES)} {text}"


def make_ill_posed(text: str) -> str:
    """Remove the first quantity, so the statement no longer determines its answer."""
    return re.sub(r"(?<![\w.^])\d+(?![\w.])", "a certain number of", text, count=1)


def wrong_answer(answer: str, rng: random.Random) -> str:
    """A plausible but wrong answer: off by a small amount, or another word."""
    try:
        value = Fraction(answer)
    except ValueError:
        return rng.choice([w for w in WORDS if w != answer])
    delta = rng.choice([Fraction(1), Fraction(-1), Fraction(2), Fraction(1, 2)])
    return fmt(value + delta if value + delta != value else value + 1)


TOPIC_AREAS = {
    "math": ["enumerative combinatorics", "diophantine equations", "modular arithmetic", "polynomial roots",
             "graph theory", "linear algebra", "inequalities", "recurrences", "generating functions",
             "probability", "analytic number theory", "group theory", "real analysis", "complex numbers"],
    "history": ["medieval europe", "the french revolution", "ancient rome", "early modern states", "historiography"],
    "linguistics": ["phonology", "morphology", "syntax", "typology", "historical linguistics", "phonetics"],
    "physics": ["kinematics", "rigid-body dynamics", "energy conservation", "thermodynamics", "optics",
                "electrostatics", "special relativity", "quantum tunnelling", "fluid statics", "oscillations"],
    "chemistry": ["stoichiometry", "solution chemistry", "chemical equilibrium", "acid-base titration",
                  "reaction kinetics", "electrochemistry", "thermochemistry", "crystal field theory"],
    "biology": ["population genetics", "enzyme kinetics", "cell signalling", "phylogenetics", "ecology",
                "molecular evolution", "gene regulation", "neurophysiology"],
    "computer": ["graph algorithms", "number representation", "complexity theory", "automata",
                 "data structures", "cryptography", "dynamic programming", "information theory"],
    "literature": ["poetic forms", "narratology", "prosody", "rhetoric", "textual criticism", "genre theory"],
    "other": ["quantitative reasoning", "formal logic", "estimation", "classification", "measurement"],
}
TOPIC_ANGLES = ["extremal cases in", "invariants in", "counting arguments in", "limiting behaviour in",
                "symmetry in", "constructions in", "estimates in", "exact computation in",
                "boundary conditions in", "classical results in", "parametrized families in", "inverse problems in",
                "stability questions in", "optimization problems in", "asymptotic analysis in",
                "discrete models in", "conservation laws in", "uniqueness results in", "approximation methods in",
                "worked examples in", "historical problems in", "algorithmic aspects in", "probabilistic methods in",
                "geometric views of", "dimensional analysis in", "degenerate cases in", "recursive structure in",
                "computational checks in", "qualitative behaviour in", "design problems in"]


def subfield_names(subject: str, count: int, existing: set[str]) -> list[str]:
    """`count` subfields of a subject not in `existing` (lower-cased); numbered variants past the known areas."""
    areas = [a for a in TOPIC_AREAS[family_of(subject)] if a.lower() not in existing]
    serial = 2
    while len(areas) < count:
        areas += [f"{a} {serial}" for a in TOPIC_AREAS[family_of(subject)] if f"{a} {serial}".lower() not in existing]
        serial += 1
    return [a.capitalize() for a in areas[:count]]


def topic_names(subfield: str, rng: random.Random, count: int, existing: set[str],
                near_duplicate_rate: float = 0.0) -> list[str]:
    """`count` topic names in a subfield, none in `existing` (lower-cased).

    With `near_duplicate_rate`, some names are rewordings of names already given
    ("X in Y" -> "X within Y"), as a real expander sometimes writes.
    """
    area = subfield.lower()
    pool = [f"{angle.capitalize()} {area}" for angle in TOPIC_ANGLES]
    rng.shuffle(pool)
    fresh = [name for name in pool if name.lower() not in existing]
    names: list[str] = []
    serial = 2
    while len(names) < count:
        if names and rng.random() < near_duplicate_rate:
            variant = rng.choice(names).replace(" in ", " within ", 1).replace(" of ", " regarding ", 1)
            if variant.lower() not in existing and variant not in names:
                names.append(variant)
                continue
        if fresh:
            names.append(fresh.pop(0))
        else:  # the pool is finite; further names are numbered variants
            fresh = [f"{name} ({serial})" for name in pool if f"{name} ({serial})".lower() not in existing]
            serial += 1
    return names
