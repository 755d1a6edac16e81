"""A run database's stored config is data from whoever handed the database over: it may name any endpoint,
any environment variable, any LangChain class. No command calls a model with it until the user has seen all
of it and agreed (or said `--yes` after the same listing was printed); without a terminal, the command refuses
and asks for `--config`."""

from __future__ import annotations

import json
import sys
from typing import Any

from chimera.cli.common import err
from chimera.config import Config, ModelSpec
from chimera.errors import ChimeraError, ConfigError

MAX_SHOWN = 300  # a longer value is cut in the listing (and says so), so it cannot scroll the rest out of view
_URL_KWARGS = ("base_url", "api_base", "openai_api_base", "azure_endpoint", "endpoint", "url", "host", "endpoint_url")


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=True, sort_keys=True)  # escapes control characters and markup alike
    return text if len(text) <= MAX_SHOWN else f"{text[:MAX_SHOWN]}... ({len(text):,} characters in all)"


def role_lines(role: str, spec: ModelSpec) -> list[str]:
    """Everything of one role that decides where requests go and what they carry."""
    urls = spec.base_url if isinstance(spec.base_url, list) else [spec.base_url] if spec.base_url else []
    lines = [f"  {role}: provider {spec.provider}"
             + (f", class {_shown(spec.chat_class)}" if spec.chat_class else "")
             + (f", model {_shown(spec.model)}" if spec.model else "")]
    if spec.provider == "langchain":
        urls += [spec.kwargs[k] for k in _URL_KWARGS if isinstance(spec.kwargs.get(k), str)]
    lines.append(f"    endpoint: {', '.join(_shown(u) for u in urls)}" if urls else
                 "    endpoint: the class's default service" if spec.provider == "langchain" else "    endpoint: (none)")
    if spec.provider == "langchain":
        lines.append("    key from: " + (f"${spec.api_key_env}, and " if spec.api_key_env else "")
                     + "whatever the class reads from your environment itself (ChatOpenAI reads $OPENAI_API_KEY, "
                     "ChatAnthropic $ANTHROPIC_API_KEY, ...): that key goes to the endpoint above")
    else:
        lines.append(f"    key from: ${spec.api_key_env}" if spec.api_key_env else "    key from: (none)")
    for name, shown in (("headers_env", spec.headers_env), ("headers", spec.headers), ("query", spec.query),
                        ("extra_body", spec.extra_body), ("kwargs", spec.kwargs)):
        if shown:
            lines.append(f"    {name}: {_shown(shown)}")
    return lines


def outside_roles(config: Config, roles: list[str] | None = None) -> list[tuple[str, ModelSpec]]:
    every = config.models.every_role()
    wanted = every if roles is None else {r: s for r, s in every.items() if r in roles}
    return [(role, spec) for role, spec in wanted.items() if spec.provider != "sim"]


def consented_config(config: Config | None, *, source: str, yes: bool, doing: str,
                     roles: list[str] | None = None) -> Config:
    """The stored config (`Store.config_of`), once the user has seen every role it would call and agreed."""
    if config is None:
        raise ConfigError(f"{source}: no config is stored with the run; pass --config CONFIG")
    outside = outside_roles(config, roles)
    if not outside:
        return config
    listed = {role: role_lines(role, spec) for role, spec in outside}
    err.print(f"the config stored in {source} would {doing} with:\n"
              + "\n".join(line for lines in listed.values() for line in lines), markup=False)
    summary = "; ".join(f"{role} -> {lines[1].split(': ', 1)[1]}" for role, lines in listed.items())
    err.print(f"in short: {summary}", markup=False)  # the endpoints again, next to the question
    if yes:
        return config
    if not sys.stdin.isatty():
        raise ChimeraError(f"using the config stored in {source} needs your consent: pass --config CONFIG (your own "
                           "endpoints and keys), or --yes once you have read the listing above")
    if input("use these endpoints, variables and classes? [y/N] ").strip().lower() not in ("y", "yes"):
        raise ChimeraError("not run: the stored config was not accepted")
    return config
