"""The markers agent prompts carry and the simulator reads: field lines ("Subject: ..."), tagged blocks
(<problem>...</problem>) and numbered lists under a heading. The prompt files write them; tests render
every prompt and read each value back with these functions, so a prompt and its reader cannot drift apart."""

from __future__ import annotations

import re

SUBJECT = "Subject"
TOPIC = "Topic"
SUBFIELD = "Subfield"
REFERENCE_ANSWER = "Reference answer"
SUBFIELD_COUNT = "Number of subfields"
TOPIC_COUNT = "Number of topics"
SUBFIELDS_LISTED = "Subfields already listed"  # heading of a numbered list
TOPICS_LISTED = "Topics already listed"  # heading of a numbered list
SCHEMA_IN_PROMPT = re.compile(r"matches this JSON Schema \((\w+)\):\n(\{.*\})\s*$", re.S)  # schema.user.md
PROBLEM = "problem"  # tag
SOLUTION = "solution"  # tag
ANSWER = "answer"  # tag: the committed final answer alone (the reward judge's prompt)


def field(text: str, name: str) -> str:
    """The value of the line `name: value`, or ""."""
    match = re.search(rf"^{re.escape(name)}:\s*(.*)$", text, re.M)
    return match.group(1).strip() if match else ""


def between(text: str, tag: str) -> str:
    """What `<tag>...</tag>` holds, or "" (found by position, in linear time whatever the text)."""
    start = text.find(f"<{tag}>")
    if start < 0:
        return ""
    start += len(tag) + 2
    end = text.find(f"</{tag}>", start)
    return text[start:end].strip() if end >= 0 else ""


def listed(text: str, heading: str) -> list[str]:
    """Numbered items after a heading line, as the agents' prompts list them."""
    block = text.split(heading, 1)[1] if heading in text else ""
    return [m.strip() for m in re.findall(r"^\d+\.\s+(.*)$", block, re.M)]


TAGS = (PROBLEM, SOLUTION, ANSWER)
FIELDS = (SUBJECT, TOPIC, SUBFIELD, REFERENCE_ANSWER, SUBFIELD_COUNT, TOPIC_COUNT)
_TAG_IN_TEXT = re.compile(r"<(/?)\s*(" + "|".join(TAGS) + r")\s*>", re.I)
_FIELD_IN_TEXT = re.compile(r"(?im)^(\s*)(" + "|".join(re.escape(f) for f in FIELDS) + r")(\s*:)")


def contained(text: str) -> str:
    """Text from a model (or a person), made unable to leave its place in a prompt: a delimiter tag it holds is
    written with look-alike angle brackets, and a line that would read as a field ("Reference answer: ...")
    is indented, so a drafted problem or a solution can neither close its block nor forge a line of the
    prompt around it."""
    text = _TAG_IN_TEXT.sub(lambda m: f"‹{m.group(1)}{m.group(2)}›", text)
    return _FIELD_IN_TEXT.sub(lambda m: f"{m.group(1)}  {m.group(2)}{m.group(3)}", text)
