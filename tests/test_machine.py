"""v1nb.machine: the cores a process may use (what book, sweep and fit_many default to)."""

import os

import pytest

from v1nb import machine


def test_available_cores_follows_the_affinity_mask_not_the_core_count(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert machine.available_cores() == 1


def test_available_cores_falls_back_to_the_core_count_without_affinity(monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # os.cpu_count() may return None
    assert machine.available_cores() == 1
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert machine.available_cores() == 6


@pytest.mark.parametrize("default", ["v1nb.models.parallel", "v1nb.book.executor"])
def test_parallel_defaults_use_the_available_cores(monkeypatch, default):
    import importlib

    module = importlib.import_module(default)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert module.default_jobs() == 3


def test_machine_names_the_cpu_and_the_load():
    info = machine.machine()
    assert info["cpu_model"] and info["cpus"] >= 1 and len(info["loadavg"]) == 3
