"""v1nb.optim.adam: fused Adam where every parameter allows it, the ordinary one elsewhere."""

from __future__ import annotations

import pytest
import torch

from v1nb.optim import adam


def _quadratic_steps(opt: torch.optim.Optimizer, p: torch.Tensor, n: int = 5) -> torch.Tensor:
    for _ in range(n):
        opt.zero_grad()
        (p - 3.0).square().sum().backward()
        opt.step()
    return p.detach().clone()


def test_fused_on_cpu_and_same_update_as_the_ordinary_adam():
    start = torch.linspace(-1, 1, 7)
    p = torch.nn.Parameter(start.clone())
    opt = adam([p], lr=0.1, weight_decay=0.01)
    assert opt.defaults["fused"] is True
    assert opt.defaults["weight_decay"] == 0.01
    q = torch.nn.Parameter(start.clone())
    reference = torch.optim.Adam([q], lr=0.1, weight_decay=0.01)
    torch.testing.assert_close(_quadratic_steps(opt, p), _quadratic_steps(reference, q))


def test_parameter_groups_and_generators_are_accepted():
    net = torch.nn.Linear(3, 2)
    opt = adam([{"params": [net.weight]}, {"params": iter([net.bias]), "lr": 0.5}], lr=0.1)
    assert opt.defaults["fused"] is True
    assert [len(g["params"]) for g in opt.param_groups] == [1, 1]
    assert opt.param_groups[1]["lr"] == 0.5
    single = adam([{"params": net.weight}], lr=0.1)  # one tensor as a group's params, as torch allows
    assert single.defaults["fused"] is True and single.param_groups[0]["params"][0] is net.weight
    opt2 = adam(net.parameters(), lr=0.1)  # a generator, consumed once
    assert len(opt2.param_groups[0]["params"]) == 2


def test_not_fused_where_torch_has_no_fused_kernel():
    # a device outside FUSED_DEVICES: torch would refuse fused=True only at the first step
    meta = torch.nn.Parameter(torch.zeros(3, device="meta"))
    assert adam([meta], lr=0.1).defaults["fused"] is None
    # one such parameter among CPU ones decides for all (a single optimiser is fused or not)
    cpu = torch.nn.Parameter(torch.zeros(3))
    assert adam([cpu, meta], lr=0.1).defaults["fused"] is None


def test_fused_and_foreach_are_chosen_here():
    p = torch.nn.Parameter(torch.zeros(3))
    with pytest.raises(TypeError, match="fused"):
        adam([p], lr=0.1, fused=False)
    with pytest.raises(TypeError, match="foreach"):
        adam([p], lr=0.1, foreach=True)
