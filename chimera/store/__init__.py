"""The dataset store: one database per run, holding the dataset tables beside LangGraph's checkpoints.

Every write is an upsert on a deterministic id, so a graph node re-executed after a crash rewrites its row
instead of adding a second one. Long text lives here; graph state carries only ids and small fields.

One module per aggregate, each the only place with SQL for its tables:

    schema.py     the tables, as named migrations           base.py      opening, migrating, transactions
    runs.py       runs, topics, merges, shortfalls          problems.py  problems and critic votes
    samples.py    trajectories and labels                   calls.py     model calls and kept replies
    batches.py    batches sent to a provider's batch API
    reviews.py    human reviews                             evals.py     eval rows, saved reports
    reports.py    queries of reports and benchmarks          health.py    counts and consistency checks
    browse.py     pages of problems and one problem's record, for `chimera view`
    rows.py       the row layouts the graph writes, as types
    leases.py     workers and their topic leases (PostgreSQL)
    postgres.py   a postgresql:// database: the connection, URLs    schema_postgres.py  its tables and the lease check
    nonblocking.py  the store awaited from an event loop (each call on the store's own thread)
    graph_store.py  GraphStore: the awaited methods the graphs call, all they see of the store

The methods are plain synchronous calls on one connection. Code on an event loop (the graphs, the runner, a
LangGraph server) reaches them through `nonblocking.AsyncStore`, which runs each on the store's own thread
(the graphs through its `GraphStore` face); commands with no loop call them directly. The aggregates' SQL is
written once for both backends (SQLite, and PostgreSQL through postgres.PgConnection); only the schemas are two.
"""

from chimera.store.base import LOCK_WAIT_S
from chimera.store.batches import Batches
from chimera.store.browse import Browse
from chimera.store.calls import Calls
from chimera.store.evals import EvalRows
from chimera.store.health import Health
from chimera.store.leases import Leases
from chimera.store.problems import Problems
from chimera.store.reports import Reports
from chimera.store.reviews import Reviews
from chimera.store.runs import RunsAndTopics
from chimera.store.samples import Samples
from chimera.store.schema import MIGRATIONS, PROBLEM_STATUSES


class Store(Health, RunsAndTopics, Problems, Samples, Calls, Batches, Reviews, EvalRows, Reports, Browse, Leases):
    """One run database, used by one thread at a time (code on an event loop goes through AsyncStore).

    `create=False`: the file must exist and be chimera's. `read_only=True` (implies create=False): opened
    read-only and never migrated; a database of a newer chimera, or not chimera's, is refused in one line.
    """


__all__ = ["LOCK_WAIT_S", "MIGRATIONS", "PROBLEM_STATUSES", "Store"]
