"""The demo's data, made here and offline: engine problems (train, held-out test, and variants of
held-out seed problems for the dynamic benchmark), a BPE tokenizer trained on their text, and the
ArrayRecord datasets the trainer reads, built by the same `data_prep` commands a user runs on the
MAVIS release. The demo is an application: it runs those commands (printed as it goes) rather
than importing `data_prep`, which the library never does.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys

# ../shared/data beside the checkout: real benchmark files (MATH-Vision testmini).
SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared",
                      "data")

# <image> sits at id 3 as in the `tiny`/`demo` presets; </s> is not id 2, so CLIP's text tower
# pools at the EOS token (id 2 means OpenAI's old "argmax id" convention).
SPECIALS = ("<pad>", "<s>", "<unk>", "<image>", "</s>")


def train_tokenizer(texts, vocab_size: int):
  """Byte-level BPE with single digits (numbers stay legible to a small model), LLaVA's specials.
  A `tokenizers.Tokenizer`; `.save()` writes the tokenizer.json every loader here reads."""
  from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
  tok = Tokenizer(models.BPE(unk_token="<unk>"))
  tok.pre_tokenizer = pre_tokenizers.Sequence([
      pre_tokenizers.Digits(individual_digits=True),
      pre_tokenizers.ByteLevel(add_prefix_space=False)])
  tok.decoder = decoders.ByteLevel()
  trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIALS),
                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                show_progress=False)
  tok.train_from_iterator(texts, trainer)
  return tok


def add_bos(tok) -> None:
  """BOS in front of every encoding, as Llama's tokenizer (LLaVA's templates expect it)."""
  from tokenizers import processors
  bos = tok.token_to_id("<s>")
  tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B",
                                                     special_tokens=[("<s>", bos)])


def engine_texts(problems, captions) -> list[str]:
  out = [c["conversations"][1]["value"] for c in captions]
  for r in problems:
    t = r["text_en"]
    out += [t["text_dominant_question"], t["text_lite_question"], t["vision_dominant_question"],
            t["CoT_reasoning"]]
  return out


def run_command(module: str, args: list[str]) -> str:
  """`python -m MODULE ARGS` in a child process, printed first; returns its standard output."""
  print("      python -m " + " ".join([module] + args), flush=True)
  done = subprocess.run([sys.executable, "-m", module] + args, stdout=subprocess.PIPE, text=True)
  if done.returncode:
    raise SystemExit(f"python -m {module} failed (exit {done.returncode}); its output is above")
  print(done.stdout, end="", flush=True)
  return done.stdout


def engine_source() -> str:
  """sha256 over the engine's sources (the `data_prep.engine` package and the answer module it
  imports), found without importing them: what made a directory of engine data."""
  pkg = importlib.util.find_spec("data_prep").submodule_search_locations[0]
  engine = os.path.join(pkg, "engine")
  files = [os.path.join(engine, f) for f in sorted(os.listdir(engine)) if f.endswith(".py")]
  h = hashlib.sha256()
  for f in files + [importlib.util.find_spec("mathvlm.eval.answers").origin]:
    h.update(os.path.basename(f).encode() + b"\0" + open(f, "rb").read())
  return h.hexdigest()


def engine_set(d: str, n: int, seed: int, workers: int, split: str, variants: int = 1,
               steps: str | None = None, option_kinds: str = "same",
               wrong_rationales: bool = False) -> dict:
  """`python -m data_prep.engine` into D unless D holds what this call asks for (a rerun
  resumes): these n x variants records, of this seed and split, with these steps, made by this
  engine (D/made_by.json; another seed, or an engine that draws other problems, remakes them:
  reusing them would report one run's data under another's settings). Returns meta.json. steps:
  the engine's MIN:MAX reasoning depth (whatever was made when None); option_kinds: the
  engine's --option_kinds; wrong_rationales: its --wrong_rationales (the same problems, each
  with a rationale that has one mistake)."""
  path, stamp_path = os.path.join(d, "meta.json"), os.path.join(d, "made_by.json")
  want = [int(x) for x in steps.split(":")] if steps else None
  stamp = {"n": n * variants, "variants": variants, "seed": seed, "split": split,
           "option_kinds": option_kinds, "engine_source": engine_source()}
  if wrong_rationales:  # only when asked: the stamps of folders made without stay as they were
    stamp["wrong_rationales"] = True
  made = load_json(path) if os.path.exists(path) else None
  by = load_json(stamp_path) if os.path.exists(stamp_path) else None
  if not (made and by == stamp and want in (None, made.get("steps"))):
    run_command("data_prep.engine", ["--domain", "all", "--n", str(n), "--out", d, "--seed",
                                     str(seed), "--workers", str(workers), "--split", split]
                + (["--variants", str(variants)] if variants > 1 else [])
                + (["--steps", steps] if steps else [])
                + ["--option_kinds", option_kinds]
                + (["--wrong_rationales"] if wrong_rationales else []))
    with open(stamp_path, "w") as f:
      json.dump(stamp, f)
  return load_json(path)


def generate_engine(out: str, n_train: int, n_test: int, seed: int, workers: int,
                    steps: dict | None = None) -> dict:
  """OUT/engine/{train,test}: instruct.json, caption.json, images, meta.json. The test split holds
  problems whose content hash falls on the other side, so no test problem is a training one.
  steps: the engine's --steps per split ('train', 'test'), its default where absent."""
  return {split: engine_set(os.path.join(out, "engine", split), n, seed, workers, split,
                            steps=(steps or {}).get(split))
          for split, n in (("train", n_train), ("test", n_test))}


def generate_variants(out: str, n_seeds: int, variants: int, seed: int, workers: int) -> dict:
  """OUT/engine/dynamic: `variants` variants of each of n_seeds test-split seed problems, for
  `mathvlm.eval.engine_dynamic`. Same seed and split as OUT/engine/test, so no seed is a
  training problem (variants: `seen_in_training`); variant 0 of seed i is held-out problem i
  (same draws) unless another variant of its program could not be drawn, the others change its
  numbers and letters."""
  return engine_set(os.path.join(out, "engine", "dynamic"), n_seeds, seed, workers, "test",
                    variants)


def scene_key(line: str) -> str:
  """A problem's content from its scenes.jsonl line: the figure's facts, givens and target
  (letters and numbers included), so two records share it only when they ask the same thing."""
  s = json.loads(line)
  return json.dumps([s["target"], s["givens"], [f["text"] for f in s["facts"]]], sort_keys=True)


def seen_in_training(out: str) -> set[str]:
  """Ids of OUT/engine/dynamic records whose content is a training problem's. The engine's
  content-hash split checks a seed problem (variant 0) only; variants 1..K-1 get new numbers and
  letters whose hash nobody checks, and the function domain's small value ranges repeat problems
  (about one training function problem in ten appears twice), so this is measured, not assumed."""
  with open(os.path.join(out, "engine", "train", "scenes.jsonl")) as f:
    train = {scene_key(line) for line in f if line.strip()}
  with open(os.path.join(out, "engine", "dynamic", "scenes.jsonl")) as f:
    rows = [line for line in f if line.strip()]
  return {json.loads(line)["id"] for line in rows if scene_key(line) in train}


def load_json(path: str):
  with open(path) as f:
    return json.load(f)


def build(builder: str, args: list[str]) -> dict:
  """Runs `python -m data_prep.<builder> ARGS`; returns the report.json it wrote."""
  run_command(f"data_prep.{builder}", args + ["--no_progress"])
  out = args[args.index("--out") + 1]
  with open(os.path.join(out, builder, "report.json")) as f:
    return json.load(f)


def build_all(out: str, image_size: int, versions: list[str], answer: str) -> dict:
  """mavis_caption (train, test) and mavis_instruct (train) under OUT/data and OUT/data_test."""
  eng = os.path.join(out, "engine")
  common = ["--image_size", str(image_size)]
  reports = {
      "caption_train": build("mavis_caption", ["--json", f"{eng}/train/caption.json", "--images",
                                               f"{eng}/train", "--out", f"{out}/data"] + common),
      "caption_test": build("mavis_caption", ["--json", f"{eng}/test/caption.json", "--images",
                                              f"{eng}/test", "--out", f"{out}/data_test"] + common),
      "instruct_train": build("mavis_instruct", ["--src", f"{eng}/train/instruct.json",
                                                 "--images", f"{eng}/train", "--out",
                                                 f"{out}/data", "--versions", *versions,
                                                 "--answer", answer] + common),
  }
  return reports


def engine_preference_pairs(problems_path: str, version: str, style: str, path: str) -> dict:
  """Stage 4's pairs with the engine's rejected side (`dpo_pairs --rejected engine`): the same
  prompt and chosen answer, rejected the problem's wrong rationale in the trained style."""
  return _dpo_pairs(["--rejected", "engine", "--problems", problems_path, "--out", path,
                     "--answer", style, "--version", version])


def preference_pairs(problems_path: str, responses: dict[str, str], version: str,
                     style: str, path: str) -> dict:
  """MAVIS stage 4's pairs from the model's own answers, by `python -m data_prep.engine.dpo_pairs`
  (the evaluation's judge decides right or wrong): the prompt is the instruction-tuning human
  turn, chosen the annotated answer in the trained style, rejected the model's."""
  responses_path = path + ".responses.jsonl"
  with open(responses_path, "w") as f:
    for k, v in responses.items():
      f.write(json.dumps({"id": k, "response": v, "version": version}) + "\n")
  return _dpo_pairs(["--problems", problems_path, "--responses", responses_path, "--out", path,
                     "--answer", style])


def _dpo_pairs(args: list[str]) -> dict:
  """`python -m data_prep.engine.dpo_pairs ARGS`; returns the counts it prints last."""
  stdout = run_command("data_prep.engine.dpo_pairs", args)
  return json.loads(stdout.strip().splitlines()[-1])
