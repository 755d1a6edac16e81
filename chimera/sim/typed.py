"""Problems whose answers are not plain numbers: quantities with units, formulas, SMILES, oxidation states,
years and eras, names, complexity classes, word orders, multiple choice.

Each kind knows its answer's equivalent forms (another unit, a synonym, another
notation) and its near misses (right digits in a wrong unit, the neighbouring
year, the other isomer), so the simulator's critics and solver answer the way
real models do, and `accepts` is the ground truth a test can read.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from chimera.tools.grading.names import fold


@dataclass(frozen=True)
class Fact:
    question: str
    answer: str
    equivalents: tuple[str, ...]
    near_misses: tuple[str, ...]


@dataclass(frozen=True)
class TypedKind:
    """A table of questions with typed answers; problems name one question, sometimes with numbers in it."""

    name: str
    families: tuple[str, ...]
    facts: tuple[Fact, ...]

    def make(self, rng: random.Random) -> str:
        return rng.choice(self.facts).question

    def fact(self, text: str) -> Fact | None:
        for fact in self.facts:
            if fact.question in text:
                return fact
        return None

    def solve(self, text: str) -> str | None:
        fact = self.fact(text)
        return fact.answer if fact else None

    def accepts(self, text: str, answer: str) -> bool | None:
        """Ground truth: is `answer` one of the right forms of the answer to `text`? None if `text` is not ours."""
        fact = self.fact(text)
        if fact is None:
            return None
        return any(_same_form(answer, form) for form in (fact.answer, *fact.equivalents))


def _same_form(a: str, b: str) -> bool:
    if " ".join(a.split()) == " ".join(b.split()):
        return True
    words_only = all(re.fullmatch(r"[^\W\d_]+(?:[\s.'-]+[^\W\d_]+)*\.?", s.strip()) for s in (a, b))
    return words_only and fold(a) == fold(b)  # names fold case and accents; formulas and output do not


def _speed_facts() -> tuple[Fact, ...]:
    facts = []
    for kmh in range(36, 360, 18):
        ms = kmh * 5 // 18
        facts.append(Fact(f"A train runs at a steady {kmh} km/h. What is its speed in metres per second?",
                          f"{ms} m/s", (f"{kmh} km/h", f"{ms}\\ \\text{{m/s}}", f"{ms * 100} cm/s"),
                          (f"{ms} km/h", f"{ms} m/s^2", f"{ms + 1} m/s")))
    return tuple(facts)


def _energy_facts() -> tuple[Fact, ...]:
    facts = []
    for kj in range(2, 40, 3):
        facts.append(Fact(f"A heater delivers {kj} kJ of heat to a sample. How much heat is that in joules?",
                          f"{kj * 1000} J", (f"{kj} kJ", f"{kj}\\ \\text{{kJ}}", f"{kj * 1000}\\,\\mathrm{{J}}"),
                          (f"{kj * 1000} W", f"{kj} J", f"{kj * 1000} N")))
    return tuple(facts)


TYPED_KINDS: list[TypedKind] = [
    TypedKind("unit-speed", ("physics",), _speed_facts()),
    TypedKind("unit-energy", ("physics", "chemistry"), _energy_facts()),
    TypedKind("formula", ("chemistry",), (
        Fact("What is the chemical formula of sulfuric acid?", "H2SO4", ("H_2SO_4", "\\text{H}_2\\text{SO}_4"),
             ("H2SO3", "H2S")),
        Fact("What is the chemical formula of glucose?", "C6H12O6", ("C_6H_{12}O_6",), ("C6H12O5", "C12H22O11")),
        Fact("What is the formula of the ammonium ion?", "NH4+", ("NH_4^+", "NH4^+"), ("NH3", "NH4^{2+}")),
        Fact("What is the formula of the ferric ion?", "Fe^{3+}", ("Fe3+",), ("Fe^{2+}", "Fe^{3-}")),
    )),
    TypedKind("smiles", ("chemistry",), (
        Fact("Give a SMILES string for ethanol.", "CCO", ("OCC", "C(C)O"), ("CCCO", "COC")),
        Fact("Give a SMILES string for benzene.", "c1ccccc1", ("C1=CC=CC=C1",), ("C1CCCCC1", "C1=CCCCC1")),
        Fact("Give a SMILES string for acetic acid.", "CC(=O)O", ("OC(C)=O", "CC(O)=O"), ("CC(=O)OC", "CC=O")),
    )),
    TypedKind("oxidation", ("chemistry",), (
        Fact("What is the oxidation state of iron in Fe2O3?", "+3", ("III", "+III"), ("+2", "II")),
        Fact("What is the oxidation state of manganese in KMnO4?", "+7", ("VII", "+VII"), ("+6", "VI")),
    )),
    TypedKind("molarity", ("chemistry", "biology"), (
        Fact("A buffer is 250 mM in NaCl. What is this concentration in mol/L?", "0.25 M",
             ("250 mM", "0.250 mol/L"), ("0.25 mM", "2.5 M")),
        Fact("A solution is 0.040 M in glucose. What is this concentration in millimolar?", "40 mM",
             ("0.040 M", "40 mmol/L"), ("40 M", "4 mM")),
    )),
    TypedKind("year", ("history",), (
        Fact("In which year did the Battle of Hastings take place?", "1066", ("14 October 1066", "AD 1066"),
             ("1067", "1066 BC")),
        Fact("In which year did the storming of the Bastille take place?", "1789", ("14 July 1789", "1789 CE"),
             ("1788", "July 14, 1799")),
        Fact("In which year was Julius Caesar assassinated?", "44 BC", ("44 BCE", "44 B.C."), ("44 AD", "43 BC")),
        Fact("In which year did the Western Roman Empire conventionally end?", "476", ("476 AD", "AD 476", "476 CE"),
             ("476 BC", "1476")),
        Fact("In which century BC did Socrates die?", "4th century BC", ("4th century BCE",),
             ("4th century AD", "5th century BC")),
    )),
    TypedKind("person", ("history", "literature"), (
        Fact("Who wrote the novel Pride and Prejudice?", "Jane Austen", ("jane austen", "Austen", "J. Austen"),
             ("Charlotte Brontë", "Emily Brontë")),
        Fact("Who wrote the novel One Hundred Years of Solitude?", "Gabriel García Márquez",
             ("Gabriel Garcia Marquez", "García Márquez"), ("Mario Vargas Llosa", "Julio Cortázar")),
        Fact("Which French king was known as the Sun King?", "Louis XIV", ("louis xiv", "Louis the Fourteenth"),
             ("Louis XVI", "Louis XV")),
        Fact("Who wrote the epic poem Paradise Lost?", "John Milton", ("Milton", "john milton"),
             ("John Donne", "William Blake")),
    )),
    TypedKind("literary-term", ("literature",), (
        Fact("What is the metre of a line of five iambs called?", "iambic pentameter",
             ("Iambic pentameter", "iambic pentameter (five iambs)"), ("iambic tetrameter", "trochaic pentameter")),
        Fact("A poem of fourteen lines in iambic pentameter with a fixed rhyme scheme is called what?", "sonnet",
             ("a sonnet", "Sonnet"), ("villanelle", "ode")),
    )),
    TypedKind("complexity", ("computer",), (
        Fact("What is the worst-case time complexity of merge sort on n items?", "O(n \\log n)",
             ("O(n log_2 n)", "O(\\log n \\cdot n)", "O(2n \\log n + n)"), ("O(n^2)", "O(\\log n)")),
        Fact("What is the worst-case time complexity of binary search on n sorted items?", "O(\\log n)",
             ("O(\\log_2 n)", "O(3\\log n + 1)"), ("O(n)", "O(\\log \\log n)")),
        Fact("What is the time complexity of breadth-first search on a graph with V vertices and E edges?",
             "O(V + E)", ("O(E + V)",), ("O(VE)", "O(V^2)")),
    )),
    TypedKind("program-output", ("computer",), (
        Fact("What does the following Python program print?\n\nprint('Hi' * 2 + '!')", "HiHi!", ("HiHi!",),
             ("hihi!", "Hi Hi!")),
        Fact("What does the following Python program print?\n\nprint(sorted([3, 1, 2]))", "[1, 2, 3]",
             ("[1, 2, 3]",), ("[3, 2, 1]", "[1, 2]")),
    )),
    TypedKind("word-order", ("linguistics",), (
        Fact("What is the basic constituent order of Japanese main clauses?", "SOV", ("subject-object-verb", "S-O-V"),
             ("SVO", "OSV")),
        Fact("What is the basic constituent order of Welsh main clauses?", "VSO", ("verb-subject-object",),
             ("SVO", "VOS")),
        Fact("How many morphemes does the English word 'unhappiness' contain?", "3", ("three", "3 morphemes"),
             ("2", "4")),
        Fact("Which IPA symbol stands for the voiceless dental fricative?", "/θ/", ("θ", "[θ]"), ("/ð/", "/f/")),
    )),
    TypedKind("choice", ("biology", "linguistics"), (
        Fact("Which organelle is the main site of ATP synthesis?\n(A) Nucleus\n(B) Golgi apparatus\n"
             "(C) Mitochondrion\n(D) Lysosome", "C", ("Mitochondrion", "(C)", "C) Mitochondrion"), ("B", "(D)", "Nucleus")),
        Fact("Which of these languages is a language isolate?\n(A) Basque\n(B) Spanish\n(C) Catalan\n(D) Portuguese",
             "A", ("Basque", "(A)"), ("B", "Catalan")),
        Fact("In a cross of two heterozygotes for one completely dominant gene, what is the expected phenotype "
             "ratio, dominant to recessive?", "3:1", ("3 : 1", "75%:25%", "3 to 1"), ("1:3", "1:2:1", "9:3:3:1")),
    )),
]
