"""Each demo stage prints "the command that reruns it" (README). The command is parsed here as
`python -m mathvlm.train` parses it, and must give the config the demo trains: a field the demo
sets but the command leaves out (a stage's start, the seed) made the pasted command train another
run, stage 3 from random weights instead of alignment's model."""

import shlex

import pytest
from absl import flags
from ml_collections import config_flags

from mathvlm import configs
from mathvlm.demo.__main__ import stage_config


def parsed_command(command: str, workdir: str):
  """The config and workdir `python -m mathvlm.train` reads from a printed command line."""
  argv = shlex.split(command.replace("WORKDIR", shlex.quote(workdir)))
  assert argv[:4] == ["python", "-m", "mathvlm.train", "--config"], argv
  argv[4] = configs.resolve(argv[4])
  argv = ["train"] + argv[3:]
  values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "recipe", flag_values=values, lock_config=True,
                                  sys_argv=argv)  # the overrides it accepts: those in argv
  flags.DEFINE_string("workdir", None, "workdir", flag_values=values)
  values(argv)
  return values.config, values.workdir


@pytest.mark.parametrize("stage,fields,seed", [
    ("sft", {"model.init_from": "/runs/demo/2_align"}, 0),
    ("align", {"model.vision_init_from": "/runs/my demo/1_clip_math"}, 3),
    ("clip_math", {}, 2),
])
def test_a_printed_stage_command_gives_the_config_the_demo_trains(stage, fields, seed):
  config, command = stage_config(stage, "/runs/demo/data", 1, True, seed, **fields)
  parsed, workdir = parsed_command(command, "/runs/my demo/3_sft")
  assert workdir == "/runs/my demo/3_sft"
  assert parsed.to_dict() == config.to_dict()
  for key, value in fields.items():
    section, name = key.split(".")
    assert parsed[section][name] == value
  assert parsed.seed == seed
