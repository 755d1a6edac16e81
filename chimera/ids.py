"""Deterministic identities: the same (run, subject, topic, slot) always names the same row."""

from __future__ import annotations

import hashlib
import re
import unicodedata


def _digest(*parts: object) -> str:
    joined = "\x1f".join(str(p) for p in parts)
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()[:16]


def normalize_topic(name: str) -> str:
    """Case-, accent-, punctuation- and whitespace-insensitive form used for exact dedup."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    text = re.sub(r"[^a-z0-9]+", " ", text.lower())
    return " ".join(text.split())


def topic_id(run: str, subject: str, subfield: str, topic: str) -> str:
    return "t" + _digest(run, subject, normalize_topic(subfield), normalize_topic(topic))


def problem_id(run: str, topic_id_: str, slot: int) -> str:
    return "p" + _digest(run, topic_id_, slot)


def topic_thread_id(run: str, topic_id_: str) -> str:
    return f"{run}:topic:{topic_id_}"


def retry_thread_id(run: str, topic_id_: str, retries: int, slot: int) -> str:
    """The thread of a failed or revived slot's `retries`-th attempt: a thread of its own, so the first
    attempt's checkpoints stay as they were."""
    return f"{topic_thread_id(run, topic_id_)}:retry{retries}:{slot}"


def attempt_of(thread_id: str) -> int | None:
    """Which retry of its slot a thread is (see retry_thread_id); None for a first attempt."""
    found = re.search(r":retry(\d+):\d+$", thread_id)
    return int(found.group(1)) if found else None


def taxonomy_thread_id(run: str) -> str:
    return f"{run}:taxonomy"
