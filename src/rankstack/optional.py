"""Optional dependencies: import one, or raise :class:`~rankstack.errors.MissingDependencyError`
with the ``pip install`` line of the extra that provides it. Ground floor: imports only ``errors``."""

from __future__ import annotations

import importlib
from typing import Any

from rankstack.errors import MissingDependencyError

__all__ = ["require", "install_hint"]


def install_hint(extra: str | None) -> str:
    return f"pip install 'rankstack[{extra}]'" if extra else "pip install rankstack"


def require(module: str, extra: str) -> Any:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependencyError(f"{module} is not installed: install it with {install_hint(extra)}") from e
