"""Provenance and CPU numerics: what a metrics.json records about how it was produced, and the
instruction-set pin that makes the embedded default's base model the same on any x86 CPU."""

import subprocess
import sys

import pytest

from unlearn_bench.numerics import PORTABLE, SWITCH, pin_portable_cpu_numerics
from unlearn_bench.provenance import differing, git_state, provenance


@pytest.fixture
def clean_env(monkeypatch):
    for name in (SWITCH, *PORTABLE):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_portable_numerics_are_defaults_the_user_can_override_or_turn_off(clean_env):
    import os

    pin_portable_cpu_numerics()
    assert {k: os.environ[k] for k in PORTABLE} == {"MKL_CBWR": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
    clean_env.setenv("MKL_CBWR", "COMPATIBLE")
    pin_portable_cpu_numerics()
    assert os.environ["MKL_CBWR"] == "COMPATIBLE"  # what the user exported wins
    for name in PORTABLE:
        clean_env.delenv(name)
    clean_env.setenv(SWITCH, "native")
    pin_portable_cpu_numerics()
    assert not any(name in os.environ for name in PORTABLE)
    clean_env.setenv(SWITCH, "fast")
    with pytest.raises(ValueError, match="'portable'.*'native'"):
        pin_portable_cpu_numerics()


def test_importing_the_package_pins_the_kernels_before_any_runs():
    code = (
        "import unlearn_bench, torch, platform; "
        "print(torch.backends.cpu.get_cpu_capability() if platform.machine() in ('x86_64', 'AMD64') else 'AVX2')"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k not in (SWITCH, *PORTABLE)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.strip() == "AVX2"


def test_provenance_records_versions_commit_device_and_numerics():
    record = provenance("cpu")
    assert record["versions"]["torch"] and record["versions"]["lightning"]
    assert record["device"].startswith("cpu (") and record["python"].count(".") == 2
    assert {"cpu_capability", "threads", "MKL_CBWR", "ATEN_CPU_CAPABILITY"} <= set(record["cpu_numerics"])


def test_git_state_of_a_checkout_and_of_a_folder_outside_any(tmp_path):
    assert git_state(tmp_path) is None
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "f").write_text("a")
    subprocess.run(["git", "-C", str(tmp_path), "add", "f"], check=True)
    subprocess.run(
        ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"], check=True
    )
    state = git_state(tmp_path)
    assert len(state["commit"]) == 40 and state["dirty"] is False
    (tmp_path / "f").write_text("b")
    assert git_state(tmp_path)["dirty"] is True


def test_differing_lists_only_the_fields_that_differ():
    a = {"versions": {"torch": "2.13.0", "peft": "0.21"}, "cpu_numerics": {"threads": 2}}
    b = {"versions": {"torch": "2.14.1", "peft": "0.21"}, "cpu_numerics": {"threads": 2}}
    assert differing([a, b, a]) == {"versions.torch": ["2.13.0", "2.14.1"]}
    assert differing([a, a]) == {}
    assert differing([a, None]) != {}  # a metrics.json from before provenance was recorded
