"""Model text made safe to show, on every page and terminal that shows it (the review front ends, the dataset
page, the console): math to safe MathML, visible control characters, escaped filter options.

Model text is hostile. The LaTeX converter un-escapes what it is given
(`\\text{<script>}` comes out as a live tag), so its output is parsed as XML and
rebuilt from an allowlist of MathML elements and attributes (no href, style,
class, id or handlers), then serialized by ElementTree, which escapes every
text node and attribute. Splitting text into math spans is linear, every field
and span is capped, and control and bidi characters are shown as codes.
"""

from __future__ import annotations

import html
import re
import unicodedata
import xml.etree.ElementTree as ET

from latex2mathml.converter import convert

MAX_FIELD_CHARS = 20_000  # longer fields are shown as escaped text, with no math rendering
MAX_SPAN_CHARS = 2_000  # a longer LaTeX span is shown as its source
MATHML = "{http://www.w3.org/1998/Math/MathML}"
_ELEMENTS = frozenset("""math mrow mi mn mo ms mtext mspace msup msub msubsup mfrac msqrt mroot mover munder
munderover mtable mtr mtd mlabeledtr mstyle mpadded mphantom menclose semantics annotation mfenced merror
mmultiscripts mprescripts none""".split())
_ATTRIBUTES = frozenset("""display mathvariant stretchy fence separator lspace rspace accent accentunder
linethickness columnalign rowalign columnspacing rowspacing columnlines rowlines frame width height depth
displaystyle scriptlevel minsize maxsize movablelimits largeop symmetric form notation open close separators
align""".split())
_INVISIBLE = {0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x2060, 0xFEFF, 0x061C} | set(range(0x202A, 0x202F)) \
    | set(range(0x2066, 0x206A))


def visible(text: str) -> str:
    """Control, bidi and zero-width characters as ⟨U+XXXX⟩, so text cannot hide or reorder itself."""
    out = []
    for ch in text:
        code = ord(ch)
        if ch in "\n\t":
            out.append(ch)
        elif code in _INVISIBLE or unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co"):
            out.append(f"⟨U+{code:04X}⟩")
        else:
            out.append(ch)
    return "".join(out)


def math_spans(text: str) -> list[tuple[str, bool, bool]]:
    """(piece, is_math, display) in order; one pass over the text. `$$..$$` and `\\[..\\]` are display math,
    `$..$` (on one line, not starting or ending with a space) and `\\(..\\)` inline."""
    pieces: list[tuple[str, bool, bool]] = []
    exhausted: set[str] = set()
    i = plain_from = 0
    n = len(text)
    while i < n:
        ch = text[i]
        opener: str | None = None
        closer, display = "", False
        if ch == "$" and text.startswith("$$", i):
            opener, closer, display = "$$", "$$", True
        elif ch == "\\" and i + 1 < n and text[i + 1] in "[(":
            opener, closer, display = text[i:i + 2], "\\]" if text[i + 1] == "[" else "\\)", text[i + 1] == "["
        elif ch == "$":
            end = text.find("$", i + 1)
            line_end = text.find("\n", i + 1)
            inner = text[i + 1:end] if end > 0 else ""
            if end > 0 and (line_end < 0 or end < line_end) and inner and not inner[0].isspace() \
                    and not inner[-1].isspace():
                pieces.append((text[plain_from:i], False, False))
                pieces.append((inner, True, False))
                i = plain_from = end + 1
            else:
                i = end if end > 0 else n  # the next "$" may open a span; nothing before it can
            continue
        if opener is None or opener in exhausted:
            i += 1
            continue
        end = text.find(closer, i + len(opener))
        if end < 0:
            exhausted.add(opener)  # no closer anywhere after: no later opener of this kind can close either
            i += len(opener)
            continue
        pieces.append((text[plain_from:i], False, False))
        pieces.append((text[i + len(opener):end], True, display))
        i = plain_from = end + len(closer)
    pieces.append((text[plain_from:], False, False))
    return [p for p in pieces if p[0] or p[1]]


def _clean(element: ET.Element) -> ET.Element | None:
    name = element.tag.removeprefix(MATHML)
    if name not in _ELEMENTS:
        return None
    clean = ET.Element(name, {k: v for k, v in element.attrib.items() if k in _ATTRIBUTES and "\\" not in v})
    clean.text = visible(element.text) if element.text else None
    for child in element:
        kept = _clean(child)
        if kept is None:
            # A tag the converter let through from model text: show it as the text it was.
            tag = child.tag.rsplit("}", 1)[-1]
            attributes = "".join(f' {k.rsplit("}", 1)[-1]}="{v}"' for k, v in child.attrib.items())
            stand_in = ET.SubElement(clean, "mtext")
            stand_in.text = visible(f"<{tag}{attributes}>{''.join(child.itertext())}</{tag}>")
            stand_in.tail = visible(child.tail) if child.tail else None
            continue
        kept.tail = visible(child.tail) if child.tail else None
        clean.append(kept)
    return clean


MAX_SCRIPT_DEPTH = 3  # sub- and superscripts nested deeper shrink to a fraction of a pixel
_SCRIPTS = {"msub", "msup", "msubsup", "mmultiscripts", "munder", "mover", "munderover"}


def _length(value: str) -> float | None:
    match = re.match(r"^\s*(-?[\d.]+)", value or "")
    try:
        return float(match.group(1)) if match else None
    except ValueError:
        return None


def hides(element: ET.Element, depth: int = 0) -> str | None:
    """Why a rendered span would show a reviewer something other than its text: a phantom, text drawn tiny, in
    an invisible colour or over other text, or scripts nested past reading. None when it renders plainly."""
    name = element.tag.removeprefix(MATHML)
    attributes = element.attrib
    if name == "mphantom":
        return "hidden text (\\phantom)"
    if attributes.get("mathcolor") or attributes.get("color") or attributes.get("mathbackground"):
        return "coloured text"
    size = attributes.get("mathsize", "")
    if size and (size in ("small", "0") or ((_length(size) or 1) < 0.7 and size.endswith(("em", "%", "px", "")))):
        return "text drawn tiny"
    if name == "mstyle" and (_length(attributes.get("scriptlevel", "0")) or 0) >= 2:
        return "text drawn tiny"
    for dimension in ("width", "height", "depth", "lspace", "rspace"):
        length = _length(attributes.get(dimension, ""))
        if length is not None and (length < 0 or (name == "mpadded" and length == 0)):
            return "text drawn over other text"
    depth += name in _SCRIPTS
    if depth > MAX_SCRIPT_DEPTH:
        return "scripts nested too deep to read"
    return next((why for child in element if (why := hides(child, depth))), None)


def safe_mathml(latex: str, display: bool) -> str | None:
    """MathML for one LaTeX span with only allowlisted elements and attributes, or None if it cannot be read, or
    if it would render hidden, tiny or overlapping text (then the page shows its source, marked)."""
    if len(latex) > MAX_SPAN_CHARS:
        return None
    try:
        tree = ET.fromstring(convert(latex, display="block" if display else "inline"))
    except Exception:  # noqa: BLE001 - the converter or the parser failing on one span must not break the page
        return None
    if hides(tree):
        return None
    clean = _clean(tree)
    return ET.tostring(clean, encoding="unicode", method="xml") if clean is not None else None


def _why_hidden(latex: str, display: bool) -> str | None:
    try:
        return hides(ET.fromstring(convert(latex, display="block" if display else "inline")))
    except Exception:  # noqa: BLE001 - unreadable spans are shown as source anyway
        return None


def math_html(text: str) -> str:
    """Escaped text with each LaTeX span as sanitized MathML, which browsers render natively (no script, no CDN).
    A span that cannot be read stays visible as its source."""
    text = text or ""
    if len(text) > MAX_FIELD_CHARS:
        return html.escape(visible(text))
    parts = []
    for piece, is_math, display in math_spans(text):
        if not is_math:
            parts.append(html.escape(visible(piece)))
            continue
        rendered = safe_mathml(piece, display)
        delimiters = ("$$", "$$") if display else ("$", "$")
        source = f"<code>{html.escape(visible(delimiters[0] + piece + delimiters[1]))}</code>"
        if rendered is None and len(piece) <= MAX_SPAN_CHARS:
            why = _why_hidden(piece, display)
            if why:
                source = f'<code class=hidden title="{html.escape(why)}">[shown as source: {html.escape(why)}] ' \
                         f"{html.escape(visible(delimiters[0] + piece + delimiters[1]))}</code>"
        parts.append(rendered if rendered is not None else source)
    return "".join(parts)


def select_options(values: list[str], chosen: str | None, everything: str) -> str:
    """The <option>s of a filter's <select>: `everything` (an empty value) first, then each value escaped, the
    chosen one selected."""
    options = [f'<option value="">{html.escape(everything)}</option>']
    options += [f'<option value="{html.escape(v, quote=True)}"{" selected" if v == chosen else ""}>'
                f"{html.escape(visible(v))}</option>" for v in values]
    return "".join(options)


def yes_no(value: object) -> str:
    """A tri-state flag (None, falsy, truthy) as the pages and the terminal show it."""
    return "-" if value is None else ("yes" if value else "no")
