"""Chemical answers: formulas, SMILES, oxidation states, electron configurations, hybridization.

A formula equal after normalization (LaTeX subscripts, charges) is the same; a
different element count or charge is a different species; the same atoms in
another order (CH3COOH, C2H4O2) is not certain. SMILES are canonicalized with
RDKit where it is installed; without it they are not decided.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache

ELEMENTS = frozenset("""H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se
Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb Dy Ho Er Tm Yb Lu Hf Ta W
Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu Am Cm Bk Cf Es Fm Md No Lr Rf Db Sg Bh Hs Mt Ds Rg Cn Nh
Fl Mc Lv Ts Og D""".split())

Species = tuple[tuple[tuple[str, int], ...], int]  # (element counts, charge)

_SMILES_SYNTAX = re.compile(r"[=#()\[\]@/\\]|[cnosp](?![a-z])|\d")
_SMILES_CHARS = re.compile(r"^[A-Za-z0-9@+\-\[\]()=#$/\\%.:*]+$")
_ROMAN = {"I": 1, "II": 2, "III": 3, "IV": 4, "V": 5, "VI": 6, "VII": 7, "VIII": 8, "IX": 9}
_CONFIG_TERM = re.compile(r"(\d)([spdfg])\^?\{?(\d{1,2})\}?")
_HYBRID = re.compile(r"^(sp|sp\^?\{?([23])\}?(?:d\^?\{?([12])\}?)?)$")


def _formula_text(text: str) -> str:
    return re.sub(r"[_{}]", "", text.replace("\\text", "").replace("\\mathrm", ""))


def _parse_body(body: str) -> Counter | None:
    """Element counts of a neutral formula body: groups in parentheses, hydrates with a dot."""
    total: Counter = Counter()
    for part_index, part in enumerate(re.split(r"[·•.*]", body)):
        coefficient = 1
        if part_index:
            match = re.match(r"^(\d+)", part)
            if match:
                coefficient, part = int(match.group(1)), part[match.end():]
        counts = _parse_group(part)
        if counts is None:
            return None
        for element, count in counts.items():
            total[element] += count * coefficient
    return total or None


def _parse_group(text: str) -> Counter | None:
    stack: list[Counter] = [Counter()]
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in "([":
            stack.append(Counter())
            i += 1
            continue
        if ch in ")]":
            if len(stack) == 1:
                return None
            group = stack.pop()
            i += 1
            digits = re.match(r"\d*", text[i:]).group(0)  # type: ignore[union-attr]
            i += len(digits)
            for element, count in group.items():
                stack[-1][element] += count * int(digits or 1)
            continue
        match = re.match(r"([A-Z][a-z]?)(\d*)", text[i:])
        if not match or match.group(1) not in ELEMENTS:
            return None
        stack[-1][match.group(1)] += int(match.group(2) or 1)
        i += match.end()
    return stack[0] if len(stack) == 1 and stack[0] else None


def _charge(text: str) -> int:
    magnitude = text.strip("+-") or "1"
    return int(magnitude) * (-1 if text.endswith("-") or text.startswith("-") else 1)


@lru_cache(maxsize=4096)
def species(text: str) -> frozenset[Species] | None:
    """Every reading of `text` as a formula with a charge ("Fe3+" is Fe with 3+, or Fe3 with +)."""
    flat = _formula_text(text)
    if not flat or len(flat) > 60 or " " in flat or not re.match(r"^[A-Z(\[]", flat):
        return None
    readings: set[Species] = set()
    caret = re.fullmatch(r"(.+?)\^\(?(\d*[+-]|[+-]\d*)\)?", flat)
    if caret:
        body = _parse_body(caret.group(1))
        if body is None:
            return None
        readings.add((tuple(sorted(body.items())), _charge(caret.group(2))))
        return frozenset(readings)
    trailing = re.fullmatch(r"(.+?)(\d*)([+-])", flat)
    if trailing:
        head, digits, sign = trailing.groups()
        for split in range(len(digits) + 1):
            body = _parse_body(head + digits[:split])
            if body is not None:
                readings.add((tuple(sorted(body.items())), _charge(digits[split:] + sign)))
        return frozenset(readings) or None
    body = _parse_body(flat)
    return frozenset({(tuple(sorted(body.items())), 0)}) if body else None


def compare_formulas(reference: str, response: str) -> tuple[bool | None, str] | None:
    ref, got = species(reference), species(response)
    if ref is None or got is None:
        return None
    if _could_be_smiles(reference) != _could_be_smiles(response):
        return None, "a SMILES string against a formula"
    if _formula_text(reference) == _formula_text(response).replace("^", "") or \
            _formula_text(reference).replace("^", "") == _formula_text(response).replace("^", ""):
        return True, "the same formula"
    if ref & got:
        if len(ref) == 1 and len(got) == 1 and _order(reference) == _order(response):
            return True, "the same formula and charge"
        return None, "the same atoms written in another order or reading"
    return False, "different elements, counts or charge"


def _could_be_smiles(text: str) -> bool:
    """Hydrogen-free strings RDKit reads (CCO) may be SMILES rather than formulas."""
    return "H" not in text and canonical_smiles(text) is not None and len(_order(text)) > 1


def _order(text: str) -> list[str]:
    return re.findall(r"[A-Z][a-z]?", _formula_text(text))


@lru_cache(maxsize=4096)
def canonical_smiles(text: str) -> str | None:
    if not _SMILES_CHARS.match(text) or len(text) > 300:
        return None
    try:
        from rdkit import Chem, RDLogger
    except ImportError:
        return None
    RDLogger.DisableLog("rdApp.*")  # type: ignore[attr-defined]  # missing from rdkit's stubs
    molecule = Chem.MolFromSmiles(text)
    return Chem.MolToSmiles(molecule, isomericSmiles=True) if molecule is not None else None


def rdkit_available() -> bool:
    try:
        import rdkit  # noqa: F401
    except ImportError:
        return False
    return True


def looks_like_smiles(text: str) -> bool:
    """SMILES syntax that no formula has: bonds, brackets, stereo, or a branch not followed by a count."""
    if not _SMILES_CHARS.match(text) or " " in text or not _SMILES_SYNTAX.search(text):
        return False
    return species(text) is None or bool(re.search(r"[=#\[\]@/\\]|\([^()]*\)(?!\d)", text))


def compare_smiles(reference: str, response: str) -> tuple[bool | None, str] | None:
    if " " in reference or " " in response or not (_SMILES_CHARS.match(reference) and _SMILES_CHARS.match(response)):
        return None
    syntax = looks_like_smiles(reference) or looks_like_smiles(response)
    if not rdkit_available():
        return (None, "SMILES need RDKit (pip install 'chimera-engine[chem]')") if syntax else None
    ref, got = canonical_smiles(reference), canonical_smiles(response)
    if ref is None or got is None:
        return (None, "not both valid SMILES") if syntax and (ref or got) else None
    if ref == got:
        return True, "the same molecule (canonical SMILES)"
    return (False, "different molecules (canonical SMILES)") if syntax else None


def oxidation_state(text: str) -> int | None:
    """"+3", "3+", "III", "+III", "(III)" -> 3; a bare integer without its sign is not an oxidation state."""
    text = text.strip().strip("()")
    match = re.fullmatch(r"([+-])?\s*([IVX]+)", text)
    if match and match.group(2) in _ROMAN:
        return _ROMAN[match.group(2)] * (-1 if match.group(1) == "-" else 1)
    match = re.fullmatch(r"([+-])\s*(\d)|(\d)\s*([+-])", text)
    if match:
        sign, digit = (match.group(1), match.group(2)) if match.group(1) else (match.group(4), match.group(3))
        return int(digit) * (-1 if sign == "-" else 1)
    return None


def compare_oxidation(reference: str, response: str) -> tuple[bool | None, str] | None:
    ref, got = oxidation_state(reference), oxidation_state(response)
    roman = re.fullmatch(r"[+-]?\s*\(?[IVX]+\)?", reference.strip()) or re.fullmatch(r"[+-]?\s*\(?[IVX]+\)?",
                                                                                         response.strip())
    if ref is None or got is None or not roman:
        return None
    return ref == got, "oxidation state"


def electron_configuration(text: str) -> Counter | None:
    flat = text.replace(" ", "")
    terms = _CONFIG_TERM.findall(text)
    if not terms or _CONFIG_TERM.sub("", text).strip(" ,.") or len(flat) < 3:
        return None
    return Counter((int(n), orbital, int(count)) for n, orbital, count in terms)


def compare_configuration(reference: str, response: str) -> tuple[bool | None, str] | None:
    ref, got = electron_configuration(reference), electron_configuration(response)
    if ref is None or got is None:
        return None
    return ref == got, "electron configuration"


def hybridization(text: str) -> str | None:
    match = _HYBRID.match(text.strip().replace(" ", ""))
    if not match:
        return None
    return "sp" + (match.group(2) or "") + ("d" + match.group(3) if match.group(3) else "")


def compare_hybridization(reference: str, response: str) -> tuple[bool | None, str] | None:
    ref, got = hybridization(reference), hybridization(response)
    if ref is None or got is None:
        return None
    return ref == got, "hybridization"
