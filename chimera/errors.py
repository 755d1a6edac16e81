"""Typed errors. Library code raises these; only the CLI turns them into one line and an exit code."""


class ChimeraError(Exception):
    """Base of every error the CLI reports as one line."""

    exit_code = 1


class ConfigError(ChimeraError):
    """The configuration file is missing, unreadable or invalid."""

    exit_code = 2


class EndpointError(ChimeraError):
    """A model endpoint cannot be reached or keeps refusing; names the role and URL."""

    def __init__(self, role: str, base_url: str, detail: str):
        self.role = role
        self.base_url = base_url
        self.detail = detail
        super().__init__(f"{role} endpoint {base_url}: {detail}")


class ReplyError(ChimeraError):
    """A model reply could not be parsed into the expected structure."""

    def __init__(self, role: str, reason: str, raw: str | None = None):
        self.role = role
        self.reason = reason
        self.raw = raw
        super().__init__(f"{role} reply unusable: {reason}")


class CallFailed(ChimeraError):
    """A single model call failed after its retries (timeout, 5xx, 4xx); the slot is marked failed."""

    def __init__(self, role: str, base_url: str, detail: str):
        self.role = role
        self.base_url = base_url
        self.detail = detail
        super().__init__(f"{role} call to {base_url} failed: {detail}")
