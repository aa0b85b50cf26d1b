"""The configs the sweep files give their runs: the mixture sweep's runs read their `data.mixture`
(a built dataset name, not `synthetic`, which never reads it), a mixture on the synthetic or
stream source is a config error naming both fields, and a tokenizer path that is not there is
named as such (the paper-scale sweeps point data.tokenizer at /tmp/mathvlm-data/...)."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from mathvlm import configs
from mathvlm.configs import common, sft
from train_utils import ROOT

spec = importlib.util.spec_from_file_location("sweep_cli", os.path.join(ROOT, "launch/sweep.py"))
sweep = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sweep)


@pytest.mark.parametrize("name", ["synthetic", "stream"])
def test_a_mixture_on_a_source_that_never_reads_it_is_an_error(name):
  c = sft.get_config("model=tiny")
  with c.unlocked():
    c.data.name, c.data.mixture = name, "mathv360k=1,mavis_instruct=3"
  with pytest.raises(ValueError, match=rf"data\.mixture='mathv360k=1,mavis_instruct=3'.*"
                                       rf"data\.name='{name}' never reads it"):
    common.validate(c)
  c.data.name = "mathv360k"  # a built dataset: the mixture is read
  common.validate(c)


# The trainer's own flag parsing of a sweep run's arguments, then its validation and the source
# make_source builds (the datasets' reading and the tokenizer stubbed: no data here).
_RUN_CONFIG = """
import json, sys, types
from absl import flags
from ml_collections import config_flags
from mathvlm import configs
from mathvlm.configs.common import validate
from mathvlm.data import sources
config_flags.DEFINE_config_file("config", None, "", lock_config=True)
flags.FLAGS(["x"] + sys.argv[1:])  # (config_flags reads its overrides from sys.argv too)
c = flags.FLAGS.config
validate(c)
read = []
sources.read = lambda path, name: (read.append((path, name)), name)[1]
sources.load_tokenizer = lambda path: read.append(("tokenizer", path))
sources.check_tokenizer = lambda *a: None
sources.Mixture = lambda srcs, weights, seed: ("mixture", srcs, weights)
objective = types.SimpleNamespace(name="lm", example="lm",
                                  make_source=lambda records, tok, data, model: records)
model = types.SimpleNamespace(image_size=336)
src = sources.make_source(c.data, objective, model, 0)
print(json.dumps(dict(name=c.data.name, mixture=c.data.mixture, source=repr(src), read=read)))
"""


def test_mixture_sweep_runs_read_their_mixture():
  mod, runs = sweep.load_sweep("configs/sweeps/mixture.py")
  assert len(runs) == 4
  for run in (runs[0], runs[-1]):
    args = sweep.trainer_args(mod.BASE, mod.FLAGS, run, "W")
    assert args[0].startswith("--config=") and args[-1] == "--workdir=W"
    config = ["--config", configs.resolve(args[0].split("=", 1)[1])]
    out = subprocess.run([sys.executable, "-c", _RUN_CONFIG, *config, *args[1:-1]],
                         capture_output=True, text=True, cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=ROOT), timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["name"] not in ("synthetic", "stream")
    assert got["mixture"] == run["config.data.mixture"]
    weights = [float(w.split("=")[1]) for w in run["config.data.mixture"].split(",")]
    assert got["source"] == repr(("mixture", ["mathv360k", "mavis_instruct"], weights))
    # the worker-local copy launch/tpu_vm.sh's DATA_FROM fills, with the tokenizer beside it
    assert ["/tmp/mathvlm-data", "mathv360k"] in got["read"]
    assert ["tokenizer", "/tmp/mathvlm-data/llava7b"] in got["read"]


@pytest.mark.parametrize("path", ["/tmp/mathvlm-no-such-dir/llava13b", "./no-such-tokenizer",
                                  "/tmp/mathvlm-no-such-dir/tokenizer.json"])
def test_a_missing_tokenizer_path_is_named(path):
  from mathvlm.data.sources import load_tokenizer
  with pytest.raises(FileNotFoundError, match=rf"data\.tokenizer='{path}': no such file"):
    load_tokenizer(path)


def test_complexity_ratio_paper_command_reads_the_tokenizer_from_the_data_copy():
  from mathvlm.configs.sweeps import complexity_ratio
  doc = complexity_ratio.__doc__.replace("\\\n", "")
  assert "tokenizer=/tmp/mathvlm-data/llava13b" in doc and "tokenizer=/tmp/llava13b" not in doc
