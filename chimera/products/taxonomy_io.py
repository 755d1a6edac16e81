"""The stored taxonomy as a tree: printed, written as JSON, and read back from an edited file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chimera.errors import ChimeraError
from chimera.graphs.taxonomy_plan import POSITION_STRIDE
from chimera.ids import topic_id
from chimera.store import Store


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


MAX_NAME_CHARS = 300
MAX_SLOTS = 10_000
MAX_TOPICS = 100_000
MAX_FILE_BYTES = 64 << 20


class TopicEntry(_Strict):
    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    slots: int | None = Field(default=None, ge=0, le=MAX_SLOTS)
    id: str | None = Field(default=None, max_length=100, description=(
        "written for reference (a topic graph run on a LangGraph server takes it as topic_id); ignored on "
        "import, where the id follows from the run, subject, subfield and name"))


class SubfieldEntry(_Strict):
    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    topics: list[TopicEntry] = Field(max_length=MAX_TOPICS)


class SubjectEntry(_Strict):
    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    weight: float = Field(default=1.0, gt=0, le=1000)
    subfields: list[SubfieldEntry] = Field(max_length=MAX_TOPICS)


class TaxonomyFile(_Strict):
    run: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.-]+$")
    subjects: list[SubjectEntry]
    merges: list[dict[str, Any]] = Field(default_factory=list, description="written for audit; ignored on import")
    shortfalls: list[dict[str, Any]] = Field(default_factory=list, description="written for audit; ignored on import")


def tree(store: Store, run: str) -> TaxonomyFile:
    subjects: dict[str, SubjectEntry] = {}
    for topic in store.topics(run, live=True):
        subject = subjects.setdefault(topic["subject"], SubjectEntry(name=topic["subject"], weight=topic["weight"] or 1.0,
                                                                     subfields=[]))
        subfield_name = topic["subfield"] or "General"
        if not subject.subfields or subject.subfields[-1].name != subfield_name:
            subject.subfields.append(SubfieldEntry(name=subfield_name, topics=[]))
        subject.subfields[-1].topics.append(TopicEntry(name=topic["name"], slots=topic["slots"], id=topic["id"]))
    merges = [{k: m[k] for k in ("dropped", "kept", "similarity", "method")} for m in store.merges(run)]
    shortfalls = [{k: row[k] for k in ("subject", "subfield", "kind", "detail", "target", "got")}
                  for row in store.shortfalls(run)]
    return TaxonomyFile(run=run, subjects=list(subjects.values()), merges=merges, shortfalls=shortfalls)


def read_file(path: Path) -> TaxonomyFile:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ChimeraError(f"{path}: larger than {MAX_FILE_BYTES >> 20} MB; not a taxonomy")
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ChimeraError(f"{path}: cannot read ({error.strerror or error})") from None
    except json.JSONDecodeError as error:
        raise ChimeraError(f"{path}: not valid JSON (line {error.lineno}: {error.msg})") from None
    except RecursionError:
        raise ChimeraError(f"{path}: not valid JSON (nested too deeply)") from None
    try:
        return TaxonomyFile.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ChimeraError(f"{path}: {where}: {first['msg']}") from None


def import_tree(store: Store, taxonomy: TaxonomyFile) -> dict[str, int]:
    """Make the run's topics exactly those of the file, in one transaction (a kill leaves the old taxonomy or
    the new one, never a mix); Stage 1 is then skipped by `chimera run`."""
    if sum(len(sf.topics) for s in taxonomy.subjects for sf in s.subfields) > MAX_TOPICS:
        raise ChimeraError(f"a taxonomy of more than {MAX_TOPICS:,} topics is refused")
    with store.transaction():
        return _import(store, taxonomy)


def _import(store: Store, taxonomy: TaxonomyFile) -> dict[str, int]:
    run = taxonomy.run
    if not store.runs() or run not in {r["name"] for r in store.runs()}:
        store.save_run(run, {})
    listed: set[str] = set()
    for subject in taxonomy.subjects:
        for s_index, subfield in enumerate(subject.subfields):
            for t_index, topic in enumerate(subfield.topics):
                tid = topic_id(run, subject.name, subfield.name, topic.name)
                if tid in listed:
                    raise ChimeraError(f"topic {topic.name!r} is listed twice under {subject.name} / {subfield.name}")
                listed.add(tid)
                status = store.topic_status(tid)
                store.upsert_topic(id=tid, run=run, subject=subject.name, subfield=subfield.name, name=topic.name,
                                   position=s_index * POSITION_STRIDE + t_index, source="imported",
                                   weight=subject.weight,
                                   status=status if status in ("pending", "done") else "pending")
                if topic.slots is not None:
                    store.set_slots({tid: topic.slots})
    removed = 0
    for row in store.topics(run, live=True):
        if row["id"] not in listed:
            store.set_topic_status(row["id"], "removed")
            removed += 1
    store.set_taxonomy_source(run, "imported")
    return {"topics": len(listed), "removed": removed}
