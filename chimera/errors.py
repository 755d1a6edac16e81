"""Typed errors. Library code raises these; only the CLI turns them into one line and an exit code."""


class ChimeraError(Exception):
    """Base of every error the CLI reports as one line."""

    exit_code = 1


class ConfigError(ChimeraError):
    """The configuration file is missing, unreadable or invalid."""

    exit_code = 2


class StoredConfigError(ConfigError):
    """The config stored with a run in its database cannot be read back as a config."""


class LoopRunning(ChimeraError, RuntimeError):
    """A blocking call (chimera.api.run) made where an event loop is running already (a Jupyter cell, an async
    app): the async form is the one to await there."""


class _EndpointProblem(ChimeraError):
    """Something went wrong with one role's endpoint; keeps the role and URL for the message."""

    def __init__(self, role: str, base_url: str, detail: str):
        self.role = role
        self.base_url = base_url
        self.detail = detail
        super().__init__(self.describe())

    def describe(self) -> str:
        raise NotImplementedError


class EndpointError(_EndpointProblem):
    """A model endpoint cannot be reached or refuses us outright: the run stops."""

    def describe(self) -> str:
        return f"{self.role} endpoint {self.base_url}: {self.detail}"


class ReplyError(ChimeraError):
    """A model reply could not be parsed into the expected structure."""

    def __init__(self, role: str, reason: str, raw: str | None = None):
        self.role = role
        self.reason = reason
        self.raw = raw
        super().__init__(f"{role} reply unusable: {reason}")


class CallFailed(_EndpointProblem):
    """A single model call failed after its retries (timeout, 5xx, 4xx); only its problem slot fails."""

    def describe(self) -> str:
        return f"{self.role} call to {self.base_url} failed: {self.detail}"


class BudgetReached(ChimeraError):
    """The run's spend (or tokens) reached a cap in the config: nothing new was sent, what was in flight finished
    and was kept. Exits 3; the same command, with the cap raised, goes on exactly."""

    exit_code = 3

    def __init__(self, detail: str):
        super().__init__(f"budget reached ({detail}); the calls in flight finished and were kept: raise the cap "
                         "(or --set it) and run the same command to go on")


class Stopped(Exception):
    """The process was told to stop (SIGTERM): it stopped sending, let calls in flight finish, released what it
    held. Exits like an interrupt: the same command resumes."""

    exit_code = 130
