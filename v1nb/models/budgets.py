"""Training budgets shared by the chapters, so that every chapter asking for "the pre-trained model of seed s"
gets the same cache entry.

``"standard"`` is the default schedule (to early stopping); ``"quick"`` trains with batches of 16,
which on the small twin (``twin:quick``, ~300 training images) reaches a usable model in seconds.
``"auto"`` is ``"quick"`` for ``twin:quick`` and ``"standard"`` otherwise.
"""

from __future__ import annotations

from typing import Any, Sequence

BUDGETS: dict[str, dict[str, Any]] = {"quick": {"batch_size": 16}, "standard": {}, "full": {}}


def resolve_budget(budget: str, data: str) -> str:
    """``"auto"`` → ``"quick"`` for ``twin:quick``, else ``"standard"``; other names are checked.

    Raises
    ------
    ValueError
        For a name not in :data:`BUDGETS` (or ``"auto"``).
    """
    if budget == "auto":
        return "quick" if str(data) == "twin:quick" else "standard"
    if budget not in BUDGETS:
        raise ValueError(f"budget={budget!r} must be 'auto' or one of {tuple(BUDGETS)}")
    return budget


def budget_settings(budget: str, data: str = "") -> dict[str, Any]:
    """Model settings of a budget (after :func:`resolve_budget`)."""
    return dict(BUDGETS[resolve_budget(budget, data)])


#: model seeds the quick budget keeps (the quick profile of the book must stay within minutes)
QUICK_SEEDS = 2


#: repeats (null reference sets, bootstrap pairs) the quick budget keeps
QUICK_REPEATS = 2


def budget_repeats(n: int, budget: str) -> int:
    """Repeats of a resampling estimate under a (resolved) budget: ``n``, or under ``"quick"`` at
    most :data:`QUICK_REPEATS` (still two, so that a spread is defined)."""
    return min(int(n), QUICK_REPEATS) if budget == "quick" else int(n)


def budget_seeds(seeds: Sequence[int], budget: str) -> list[int]:
    """The model seeds a chapter fits under a (resolved) budget: all of them, or under ``"quick"``
    the first :data:`QUICK_SEEDS` (still two, so that seed-to-seed spread and cross-seed
    consistency are defined)."""
    seeds = [int(s) for s in seeds]
    return seeds[:QUICK_SEEDS] if budget == "quick" else seeds
