"""Where things live on a machine: the real recordings and the cache.

The project reads public recordings from a folder it never writes into and never commits:
by default ``../shared/data`` beside the repository, or wherever ``$V1NB_SHARED_DATA`` points.
Chapters and tests call :func:`shared_data_dir` and skip their real-data sections when it
returns ``None``.

What the package computes once and reuses (fitted models, simulated twins) lives under
:func:`cache_dir`: ``$V1NB_CACHE`` when set, else ``.cache/models`` in the checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variable that overrides the location of the shared real data.
ENV_VAR = "V1NB_SHARED_DATA"
#: Environment variable that overrides the location of the cache (fitted models, stored twins).
CACHE_VAR = "V1NB_CACHE"


def repository_root() -> Path:
    """The folder holding the ``v1nb`` package (the repository root for an editable install)."""
    return Path(__file__).resolve().parents[2]


def shared_data_dir(path: str | os.PathLike | None = None) -> Path | None:
    """The shared real-data folder, or ``None`` when it is absent.

    Parameters
    ----------
    path
        An explicit folder; ``None`` or ``""`` means ``$V1NB_SHARED_DATA``, else ``../shared/data``
        relative to the repository root.

    Raises
    ------
    FileNotFoundError
        If an explicit ``path`` (or the environment variable) names a folder that does not exist:
        a typo should not silently skip every real-data section.
    """
    explicit = path if path not in (None, "") else os.environ.get(ENV_VAR)
    if explicit:
        folder = Path(explicit).expanduser()
        if not folder.is_dir():
            source = "path" if path not in (None, "") else f"${ENV_VAR}"
            raise FileNotFoundError(f"{source}={explicit!r}: no such folder of real recordings")
        return folder
    folder = repository_root().parent / "shared" / "data"
    return folder if folder.is_dir() else None


def cache_dir() -> Path:
    """The model cache folder (``$V1NB_CACHE`` or ``<repo>/.cache/models``).

    Outside a checkout (no ``pyproject.toml`` beside the package): ``~/.cache/v1nb/models``.
    """
    env = os.environ.get(CACHE_VAR)
    if env:
        return Path(env).expanduser()
    repo = repository_root()
    if (repo / "pyproject.toml").is_file():
        return repo / ".cache" / "models"
    return Path.home() / ".cache" / "v1nb" / "models"
