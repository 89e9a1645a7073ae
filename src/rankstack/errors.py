"""Every exception rankstack raises on purpose, in one place (as scikit-learn's ``exceptions.py``).

Each class derives from :class:`RankstackError` *and* keeps the builtin base it always had, so
``except ValueError`` keeps catching a :class:`FormatError` and ``except RankstackError`` catches
every error that is the user's input, configuration or environment, never a bug. The command line
prints one ``error:`` line for these (and for a few builtin user errors such as a missing file); any
other exception is reported as a bug, with the ``--debug`` hint.

This module is the ground floor: it imports nothing from rankstack.
"""

from __future__ import annotations

__all__ = [
    "RankstackError",
    "FormatError",
    "DuplicateDocumentError",
    "NotFoundError",
    "DocumentNotFoundError",
    "ConfigError",
    "UnknownStageError",
    "MissingDependencyError",
    "StageError",
    "BackendError",
    "IndexMismatchError",
]


class RankstackError(Exception):
    """Root of every error rankstack raises on purpose (bad input, configuration, environment)."""


class _PlainKeyError(KeyError):
    """A ``KeyError`` whose message prints as plain text (``KeyError`` quotes its argument)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


# -- data ---------------------------------------------------------------------------------------
class FormatError(RankstackError, ValueError):
    """Malformed input; the message starts with ``file:line:`` (1-based line number)."""


class DuplicateDocumentError(RankstackError, ValueError):
    """The same document id was given twice to ``DocStore.build`` (rows are 0-based)."""

    def __init__(self, doc_id: str, rows: tuple[int, int]):
        self.doc_id, self.rows = doc_id, rows
        super().__init__(f"duplicate document id {doc_id!r} (documents #{rows[0] + 1} and #{rows[1] + 1})")


class NotFoundError(RankstackError, _PlainKeyError):
    """A name or id that is not there: an unknown dataset, a query or document missing from a
    collection (a ``KeyError`` with a plain message)."""


class DocumentNotFoundError(NotFoundError):
    """A document id absent from a ``DocStore``."""


# -- configuration and construction -------------------------------------------------------------
class ConfigError(RankstackError, ValueError):
    """An experiment, stage spec or training configuration that cannot be used as given."""


class UnknownStageError(NotFoundError):
    """A stage name no registry entry has; the message lists the known names."""


class MissingDependencyError(RankstackError, ImportError):
    """An optional dependency is not installed; the message gives the ``pip install`` line."""


# -- running ------------------------------------------------------------------------------------
class StageError(RankstackError, RuntimeError):
    """A stage cannot do what it was asked (bad input, missing text, missing candidates)."""


class BackendError(RankstackError, RuntimeError):
    """An LLM backend failed (server unreachable, bad response, model cannot be loaded)."""


class IndexMismatchError(RankstackError, ValueError):
    """An index on disk was built with other settings (or from other texts) than the ones asked for."""


def strict_table(table: object, known: "list[str] | tuple[str, ...]", where: str) -> dict:
    """``table`` if it is a dict with only ``known`` keys; else a :class:`ConfigError` naming ``where``,
    the first unknown key, the closest known one and the known keys (the strict config readers)."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table, got {type(table).__name__}")
    unknown = [k for k in table if k not in known]
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}{hint}; known keys: {', '.join(known)}")
    return table
