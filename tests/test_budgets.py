"""Training budgets shared by the chapters (v1nb.models.budgets)."""

import pytest

from v1nb.cluster.embedding_clustering import chapter_seeds
from v1nb.models.budgets import budget_seeds, budget_settings, resolve_budget


def test_auto_is_quick_only_on_the_quick_twin():
    assert resolve_budget("auto", "twin:quick") == "quick"
    assert resolve_budget("auto", "twin:default") == "standard"
    assert resolve_budget("full", "twin:quick") == "full"
    assert budget_settings("auto", "twin:quick") == {"batch_size": 16}
    with pytest.raises(ValueError, match="budget='fast'"):
        resolve_budget("fast", "twin:quick")


def test_the_quick_budget_keeps_two_seeds_and_the_others_all():
    assert budget_seeds(range(3), "quick") == [0, 1]
    assert budget_seeds([4], "quick") == [4]
    assert budget_seeds((2, 0, 1), "standard") == [2, 0, 1]
    assert chapter_seeds("0,1,2", "quick") == [0, 1] and chapter_seeds("0,1,2", "full") == [0, 1, 2]


def test_the_quick_budget_keeps_two_repeats_and_every_second_k():
    from v1nb.cluster.embedding_clustering import chapter_ks
    from v1nb.models.budgets import budget_repeats

    assert budget_repeats(5, "quick") == 2 and budget_repeats(1, "quick") == 1 and budget_repeats(5, "standard") == 5
    assert chapter_ks(2, 12, 100, "standard") == list(range(2, 13))
    assert chapter_ks(2, 12, 100, "quick") == [2, 4, 6, 8, 10, 12]
    assert chapter_ks(2, 11, 100, "quick", keep=[7]) == [2, 4, 6, 7, 8, 10, 11]  # k_max and K kept
    with pytest.raises(ValueError, match="k_max=12"):
        chapter_ks(2, 12, 10, "quick")
