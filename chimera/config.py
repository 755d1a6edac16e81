"""The run configuration: one YAML file, validated once at load.

Every model role is an OpenAI-compatible endpoint. `models.default` fills the
fields a role leaves unset; `{provider: sim}` (or no `models` section at all)
points a role at the built-in simulator, which the run starts itself.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from chimera.errors import ConfigError, StoredConfigError
from chimera.store.postgres import is_postgres_url, url_has_password

# The roles, named once: every other list of them is read off ModelsConfig (all_roles, run_roles, every_role).
SINGLE_ROLES = ("expander", "drafter", "solver", "labeler")
JUDGE_ROLES = ("labeler", "labeler2")  # models.labeler as a list of two: both must agree
OPTIONAL_ROLES = ("embedder", "evaluator")  # the evaluator only for `chimera eval quality`
REDACTED = "[redacted]"  # what the stored config holds in place of a value named like a credential
# A header, query parameter or keyword whose name says it carries a credential (X-Goog-Api-Key,
# Ocp-Apim-Subscription-Key, access_token, ...): refused as a literal, since the config is stored with the run.
CREDENTIAL_NAME = re.compile(r"(?i)key|token|secret|auth|pass|pwd|cookie|sig|cred|session|bearer|private|jwt|hmac|otp"
                             r"|(?:^|[-_])code$")


def credential_names(value: Any, path: str = "") -> list[str]:
    """Dotted paths of every mapping key at any depth whose name says it holds a credential, and of every
    URL with a user:password part."""
    from urllib.parse import urlsplit

    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if CREDENTIAL_NAME.search(str(key)) and item not in (None, "", {}, []):
                found.append(where)
            else:
                found += credential_names(item, where)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += credential_names(item, f"{path}[{i}]")
    elif isinstance(value, str) and "://" in value:
        try:
            if "@" in urlsplit(value).netloc:
                found.append(path)
        except ValueError:
            pass
    return found


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunSettings(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    db: str = Field(min_length=1, description="the run's database: a SQLite file, or a postgresql:// URL that any "
                                              "number of workers share (dataset tables and checkpoints)")
    seed: int = 0
    concurrency: int = Field(default=32, ge=1, le=4096,
                             description="requests in flight per endpoint (unless its max_in_flight says otherwise)")
    topics_in_flight: int | None = Field(default=None, ge=1,
                                         description="at most this many topic graphs at once; a single-process run starts "
                                                     "another only while fewer calls wait than the budget holds "
                                                     "(default: twice the budget)")
    lock_wait_s: float = Field(default=30.0, gt=0, le=3600,
                               description="how long a write waits for another process's lock on the database")
    lease_s: float = Field(default=60.0, ge=1, le=3600,
                           description="PostgreSQL: how long a worker's claim on a topic lasts without a heartbeat "
                                       "(renewed every third of it); a dead worker's topics are taken over after it")
    db_outage_s: float = Field(default=300.0, ge=1, le=86400,
                               description="PostgreSQL: how long a process waits for its database to come back (a "
                                           "restart, a failover, a dropped connection) before it stops with one line")
    max_cost_usd: float | None = Field(default=None, gt=0, description=(
        "stop once the run's spend so far (every invocation, at the roles' prices) plus the calls in flight would "
        "pass this; the run exits 3 and the same command goes on after raising it"))
    max_total_tokens: int | None = Field(default=None, ge=1, description="the same cap, in tokens (in + out) over "
                                                                          "every role")
    stop_grace_s: float = Field(default=20.0, ge=0, le=3600,
                                description="after SIGTERM: how long calls already sent may take to finish before "
                                            "the process stops (what is unfinished resumes on the next run)")

    @field_validator("db")
    @classmethod
    def _no_password_in_url(cls, value: str) -> str:
        if is_postgres_url(value) and url_has_password(value):
            raise ValueError("a database URL in a config must not hold a password (it would be stored with the run); "
                             "give it in PGPASSWORD or ~/.pgpass")
        return value


class SubjectSpec(_Strict):
    name: str = Field(min_length=1)
    topics: int | list[str] = Field(description="how many topics to expand into, or explicit topic names")
    subfields: int | list[str] | None = Field(
        default=None, description="how many subfields to expand into first, or explicit subfield names")
    weight: float = Field(default=1.0, gt=0, description="problems its topics get relative to other subjects'")

    @field_validator("topics", "subfields")
    @classmethod
    def _not_empty(cls, value: int | list[str] | None) -> int | list[str] | None:
        if isinstance(value, int) and value < 1:
            raise ValueError("must be at least 1")
        if isinstance(value, list) and not value:
            raise ValueError("must name at least one")
        if isinstance(value, list) and (blank := [name for name in value if not any(ch.isalnum() for ch in name)]):
            raise ValueError(f"a name needs a letter or digit: {blank[0]!r}")  # it would normalise to nothing
        return value

    def subfield_target(self) -> int:
        """How many subfields to ask for when none are named: about the square root of the topic target."""
        if isinstance(self.subfields, list):
            return len(self.subfields)
        if isinstance(self.subfields, int):
            return self.subfields
        target = self.topics if isinstance(self.topics, int) else 1
        return max(1, min(target, round(target ** 0.5)))


class TaxonomySettings(_Strict):
    """Stage 1: expansion rounds and topic dedup."""

    max_rounds: int = Field(default=4, ge=1, le=20, description="expander calls per subfield at most")
    similarity_threshold: float = Field(default=0.9, gt=0, le=1, description="embedding cosine to merge topics")
    lexical_threshold: float = Field(default=0.8, gt=0, le=1,
                                     description="character-trigram Jaccard to merge topics when no embedder is set "
                                                 "(1: only names that normalize the same)")


class ModelSpec(_Strict):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    provider: Literal["openai", "sim", "langchain"] = "openai"
    chat_class: str | None = Field(default=None, alias="class", pattern=r"^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$",
                                   description="provider langchain: the BaseChatModel class, as module.Class")
    kwargs: dict[str, Any] = Field(default_factory=dict,
                                   description="provider langchain: keyword arguments for the class (no keys: "
                                               "they are stored with the run; the class reads its own env vars)")
    base_url: str | list[str] | None = Field(default=None, description="one endpoint, or replicas of one model")
    model: str | None = None
    api_key_env: str | None = Field(default=None, description="name of the environment variable holding the key")
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_tokens_cap: int | None = Field(
        default=None, ge=1, description="a structured reply cut at max_tokens is asked again with twice the limit, "
                                        "up to this (default: 4 x max_tokens, or 32768 when max_tokens is unset)")
    schema_limits: Literal["all", "items", "none"] = Field(
        default="all", description="length limits sent in reply schemas: all (maxItems, maxLength), items "
                                   "(maxItems only, for strict modes that refuse string lengths) or none")
    timeout_s: float = Field(default=600.0, gt=0, description="the whole call, connect to last byte")
    max_reply_mb: float = Field(default=64.0, gt=0, le=4096, description="a larger reply fails its call")
    max_retries: int = Field(default=3, ge=0, le=20, description="retries of 429, 5xx, timeouts, lost connections")
    retry_window_s: float = Field(
        default=60.0, ge=0, le=3600, description="a refused or lost connection, or a 502/503/504, is retried past "
                                                 "max_retries until this long after the call's first failure: a "
                                                 "server restart is waited out (0: max_retries alone)")
    max_in_flight: int | None = Field(default=None, ge=1, description="this endpoint's budget (run.concurrency if unset)")
    adaptive: Literal["off", "metrics", "latency"] = Field(
        default="off", description="steer this endpoint's budget below max_in_flight from the server's own signals: "
                                   "metrics (vLLM's /metrics: shrink while requests wait, grow while none do) or "
                                   "latency (shrink when latency climbs well above its low-load minimum)")
    metrics_url: str | None = Field(default=None, description="adaptive metrics: the Prometheus endpoint (default: "
                                                              "base_url without /v1, plus /metrics)")
    adaptive_interval_s: float = Field(default=1.0, gt=0, le=60,
                                       description="adaptive: seconds between two looks at the server")
    max_in_flight_total: int | None = Field(
        default=None, ge=1, description="PostgreSQL: this endpoint's requests in flight across every worker of the run, "
                                        "shared out evenly among the live workers (each keeps at most max_in_flight)")
    rpm: int | None = Field(default=None, ge=1, description="requests per minute at most")
    tpm: int | None = Field(default=None, ge=1, description="tokens per minute at most (estimated before, settled after)")
    extra_body: dict[str, Any] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict,
                                    description="extra HTTP headers, literal (stored with the run: never a key)")
    headers_env: dict[str, str] = Field(default_factory=dict,
                                        description="header name -> environment variable holding its value "
                                                    "(Azure's api-key, say); read at start, never stored")
    query: dict[str, str] = Field(default_factory=dict, description="query parameters on every request "
                                                                     "(api-version for Azure OpenAI)")
    structured_output: Literal["json_schema", "json_object", "tgi", "none"] = Field(
        default="json_schema", description="how reply schemas are asked for: OpenAI's strict json_schema; "
                                           "json_object (JSON mode) or none, with the schema in the prompt and "
                                           "checked here; tgi (TGI's {type: json_object, value: schema})")
    max_tokens_field: Literal["max_completion_tokens", "max_tokens"] = Field(
        default="max_completion_tokens", description="the body field max_tokens is sent as (Ollama and "
                                                     "llama-cpp-python read max_tokens)")
    reasoning_effort: str | None = Field(default=None, max_length=40,
                                         description="sent as reasoning_effort (OpenAI reasoning models)")
    price_per_mtok_in: float | None = Field(default=None, ge=0, description="price per million input tokens")
    price_per_mtok_out: float | None = Field(default=None, ge=0, description="price per million output tokens")
    price_per_mtok_cached: float | None = Field(
        default=None, ge=0, description="price per million input tokens served from the provider's prompt cache "
                                        "(price_per_mtok_in when unset)")
    max_total_tokens: int | None = Field(default=None, ge=1, description="tokens (in + out) this role may spend "
                                                                          "over the run: the run stops at it (exit 3)")
    batch: bool = Field(default=False, description="send this role's calls through the provider's batch API "
                                                   "(/v1/files and /v1/batches), gathered across topics")
    batch_api: Literal["openai", "anthropic"] = Field(
        default="openai", description="whose batch API: OpenAI's /v1/files + /v1/batches (and the servers that copy "
                                      "it), or Anthropic's Message Batches (the anthropic extra)")
    batch_max_requests: int = Field(default=1000, ge=1, le=100000, description="items in one batch at most")
    batch_max_mb: float = Field(default=100.0, gt=0, le=200, description="bytes of one batch's input file at most")
    batch_max_wait_s: float = Field(default=60.0, ge=0, description="a batch is sent once its oldest request waited "
                                                                     "this long, or once it is full")
    batch_window: str = Field(default="24h", pattern=r"^\d+h$", description="the completion window asked for")
    batch_poll_s: float = Field(default=30.0, gt=0, description="how often batches in flight are polled")
    batch_discount: float = Field(default=0.5, ge=0, le=1, description="share of the price a batched call saves")
    batch_retry_online: bool = Field(default=False, description="a batch item that failed is asked again online, "
                                                                "not in the next batch")

    @field_validator("base_url")
    @classmethod
    def _no_credentials_in_url(cls, value: str | list[str] | None) -> str | list[str] | None:
        from urllib.parse import urlsplit

        for url in [value] if isinstance(value, str) else value or []:
            if "@" in urlsplit(url).netloc:
                raise ValueError("holds a user:password part, which would be stored with the run; give the key "
                                 "by api_key_env instead")
        return value

    @field_validator("headers", "query")
    @classmethod
    def _no_literal_credentials(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        hint = {"headers": "give it with headers_env: {{{name}: ENV_VAR}}",
                "query": "give it as a header with headers_env, or let the client read it from its environment"}
        for name in value:
            if CREDENTIAL_NAME.search(name):
                raise ValueError(f"{name} holds a credential, which would be stored with the run; "
                                 + hint[info.field_name or "headers"].format(name=name))
        return value

    @field_validator("extra_body")
    @classmethod
    def _no_credentials_in_body(cls, value: dict[str, Any]) -> dict[str, Any]:
        secret = credential_names(value)
        if secret:
            raise ValueError(f"{secret[0]} holds a credential, which would be stored with the run")
        return value

    def token_cap(self) -> int:
        if self.max_tokens_cap is not None:
            return max(self.max_tokens_cap, self.max_tokens or 1)
        return 4 * self.max_tokens if self.max_tokens is not None else 32768

    @model_validator(mode="after")
    def _endpoint_named(self) -> ModelSpec:
        if self.provider == "langchain":
            if not self.chat_class:
                raise ValueError("class is required with provider langchain (e.g. langchain_anthropic.ChatAnthropic)")
            secret = credential_names(self.kwargs)
            if secret:
                raise ValueError(f"kwargs.{secret[0]} would be stored with the run; let the class read it from its "
                                 "environment variable instead")
        if self.provider == "openai":
            if not self.base_url:
                raise ValueError("base_url is required unless provider is sim")
            if isinstance(self.base_url, list) and len(set(self.base_url)) != len(self.base_url):
                raise ValueError("base_url lists the same replica twice")
            if not self.model:
                raise ValueError("model is required unless provider is sim")
        if self.batch and self.provider == "langchain":
            raise ValueError("batch: the batch API is reached through the openai client; provider langchain has none")
        return self

    def batch_wait_s(self) -> float:
        """How long a batched call may wait for its result: the completion window, plus an hour for the
        batch to be sent and read."""
        return int(self.batch_window[:-1]) * 3600.0 + 3600.0


SimTask = Literal["expand", "draft", "critic", "solve", "label", "embed", "evaluate"]


class SimSettings(_Strict):
    """How the built-in simulator behaves; used only by roles with provider sim."""

    drafter_error_rate: float = Field(default=0.15, ge=0, le=1, description="share of drafts with a wrong reference")
    ill_posed_rate: float = Field(default=0.05, ge=0, le=1, description="share of drafts missing a quantity")
    critic_error_rate: float = Field(default=0.05, ge=0, le=1)
    critic_revise_rate: float = Field(default=0.05, ge=0, le=1, description="share of votes asking for clarity")
    solver_correct_rate: float = Field(default=0.75, ge=0, le=1)
    solver_hedge_rate: float = Field(default=0.05, ge=0, le=1, description=(
        "share of solutions that game a reward: two candidates in any joiner and order, a retraction, a set "
        "or a range holding the answer; none may ever be labelled correct"))
    unusable_reference_rate: float = Field(default=0.02, ge=0, le=1, description=(
        "share of drafts whose reference is no checkable answer: a sentence, a non-answer, or a derivation "
        "cut at the length limit"))
    trajectory_words: int = Field(default=400, ge=1, description="mean length of a trajectory")
    trajectory_jitter: float = Field(default=0.5, ge=0, le=0.99, description="trajectory length varies by +- this share")
    topic_near_duplicate_rate: float = Field(default=0.05, ge=0, le=1,
                                             description="share of expanded topics that reword an earlier one")
    reasoning_shape: Literal["reasoning_content", "reasoning", "think", "close_think", "mixed"] = "mixed"
    latency_s: float = Field(default=0.0, ge=0)
    latency_by_task: dict[SimTask, float] = Field(
        default_factory=dict, description="seconds per task, overriding latency_s (e.g. solve: 2.0)")
    latency_jitter: float = Field(default=0.0, ge=0, le=1, description="latency varies by +- this share")
    capacity: int | None = Field(default=None, ge=1, description="max concurrent requests; more get 429")
    gpu_knee: int | None = Field(default=None, ge=1, description=(
        "play a GPU server: up to this many requests run at full speed, more share a throughput that no longer "
        "grows; /metrics shows running and waiting as vLLM's does (None: replies take latency_s alone)"))
    gpu_kv_tokens: int | None = Field(default=None, ge=1, description=(
        "GPU server: KV-cache tokens (prompt + completion of the requests running); a request that does not fit "
        "waits in a queue (None: no limit)"))
    gpu_request_s: float = Field(default=0.0, ge=0, description="GPU server: seconds per request at full speed")
    gpu_token_s: float = Field(default=0.0004, ge=0,
                               description="GPU server: seconds per completion token at full speed")
    fault_429: float = Field(default=0.0, ge=0, le=1)
    fault_5xx: float = Field(default=0.0, ge=0, le=1)
    fault_hang: float = Field(default=0.0, ge=0, le=1)
    fault_malformed: float = Field(default=0.0, ge=0, le=1)
    fault_truncate: float = Field(default=0.0, ge=0, le=1)
    batch_delay_s: float = Field(default=1.0, ge=0, description="seconds from a batch's creation until it is done")
    batch_item_error_rate: float = Field(default=0.0, ge=0, le=1, description="share of batch items that fail")
    batch_expire_rate: float = Field(default=0.0, ge=0, le=1,
                                     description="share of batches that expire with half their items answered")
    deterministic: bool = Field(default=True, description="false: a repeated request gets a fresh answer, as a "
                                                          "model sampled at temperature > 0 gives")
    verbose_rate: float = Field(default=0.0, ge=0, le=1,
                                description="share of structured replies that ignore brevity (long reasons, more "
                                            "names than asked) unless the request's schema limits hold them")
    draft_variety: bool = Field(default=False, description=(
        "drafts open with a scene-setting sentence (who asks, where, how) drawn per request (subject, topic and "
        "the drafts before it), so a run of thousands of topics is not mostly near-duplicates of the few "
        "templates; off: drafts are exactly as without it"))


class SolverSettings(_Strict):
    """How trajectories are drawn (the endpoint itself is `models.solver`)."""

    samples: int = Field(default=1, ge=1, le=64, description="trajectories per problem; the pass rate is over these")
    max_tokens_retry: int | None = Field(default=None, ge=1, description="one retry with this budget when cut")
    max_trajectory_chars: int = Field(default=2_000_000, ge=1000,
                                      description="a longer trajectory is stored cut and flagged truncated")


class LabelSettings(_Strict):
    """How Stage 3's labels are checked: rules first, the labeler (the judge) where no rule decides."""

    audit_rate: float = Field(default=0.05, ge=0, le=1, description=(
        "share of rule-decided labels also sent to the labeler (chosen by the run's seed), so the judge's "
        "agreement with the rules is measured per subject; the rules' label stands"))


class DedupSettings(_Strict):
    """Near-duplicate problems within a run (MinHash LSH over word shingles) are rejected."""

    enabled: bool = True
    threshold: float = Field(default=0.8, gt=0, le=1, description="Jaccard similarity of word shingles")
    shingle_words: int = Field(default=3, ge=1, le=10)
    num_perm: int = Field(default=128, ge=16, le=1024)


ReviewPolicy = Literal["none", "disagreement", "rejected", "all", "sample"]


class ReviewSettings(_Strict):
    """Which problems wait for a human before their outcome is final (LangGraph interrupts)."""

    policy: list[ReviewPolicy] = Field(
        default_factory=lambda: list[ReviewPolicy](["none"]),
        description="none; or any of: disagreement (critics split, or a trajectory misses the reference), "
                    "rejected (before a rejection is final), all (before every accept), sample (a seeded share)")
    rate: float = Field(default=0.1, ge=0, le=1, description="share of problems the `sample` policy picks")

    @field_validator("policy", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("policy")
    @classmethod
    def _none_stands_alone(cls, value: list[str]) -> list[str]:
        if "none" in value and len(value) > 1:
            raise ValueError("'none' cannot be combined with other policies")
        if not value:
            raise ValueError("give at least one policy ('none' to review nothing)")
        return value

    @property
    def active(self) -> frozenset[str]:
        return frozenset(self.policy) - {"none"}


class ModelsConfig(_Strict):
    expander: ModelSpec
    drafter: ModelSpec
    critics: list[ModelSpec] = Field(min_length=2, max_length=2)
    solver: ModelSpec
    labeler: ModelSpec | list[ModelSpec] = Field(
        description="the judge for answers no grading rule decides; a list of two judges must agree")
    embedder: ModelSpec | None = None
    evaluator: ModelSpec | None = None  # `chimera eval quality` only

    @field_validator("labeler")
    @classmethod
    def _one_or_two_judges(cls, value: ModelSpec | list[ModelSpec]) -> ModelSpec | list[ModelSpec]:
        if isinstance(value, list) and not 1 <= len(value) <= 2:
            raise ValueError("give one judge, or a list of two that must agree")
        return value

    @property
    def judges(self) -> list[ModelSpec]:
        return self.labeler if isinstance(self.labeler, list) else [self.labeler]

    def role(self, role: str) -> ModelSpec:
        """The spec of `role`: critics are critic0 and critic1, the judges labeler and labeler2."""
        if role.startswith("critic"):
            return self.critics[int(role.removeprefix("critic") or 0)]
        if role in JUDGE_ROLES:
            return self.judges[JUDGE_ROLES.index(role)]
        return getattr(self, role)

    def all_roles(self) -> dict[str, ModelSpec]:
        roles: dict[str, ModelSpec] = {}
        for name in SINGLE_ROLES:
            if name == "labeler":
                roles.update(zip(JUDGE_ROLES, self.judges))
            else:
                roles[name] = getattr(self, name)
        roles.update({f"critic{i}": spec for i, spec in enumerate(self.critics)})
        return roles

    def run_roles(self) -> dict[str, ModelSpec]:
        """Every role a run calls: `all_roles`, and the embedder when one is set."""
        return self.all_roles() | ({"embedder": self.embedder} if self.embedder else {})

    def every_role(self) -> dict[str, ModelSpec]:
        """Every role that is set, the evaluator included."""
        optional = {name: getattr(self, name) for name in OPTIONAL_ROLES}
        return self.all_roles() | {name: spec for name, spec in optional.items() if spec is not None}


class DatasetSettings(_Strict):
    """What the dataset card says about the data (the export's front matter)."""

    license: str | None = Field(default=None, min_length=1, max_length=80,
                                description="an SPDX-style id (cc-by-4.0, apache-2.0, ...); needed to --push")
    language: list[str] = Field(default_factory=lambda: ["en"], description="languages of the problems")
    pretty_name: str | None = Field(default=None, max_length=200, description="default: the run's name")


class Config(_Strict):
    run: RunSettings
    subjects: list[SubjectSpec] = Field(min_length=1)
    problems_per_topic: int = Field(default=2, ge=1, le=1000)
    problems_total: int | None = Field(default=None, ge=1, description="spread over topics by subject weight; "
                                       "overrides problems_per_topic")
    max_revisions: int = Field(default=1, ge=0, le=10)
    parse_retries: int = Field(default=1, ge=0, le=5, description="re-asks after an unparseable structured reply")
    models: ModelsConfig
    solver: SolverSettings = Field(default_factory=SolverSettings)
    labels: LabelSettings = Field(default_factory=LabelSettings)
    taxonomy: TaxonomySettings = Field(default_factory=TaxonomySettings)
    dedup: DedupSettings = Field(default_factory=DedupSettings)
    sim: SimSettings = Field(default_factory=SimSettings)
    review: ReviewSettings = Field(default_factory=ReviewSettings)
    dataset: DatasetSettings = Field(default_factory=DatasetSettings)

    def redacted(self) -> dict[str, Any]:
        """The config as stored with a run: keys are never read into it, only env var names; credentials are
        refused at validation, and anything named like one is scrubbed here as well, so no older config that
        slipped past can carry one into the database."""
        return scrub_credentials(self.model_dump(mode="json"))


def scrub_credentials(value: Any) -> Any:
    """`value` with every mapping entry named like a credential replaced by "[redacted]" (the names of
    environment variables, in api_key_env and headers_env, stay: they are what a resumed run reads)."""
    if isinstance(value, dict):
        return {k: v if k in _NOT_SECRETS else
                REDACTED if CREDENTIAL_NAME.search(str(k)) and v not in (None, "", {}, []) else scrub_credentials(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_credentials(v) for v in value]
    return value


# Config fields whose names match the credential pattern but hold no secret: the name of a variable, or a limit.
_NOT_SECRETS = {"api_key_env", "headers_env", "max_tokens", "max_tokens_cap", "max_tokens_retry", "max_tokens_field",
                "max_total_tokens", "gpu_kv_tokens", "gpu_token_s"}  # config fields whose names only look like secrets


def _merge_models(raw_models: Any) -> Any:
    """Fill each role from `models.default`; no section at all means every role is simulated."""
    if raw_models is None:
        sim = {"provider": "sim"}
        return {"expander": sim, "drafter": sim, "critics": [sim, sim], "solver": sim, "labeler": sim, "embedder": sim,
                "evaluator": sim}
    if not isinstance(raw_models, dict):
        return raw_models  # let pydantic name the type error
    default = raw_models.get("default") or {}
    if not isinstance(default, dict):
        raise ConfigError("models.default: must be a mapping of model fields")
    merged: dict[str, Any] = {k: v for k, v in raw_models.items() if k != "default"}
    for role in SINGLE_ROLES:
        entry = merged.get(role, {})
        if isinstance(entry, list) and role == "labeler":
            merged[role] = [{**default, **judge} if isinstance(judge, dict) else judge for judge in entry]
        else:
            merged[role] = {**default, **entry} if isinstance(entry, dict) else entry
    for optional in OPTIONAL_ROLES:
        if isinstance(merged.get(optional), dict):
            merged[optional] = {**default, **merged[optional]}
    critics = merged.get("critics", [{}, {}])
    if isinstance(critics, list):
        merged["critics"] = [{**default, **c} if isinstance(c, dict) else c for c in critics]
    return merged


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    path = ".".join(str(part) for part in first["loc"]) or "(top level)"
    message = first["msg"].removeprefix("Value error, ")
    more = len(error.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{path}: {message}{suffix}"


def parse_config(raw: Any, *, source: str = "config") -> Config:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    raw = dict(raw)
    raw["models"] = _merge_models(raw.get("models"))
    try:
        return Config.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"{source}: {_describe(error)}") from None


def stored_config(raw: Any, *, run: str) -> Config:
    """The config stored with `run` (see `Config.redacted`), parsed again. It was valid when stored; an older
    or newer version of chimera may have stored it, and a database may come from anyone, so what this version
    cannot use is left out rather than refused: a value scrubbed as "[redacted]" (the credential was never
    stored; a resumed run reads it from its environment variable) and a field this version does not know.
    Anything else wrong is one line naming the run."""
    if not isinstance(raw, dict):
        raise StoredConfigError(f"run {run!r}: its stored config is not a mapping")
    kept = _without_redacted(raw)
    while True:
        try:
            return Config.model_validate(kept)
        except ValidationError as error:
            unknown = [entry["loc"] for entry in error.errors() if entry["type"] == "extra_forbidden"]
            # each pass leaves out at least one field, so this ends: with a config, or with what else is wrong
            if not any([_drop(kept, loc) for loc in unknown]):
                raise StoredConfigError(f"run {run!r}: the config stored with it does not parse: "
                                        f"{_describe(error)}") from None


def _without_redacted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_redacted(v) for k, v in value.items() if v != REDACTED}
    if isinstance(value, list):
        return [_without_redacted(v) for v in value]
    return value


def _drop(raw: Any, loc: tuple[int | str, ...]) -> bool:
    """Delete the entry at a validation error's location (True if there was one); a step that names no key or
    index where it stands (a union member's tag, such as `ModelSpec` in models.labeler.ModelSpec.x) is passed
    over."""
    node = raw
    for step in loc[:-1]:
        if isinstance(node, dict) and step in node:
            node = node[step]
        elif isinstance(node, list) and isinstance(step, int) and step < len(node):
            node = node[step]
    return isinstance(node, dict) and node.pop(loc[-1], _ABSENT) is not _ABSENT


_ABSENT = object()


MAX_CONFIG_BYTES = 1 << 20


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without anchors and aliases: a config needs none, and nested aliases expand to gigabytes."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.events.AliasEvent):
            mark = self.peek_event().start_mark
            raise ConfigError(f"{self.name}: YAML aliases (*name) are not allowed in a config (line {mark.line + 1})")
        return super().compose_node(parent, index)


def load_config(path: str | Path, settings: list[str] | None = None) -> Config:
    """Read and validate a YAML config (a relative `run.db` is relative to the working directory), with
    `settings` (`key.path=value`, see `with_settings`) applied before the validation."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES >> 20} MB; not a config")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config ({error.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file; a config is YAML (was a database given?)") from None
    try:
        loader = _NoAliasLoader(text)
        loader.name = str(path)
        try:
            raw = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config") from None
    return parse_config(with_settings(raw, settings or []), source=str(path))


def with_settings(raw: Any, settings: list[str]) -> Any:
    """`raw` with each `key.path=value` set: the value read as YAML (`4`, `true`, `[a, b]`, `gpt-5`), the path
    walked through mappings by name and lists by index (`models.critics.1.model=o4-mini`), missing mappings
    made on the way. The config is validated afterwards, so a wrong key or value is named there."""
    if not settings:
        return raw
    raw = copy.deepcopy(raw) if isinstance(raw, dict) else {}
    for setting in settings:
        path, sep, text = setting.partition("=")
        keys = path.strip().split(".")
        if not sep or not all(keys):
            raise ConfigError(f"--set {setting!r}: expected key.path=value, e.g. run.concurrency=64")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError(f"--set {setting!r}: the value is not valid YAML") from None
        node: Any = raw
        for depth, key in enumerate(keys):
            last = depth == len(keys) - 1
            if isinstance(node, list):
                if not key.isdigit() or int(key) >= len(node):
                    raise ConfigError(f"--set {setting!r}: {'.'.join(keys[:depth]) or 'the config'} is a list of "
                                      f"{len(node)}; {key!r} is no index of it")
                if last:
                    node[int(key)] = value
                else:
                    node = node[int(key)]
            elif isinstance(node, dict):
                if last:
                    node[key] = value
                else:
                    node = node.setdefault(key, {})
            else:
                raise ConfigError(f"--set {setting!r}: {'.'.join(keys[:depth])} is a value, not a section")
    return raw
