"""Optional dependencies (extras): which modules each one brings, and the error when one is missing.

``import stacksapi`` needs only httpx2 and msgspec. The CLI, the emulator's server, metrics and the
Kubernetes dispatcher each need an extra; a missing one becomes :class:`MissingExtraError`, whose
message is one line naming the extra to install, instead of a traceback deep in an import.
"""

from __future__ import annotations

__all__ = ["EXTRA_MODULES", "MissingExtraError", "missing_extra"]

EXTRA_MODULES: dict[str, frozenset[str]] = {
    "cli": frozenset({"click", "rich", "starlette", "uvicorn"}),
    "emulator": frozenset({"starlette", "uvicorn"}),
    "metrics": frozenset({"prometheus_client", "starlette", "uvicorn"}),
    "kubernetes": frozenset({"lightkube", "yaml"}),
}
"""The top-level modules each extra of ``pyproject.toml`` installs."""


class MissingExtraError(ModuleNotFoundError):
    """A part of stacksapi was used without the extra that installs its dependencies.

    ``extra`` names the extra (``"cli"``), ``name`` the module that was not found. It is a
    ``ModuleNotFoundError``, so ``except ImportError`` keeps working.
    """

    def __init__(self, what: str, extra: str, module: str) -> None:
        self.extra = extra
        super().__init__(
            f"{what} needs the {extra!r} extra (no module named {module!r}): "
            f"pip install 'stacksapi[{extra}]' (from a clone: pip install '.[{extra}]')",
            name=module,
        )


def missing_extra(
    exc: ModuleNotFoundError, what: str, extras: tuple[str, ...]
) -> MissingExtraError | None:
    """The one-line error for ``exc`` when it is a module of one of ``extras`` (the first that
    has it) that is missing, else None.

    A module missing for another reason (a bug, a broken install of stacksapi itself) gives None,
    so the caller re-raises the original error unchanged.
    """
    if isinstance(exc, MissingExtraError):
        return exc
    module = (exc.name or "").split(".")[0]
    for extra in extras:
        if module in EXTRA_MODULES[extra]:
            return MissingExtraError(what, extra, module)
    return None
