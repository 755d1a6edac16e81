"""Secrets never leave the process: key values, bearer tokens and URL passwords are scrubbed from every
error text that is stored or printed."""

from __future__ import annotations

import re

_known: set[str] = set()
_BEARER = re.compile(r"(?i)\b(bearer|token|api[-_ ]?key|authorization)(\s*[:=]?\s*)([A-Za-z0-9._~+/=-]{8,})")
_KEYLIKE = re.compile(r"\b(?:sk|rk|pk|hf|gsk|xai|sk-proj|sk-ant)[-_][A-Za-z0-9_-]{12,}\b")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@")


def register_secret(value: str | None) -> None:
    """A value that must never be stored or printed (an API key read from the environment)."""
    if value and len(value) >= 6:
        _known.add(value)


def redact(text: str) -> str:
    for secret in sorted(_known, key=len, reverse=True):
        text = text.replace(secret, "***")
    text = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)
    text = _KEYLIKE.sub("***", text)
    return _USERINFO.sub(r"\1", text)
