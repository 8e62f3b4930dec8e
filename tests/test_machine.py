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


def test_v1nb_cores_lowers_the_available_cores_but_never_raises_them(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setenv("V1NB_CORES", "2")
    assert machine.available_cores() == 2
    monkeypatch.setenv("V1NB_CORES", "16")
    assert machine.available_cores() == 4


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_v1nb_cores_must_be_a_positive_integer(monkeypatch, value):
    monkeypatch.setenv("V1NB_CORES", value)
    with pytest.raises(ValueError, match=f"V1NB_CORES={value!r}"):
        machine.available_cores()


def test_cpu_generation_reads_family_model_and_avx512(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\n"
                    "flags\t\t: fpu avx2 avx512f\n\nprocessor\t: 1\ncpu family\t: 99\n")
    assert machine.cpu_generation(info) == {"cpu_family": 25, "cpu_model_number": 17, "avx512": True}
    assert machine.cpu_generation(tmp_path / "absent") == {}
