"""The stack runtime: pull scheduled jobs, reserve them, and hand them to a dispatcher.

``StackRunner`` runs the loop (``Stack`` is its former name, kept as an alias); ``StackConfig``
configures it (TOML, flags, environment); a ``Dispatcher`` starts agents
(``SubprocessDispatcher`` runs them as local processes).
See ``docs/stack.md``.
"""

from ._api import AsyncStacksClient
from ._config import DEFAULT_AGENT_COMMAND, ConfigError, StackConfig, SubprocessConfig
from ._dispatcher import (
    ACQUIRE_REFUSED,
    AdoptedJob,
    AdoptedState,
    AgentExit,
    DispatchDeferred,
    Dispatcher,
    DispatchError,
    DispatchRequest,
    DispatchSink,
    ProvisioningSink,
    TokenRefresher,
)
from ._entry import run_stack
from ._events import EventCallback, EventKind, StackEvent
from ._exit import StackExit
from ._logging import JsonLogFormatter
from ._metrics import StackMetrics
from ._preflight import CheckableDispatcher, CheckResult, check_dispatcher
from ._rules import rule_matches, serves_job
from ._runtime import Stack, StackRunner
from ._subprocess import SubprocessDispatcher

__all__ = [
    "ACQUIRE_REFUSED",
    "DEFAULT_AGENT_COMMAND",
    "AdoptedJob",
    "AdoptedState",
    "AgentExit",
    "AsyncStacksClient",
    "CheckResult",
    "CheckableDispatcher",
    "ConfigError",
    "DispatchDeferred",
    "DispatchError",
    "DispatchRequest",
    "DispatchSink",
    "Dispatcher",
    "EventCallback",
    "EventKind",
    "JsonLogFormatter",
    "ProvisioningSink",
    "Stack",
    "StackConfig",
    "StackEvent",
    "StackExit",
    "StackMetrics",
    "StackRunner",
    "SubprocessConfig",
    "SubprocessDispatcher",
    "TokenRefresher",
    "check_dispatcher",
    "rule_matches",
    "run_stack",
    "serves_job",
]
