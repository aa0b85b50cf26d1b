"""The command lines README.md and the docs it links show (`python -m MODULE --flag VALUE ...`,
`python launch/sweep.py ...`) name entry points that exist, flags those entry points define, a
value a flag's fixed choices allow, and `--config.*` fields the named recipe has: a user copies
them as they are. Read from the sources, not by running `--help` (35 entry points, a minute of
imports): a flag counts as defined where the module, or a module of this repository it imports,
passes it to argparse's `add_argument` or absl's `DEFINE_*`."""

import ast
import functools
import os
import re
import shlex

import pytest

from train_utils import ROOT

DOCS = ["README.md", "docs/eval/RUN.md", "docs/eval/SCORER.md", "docs/recipe/MATH_LLAVA_DATA.md",
        "docs/recipe/SWEEPS.md", "docs/engine/README.md"]
OURS = ("mathvlm", "data_prep", "benchmarks", "launch")


def shell_blocks(text: str) -> list[str]:
  """The bodies of the bash (or unlabelled) fenced blocks, continuation lines joined."""
  blocks, body = [], None
  for line in text.splitlines():
    if line.strip().startswith("```"):
      if body is None:
        body = [] if line.strip() in ("```", "```bash", "```sh") else False
      else:
        if body:
          blocks.append(re.sub(r"\\\n\s*", " ", "\n".join(body)))
        body = None
    elif body is not False and body is not None:
      body.append(line)
  return blocks


def commands(text: str) -> list[str]:
  """Every `python -m ...` or `python launch/sweep.py ...` line of the text's shell blocks and
  inline code, comments cut (`[optional]` brackets are read through)."""
  lines = [line.split(" # ")[0].strip() for block in shell_blocks(text)
           for line in block.splitlines() if not line.lstrip().startswith("#")]
  prose = re.sub(r"(?ms)^\s*```.*?^\s*```", "", text)
  spans = [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose)]
  pattern = r"python3? (-m [\w.]+|launch/sweep\.py)[^`]*"
  return [re.search(pattern, x).group(0).strip() for x in lines + spans if re.search(pattern, x)]


def module_file(name: str) -> str | None:
  base = os.path.join(ROOT, *name.split("."))
  for path in (base + ".py", os.path.join(base, "__main__.py")):
    if os.path.exists(path):
      return path
  return None


@functools.cache
def defined_flags(path: str, depth: int = 1) -> dict[str, tuple | None]:
  """flag -> (file, its `choices=` expression) or None, for the flags the file and the
  repository's modules it imports (`depth` levels) define."""
  tree = ast.parse(open(path).read())
  flags = {}
  for node in ast.walk(tree):
    if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
      name = getattr(node.func, "attr", getattr(node.func, "id", ""))
      first = node.args[0].value
      if not isinstance(first, str):
        continue
      if name == "add_argument":
        choices = next((k.value for k in node.keywords if k.arg == "choices"), None)
        for arg in node.args:
          if isinstance(arg, ast.Constant) and str(arg.value).startswith("--"):
            flags[arg.value] = choices and (path, ast.unparse(choices))
      elif name.startswith("DEFINE"):
        flags["--" + first] = None
        if name == "DEFINE_bool" or name == "DEFINE_boolean":
          flags["--no" + first] = None
  if depth:
    for node in ast.walk(tree):
      names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
               [node.module] + [f"{node.module}.{a.name}" for a in node.names]
               if isinstance(node, ast.ImportFrom) and node.module else [])
      for name in names:
        other = module_file(name) if name.split(".")[0] in OURS else None
        if other and other != path:
          flags.update({k: v for k, v in defined_flags(other, depth - 1).items()
                        if k not in flags})
  return flags


def choices_of(path: str, expression: str) -> list:
  """A `choices=` expression's values, evaluated in its module (imported: only for the few
  flags with choices that the docs show a value for)."""
  import importlib
  name = os.path.relpath(path, ROOT)[:-len(".py")].replace(os.sep, ".")
  return list(eval(expression, vars(importlib.import_module(name))))  # noqa: S307


def shown_flags(command: str) -> list[tuple[str, str | None]]:
  """(flag, the value shown after it or None), outside quoted strings (`--beam_options "..."`
  carries a runner's own flags)."""
  try:
    words = shlex.split(command.replace("[", " ").replace("]", " "))
  except ValueError:  # an unbalanced quote in a shortened command
    words = command.split()
  shown = []
  for k, word in enumerate(words):
    if not word.startswith("--") or " " in word:
      continue
    flag, _, value = word.partition("=")
    if not value and k + 1 < len(words) and not words[k + 1].startswith("-"):
      value = words[k + 1]
    shown.append((flag, value or None))
  return shown


ALL = [(doc, command) for doc in DOCS
       for command in commands(open(os.path.join(ROOT, doc)).read())]


def test_the_docs_show_the_commands_this_test_reads():
  """The extraction itself: a change of the docs' format that hid every command would pass."""
  assert len(ALL) > 80, len(ALL)
  shown = {c.split()[2] if "-m" in c.split()[:3] else "launch/sweep.py" for _, c in ALL}
  assert {"mathvlm.train", "mathvlm.convert", "mathvlm.eval.run", "data_prep.engine",
          "launch/sweep.py"} <= shown, shown


@pytest.mark.parametrize("doc,command", ALL, ids=[f"{d}:{c[:60]}" for d, c in ALL])
def test_a_shown_command_names_flags_and_values_its_entry_point_accepts(doc, command):
  words = command.split()
  name = "launch.sweep" if "launch/sweep.py" in words[1] else words[2]
  if name == "pip":
    return
  path = module_file(name)
  assert path, f"{doc}: `{command}` runs `{name}`, which is no module of this checkout"
  flags = defined_flags(path)
  for flag, value in shown_flags(command):
    if flag.startswith("--config.") or flag in ("--help", "--"):
      continue
    assert flag in flags, (f"{doc}: `{command}`: {name} defines no {flag} "
                           f"(it has {sorted(flags)})")
    if flags[flag] and value and value != "..." and not re.fullmatch(r"[A-Z_]+", value):
      choices = choices_of(*flags[flag])
      for option in re.split(r"[|,]", value.strip("{}")) if value[0] == "{" else value.split("|"):
        assert option in choices, f"{doc}: `{command}`: {flag} {option} is not one of {choices}"


def config_fields(command: str):
  """(recipe argument, [--config.* field paths]) of a trainer command, or None."""
  try:
    words = shlex.split(command.replace("...", " "))
  except ValueError:  # an unbalanced quote in a shortened command
    words = command.split()
  recipe = next((w.partition("=")[2] or words[k + 1] for k, w in enumerate(words)
                 if w.split("=")[0] == "--config"), None)
  fields = [w[len("--config."):].split("=")[0] for w in words if w.startswith("--config.")]
  return (recipe, fields) if recipe else None


TRAIN = [(doc, c) for doc, c in ALL if c.split()[2:3] == ["mathvlm.train"] and config_fields(c)]


@pytest.mark.parametrize("doc,command", TRAIN, ids=[f"{d}:{c[:60]}" for d, c in TRAIN])
def test_a_shown_trainer_command_sets_fields_its_recipe_has(doc, command):
  from mathvlm import configs
  recipe, fields = config_fields(command)
  first = re.search(r"--config[ =]", command).start()
  assert "--config." not in command[:first], (
      f"{doc}: `{command}`: a --config.* flag before --config is overwritten by the recipe "
      "(absl's FlagOrderError)")
  path, _, options = recipe.partition(":")
  config = _load(configs.resolve(path), options)
  for field in fields:
    node = config
    for part in field.split("."):
      assert part in node, f"{doc}: `{command}`: {recipe} has no field {field}"
      node = node[part]


def _load(path: str, options: str):
  import importlib.util
  spec = importlib.util.spec_from_file_location("recipe", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(options or None)
