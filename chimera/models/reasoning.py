"""Split a model reply into its thinking and its answer, whatever shape the server gave it.

Four shapes are seen in the wild:
- a separate `reasoning_content` field (vLLM reasoning parsers, DeepSeek);
- a separate `reasoning` field (newer vLLM);
- `<think>...</think>` inline in the content;
- only a closing `</think>`: Qwen3 Thinking-2507 chat templates open the tag in the
  prompt, so a server without a reasoning parser returns thinking, `</think>`, answer.
"""

from __future__ import annotations

from typing import NamedTuple

OPEN, CLOSE = "<think>", "</think>"


class Split(NamedTuple):
    reasoning: str
    solution: str


def split_reasoning(content: str | None, reasoning_field: str | None = None) -> Split:
    content = content or ""
    if reasoning_field:
        # A parser already separated the thinking; strip any tags a template left behind.
        if CLOSE in content:
            content = content.split(CLOSE, 1)[1]
        return Split(reasoning_field.strip(), content.replace(OPEN, "").strip())
    if CLOSE in content:
        thinking, answer = content.split(CLOSE, 1)
        thinking = thinking.split(OPEN, 1)[1] if OPEN in thinking else thinking
        return Split(thinking.strip(), answer.strip())
    if OPEN in content:
        # Opened and never closed: the reply was cut while thinking.
        before, thinking = content.split(OPEN, 1)
        return Split(thinking.strip(), before.strip())
    return Split("", content.strip())
