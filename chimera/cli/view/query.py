"""A list page's address both ways: its GET query read into a filter and a page, and the links it shows built
back from them (so every filtered, paged list can be bookmarked or shared)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import urlencode

from chimera.errors import ChimeraError
from chimera.store.browse import IN_REVIEW, LABELS, ProblemFilter
from chimera.store.schema import PROBLEM_STATUSES

PER_PAGE = 50
MAX_PER_PAGE = 200
MAX_TEXT_CHARS = 500
STATUSES = (*PROBLEM_STATUSES, IN_REVIEW)
# query name -> ProblemFilter field
FIELDS = {"subject": "subject", "topic": "topic", "status": "status", "reason": "reason", "label": "label",
          "method": "method", "q": "text"}


class BadQuery(ChimeraError):
    """A list address whose query the page cannot read (a page that is not a number, an unknown status...)."""


@dataclass(frozen=True)
class ListQuery:
    wanted: ProblemFilter
    page: int = 1  # from 1
    per: int = PER_PAGE

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per

    def link(self, page: int | None = None) -> str:
        """This list's address (at `page` when given): only the filters set, and page and size when not the
        defaults."""
        pairs = [(name, getattr(self.wanted, field)) for name, field in FIELDS.items()]
        pairs += [("page", page if page is not None else self.page), ("per", self.per)]
        kept = [(name, str(value)) for name, value in pairs
                if value is not None and (name, value) not in (("page", 1), ("per", PER_PAGE))]
        return "/" + ("?" + urlencode(kept) if kept else "")


def _number(query: Mapping[str, str], name: str, default: int, most: int) -> int:
    raw = query.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise BadQuery(f"{name} must be a whole number from 1 to {most}, not {raw[:40]!r}")
    return int(raw)


def read_query(query: Mapping[str, str]) -> ListQuery:
    """The list a GET query asks for. An empty field is no filter; a value the page cannot take is a BadQuery
    naming the field."""
    values: dict[str, str | None] = {field: query.get(name) or None for name, field in FIELDS.items()}
    values = {field: value if value and value.strip() else None for field, value in values.items()}
    values["text"] = values["text"].strip() if values["text"] else None
    if values["status"] is not None and values["status"] not in STATUSES:
        raise BadQuery(f"status must be one of {', '.join(STATUSES)}, not {values['status'][:40]!r}")
    if values["label"] is not None and values["label"] not in LABELS:
        raise BadQuery(f"label must be one of {', '.join(LABELS)}, not {values['label'][:40]!r}")
    if values["text"] is not None and len(values["text"]) > MAX_TEXT_CHARS:
        raise BadQuery(f"q (the text searched for) is longer than {MAX_TEXT_CHARS} characters")
    wanted = replace(ProblemFilter(), **values)
    return ListQuery(wanted, page=_number(query, "page", 1, 10**9), per=_number(query, "per", PER_PAGE, MAX_PER_PAGE))
