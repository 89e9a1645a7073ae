"""What ``results.json`` records so that an experiment can be reproduced and handed on: the
versions of rankstack, Python and the packages that compute figures, the git commit of the working
tree (and whether it had uncommitted changes), the date, the machine, and the experiment's config.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["PACKAGES", "provenance", "git_commit"]

#: packages whose versions can change a figure (those not installed are left out)
PACKAGES = ("numpy", "scipy", "PyStemmer", "torch", "transformers", "sentence-transformers", "tokenizers",
            "faiss-cpu", "onnxruntime", "llama_cpp_python", "pytrec-eval-terrier", "ir_measures", "ir_datasets")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def git_commit(where: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """``{"commit": sha, "dirty": bool}`` of the git working tree holding ``where`` (the current
    directory by default), or ``None`` outside one or without git."""
    cwd = Path(where) if where is not None else Path.cwd()
    if cwd.is_file():
        cwd = cwd.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": sha.stdout.strip(), "dirty": bool(status.stdout.strip())}


def provenance(config: Any = None, where: str | os.PathLike | None = None) -> dict[str, Any]:
    """The record described in the module docstring; ``config`` is the experiment's text or table."""
    from rankstack.version import __version__

    git = git_commit(where)
    return {
        "rankstack": __version__,
        "python": platform.python_version(),
        "packages": {p: v for p in PACKAGES if (v := _version(p)) is not None},
        "git_commit": git["commit"] if git else None,
        "git_dirty": git["dirty"] if git else None,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.machine(),
                    "cpus": os.cpu_count()},
        "config": config,
    }
