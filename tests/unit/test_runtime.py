"""Runtime settings: CPU-only ones stay off other platforms, user flags win, and it is idempotent."""

import pytest

from mathvlm import runtime


@pytest.fixture
def fake_tables(monkeypatch):
  monkeypatch.setattr(runtime, "XLA_FLAGS", {"cpu": (("--xla_cpu_a", "true", "why a"),
                                                     ("--xla_cpu_b", "1", "why b"))})
  monkeypatch.setattr(runtime, "JAX_CONFIG", {"cpu": (("jax_cpu_enable_async_dispatch", True,
                                                       "why"),)})


def test_cpu_flags_are_added_without_overriding_the_users(monkeypatch, fake_tables):
  monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_b=7 --xla_dump_to=/tmp/x")
  applied = runtime.configure("cpu")
  assert applied == {"--xla_cpu_a": "true", "jax_cpu_enable_async_dispatch": True}
  import os
  flags = os.environ["XLA_FLAGS"].split()
  assert flags == ["--xla_cpu_b=7", "--xla_dump_to=/tmp/x", "--xla_cpu_a=true"]
  runtime.configure("cpu")                               # idempotent
  assert os.environ["XLA_FLAGS"].split() == flags


@pytest.mark.parametrize("platform", ["gpu", "tpu", "cuda"])
def test_other_platforms_get_nothing(monkeypatch, fake_tables, platform):
  monkeypatch.setenv("XLA_FLAGS", "--xla_gpu_x=1")
  assert runtime.configure(platform) == {}
  import os
  assert os.environ["XLA_FLAGS"] == "--xla_gpu_x=1"


def test_platform_comes_from_jax_platforms_when_not_given(monkeypatch, fake_tables):
  monkeypatch.setenv("XLA_FLAGS", "")  # recorded, so what configure sets is undone after
  monkeypatch.delenv("XLA_FLAGS")
  monkeypatch.setenv("JAX_PLATFORMS", "cpu,cuda")
  assert runtime.platform_hint() == "cpu"
  assert "--xla_cpu_a" in runtime.configure()
  monkeypatch.setenv("JAX_PLATFORMS", "")
  assert runtime.configure() == {}


def test_every_setting_says_why():
  for table in (runtime.XLA_FLAGS, runtime.JAX_CONFIG):
    for entries in table.values():
      assert all(len(e) == 3 and len(e[2]) > 20 for e in entries)


@pytest.fixture
def no_thread_counts(monkeypatch):
  for name in ("PJRT_NPROC", "NPROC"):
    monkeypatch.setenv(name, "")  # recorded, so what configure sets is undone after
    monkeypatch.delenv(name)


def test_fake_cpu_devices_get_a_pool_no_waiting_collective_can_fill(monkeypatch, no_thread_counts):
  import os
  monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
  assert runtime.configure("cpu")["PJRT_NPROC"] == os.environ["PJRT_NPROC"] == str(
      max(os.cpu_count(), 64))
  monkeypatch.setenv("PJRT_NPROC", "3")                 # the user's count wins
  assert "PJRT_NPROC" not in runtime.configure("cpu") and os.environ["PJRT_NPROC"] == "3"


@pytest.mark.parametrize("platform,flags", [
    ("cpu", "--xla_force_host_platform_device_count=1"), ("cpu", ""),
    ("gpu", "--xla_force_host_platform_device_count=8")])
def test_no_pool_size_without_several_fake_cpu_devices(monkeypatch, no_thread_counts, platform,
                                                       flags):
  import os
  monkeypatch.setenv("XLA_FLAGS", flags)
  assert "PJRT_NPROC" not in runtime.configure(platform) and "PJRT_NPROC" not in os.environ
