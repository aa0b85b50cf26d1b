"""MATH-Vision: loader, prompt, the official rule-based answer extraction and `is_equal`, scores.

The extraction and comparison follow `evaluation/evaluate.py` and `evaluation/utils.py` of
mathllm/MATH-V line by line (including their quirks: `0.5` becomes `\\frac{1}{2}`, a tuple of
`3.0` is not a tuple of `3`), so that re-scoring a published `outputs/*.jsonl` from `response`
reproduces its `*_result.json`. The one substitution is latex2sympy2 -> `mathvlm.eval.latex`.
Scores use the official keys: `-all`, `-levelN`, `<subject>`, `<subject>_levelN`,
`-levelN_<subject>`, each "c/n=x%".
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from mathvlm.eval import latex
from mathvlm.eval.common import Problem, entry, read_text, tally

NAME = "math_v"


# ---------------------------------------------------------------------------------------------
# Loading and prompting.

def load(path: str, images_dir: str | None = None, prompt: str = "direct") -> list[Problem]:
  """Problems from a MATH-Vision `test.jsonl` / `testmini.jsonl` (images relative to its folder);
  prompt: one of PROMPTS (`build_query`)."""
  if prompt not in PROMPTS:
    raise ValueError(f"MATH-Vision prompt {prompt!r}: expected one of {PROMPTS}")
  images_dir = images_dir or os.path.dirname(os.path.abspath(path))
  problems = []
  for n, line in enumerate(read_text(path).split("\n"), 1):
    if not line.strip():
      continue
    r = _record(line, f"{path}:{n}")
    pid, answer, options = str(r["id"]), str(r["answer"]), list(r.get("options") or [])
    if options and not ("A" <= answer <= chr(ord("A") + len(options) - 1)):
      raise ValueError(f"{path}:{n} (id {pid}): answer {answer!r} is not one of the option "
                       f"letters of {options}")
    image = r.get("image")
    problems.append(Problem(
        pid=pid, question=r["question"], answer=answer, choices=options,
        images=[os.path.join(images_dir, image)] if image else [],
        query=build_query(r, prompt), meta={"level": r["level"], "subject": r["subject"]}, raw=r))
  return problems


_FIELDS = "expected JSON with id, question, options, answer, level, subject, image"


def _record(line: str, where: str) -> dict[str, Any]:
  """One line as a record, its fields checked: a null answer would be the gold answer "None", an
  options string would be split into letters, and a missing question a bare KeyError later."""
  try:
    r = json.loads(line)
  except json.JSONDecodeError as e:
    raise ValueError(f"{where}: not a MATH-Vision record ({e}); {_FIELDS}") from e
  if not isinstance(r, dict):
    raise ValueError(f"{where}: a JSON {type(r).__name__}, not a MATH-Vision record; {_FIELDS}")
  missing = [k for k in ("id", "question", "answer", "level", "subject") if r.get(k) is None]
  if missing:
    raise ValueError(f"{where} (id {r.get('id')}): not a MATH-Vision record, {missing} missing "
                     f"or null; {_FIELDS}")
  wrong = [k for k, ok in (("question", isinstance(r["question"], str)),
                           ("answer", isinstance(r["answer"], (str, int, float))),
                           ("options", isinstance(r.get("options") or [], list))) if not ok]
  if wrong:
    raise ValueError(f"{where} (id {r['id']}): {', '.join(f'{k} is {r[k]!r:.60}' for k in wrong)}"
                     "; question and answer are text, options a list of option texts")
  return r


# The repo's two prompts (`models/`): "direct" is GPT4V.py's `geninput` and Qwen-VL.py's
# `process_example`, the one the published short-answer outputs (LLaVA-1.5, SPHINX: "90", "A")
# were made with; "cot" is GPT4.py's and Qwen-VL.py's `geninput`, the "-CoT" outputs'.
PROMPTS = ("direct", "cot")
_DIRECT = "Answer the question using a single word or phrase."
_COT = ('Please solve the problem step by step and put your answer in one "\\boxed{}". If it is '
        'a multiple choice question, only one letter is allowed in the "\\boxed{}".\n')


def build_query(r: dict[str, Any], prompt: str = "direct") -> str:
  """The official prompt, as the repo writes it: the question as given, its `<imageN>` tags kept
  (the published LLaVA-1.5 and SPHINX outputs answer "<image2>" dozens of times: the models saw
  them), then the options as `(A) ...` lines, each ending in a newline, unless they are the bare
  letters A-E (the choices are drawn in the image: the repo lists nothing then), then the
  instruction ("direct") or, with the instruction in front, nothing ("cot")."""
  options = list(r.get("options") or [])
  listed = "" if "".join(options) == "ABCDE" else "".join(
      f"({chr(ord('A') + i)}) {o}\n" for i, o in enumerate(options))
  if prompt == "cot":
    return f"{_COT}{r['question']}\n{listed}"
  return f"{r['question']}\n{listed}\n{_DIRECT}"


# ---------------------------------------------------------------------------------------------
# Official extraction (evaluate.py) and comparison (utils.py).

def is_number(s: str) -> bool:
  try:
    float(s)
    return True
  except ValueError:
    return False


def _round_eval(s: str):
  return round(latex.to_number(s), 2)


def eval_tuple(s: str) -> str:
  """"(a,b)" / "[a,b]" with each element evaluated and rounded to 2 decimals."""
  sl = s[1:-1].split(",")
  try:
    if len(sl) > 1 and ((s[0] == "(" and s[-1] == ")") or (s[0] == "[" and s[-1] == "]")):
      body = ",".join(str(_round_eval(sub)) if "infty" not in sub and sub not in ("a", "-a")
                      else sub for sub in sl)
      return f"{s[0]}{body}{s[-1]}"
  except (latex.NotANumber, ArithmeticError, ValueError, OverflowError, IndexError):
    return s
  return s


def is_equal(asw: str, gt_asw: str) -> bool:
  """Case-insensitive; tuples/lists elementwise; else numeric after LaTeX, rounded to 2 places."""
  asw, gt_asw = asw.lower(), gt_asw.lower()
  if asw.replace(" ", "") == "" or gt_asw.replace(" ", "") == "":
    return False
  if gt_asw.strip() == asw.strip():
    return True
  asw, gt_asw = eval_tuple(asw), eval_tuple(gt_asw)
  if gt_asw == asw:
    return True
  try:
    return _round_eval(gt_asw) == _round_eval(asw)
  except (latex.NotANumber, ArithmeticError, ValueError, OverflowError, TypeError):
    return False


def _fix_fracs(string: str) -> str:
  substrs = string.split("\\frac")
  new_str = substrs[0]
  for substr in substrs[1:]:
    new_str += "\\frac"
    if substr and substr[0] == "{":
      new_str += substr
      continue
    if len(substr) < 2:
      return string
    a, b = substr[0], substr[1]
    if b != "{":
      new_str += "{" + a + "}{" + b + "}" + substr[2:]
    else:
      new_str += "{" + a + "}" + b + substr[2:]
  return new_str


def _fix_a_slash_b(string: str) -> str:
  if len(string.split("/")) != 2:
    return string
  a, b = string.split("/")
  try:
    a, b = int(a), int(b)
  except ValueError:
    return string
  if string != f"{a}/{b}":
    return string
  return "\\frac{" + str(a) + "}{" + str(b) + "}"


def _fix_sqrt(string: str) -> str:
  if "\\sqrt" not in string:
    return string
  splits = string.split("\\sqrt")
  new_string = splits[0]
  for split in splits[1:]:
    if split and split[0] != "{":
      new_string += "\\sqrt{" + split[0] + "}" + split[1:]
    else:
      new_string += "\\sqrt" + split
  return new_string


def _strip_string(string: str) -> str:
  string = string.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
  string = string.replace("tfrac", "frac").replace("dfrac", "frac")
  string = string.replace("\\left", "").replace("\\right", "")
  string = string.replace("^{\\circ}", "").replace("^\\circ", "")
  string = string.replace("\\$", "").replace("$", "")
  string = string.split("\\text{ ")[0]
  string = string.replace("\\%", "")
  string = string.replace(" .", " 0.").replace("{.", "{0.")
  if not string:
    return string
  if string[0] == ".":
    string = "0" + string
  if len(string.split("=")) == 2:
    string = string.split("=")[-1]
  if len(string.split("\\approx")) == 2:
    string = string.split("\\approx")[-1]
  if "sqrt" in string:
    string = _fix_sqrt(string)
  string = string.replace(" ", "")
  if "sqrt" in string:
    string = _fix_fracs(string)
  if string == "0.5":
    string = "\\frac{1}{2}"
  return _fix_a_slash_b(string)


def find_math_answer(s: str) -> str:
  """The answer inside the last `\\boxed{}` (greedy, as the original), cleaned of LaTeX dressing."""
  s = s.lower()
  s = s.replace("{}", "")
  found = re.findall("oxed{(.*)}", s, flags=re.S)
  ans = found[-1] if found else s
  if ans.find("}") != -1 and (ans.find("{") == -1 or ans.find("}") < ans.find("{")):
    ans = ans.split("}")[0]
  ans = ans.split("=")[-1].split("\\approx")[-1]
  ans = ans.replace(" ", "").replace("\\,", "").replace("∞", "\\infty")
  ans = ans.replace("+\\infty", "\\infty").replace("\\\\", "\\").replace("\n", "")
  ans = ans.replace("\\text", "").replace("\\mbox", "").replace("bmatrix", "pmatrix")
  ans = ans.replace("\\left", "").replace("\\right", "").replace("^{\\circ}", "")
  ans = ans.replace("^\\circ", "").replace("{m}^3", "").replace("m^3", "")
  ans = ans.replace("{units}", "").replace("units", "").replace("{km}", "").replace("km", "")
  return _strip_string(ans)


_FLAGS = ("the final answer is", "the answer is", "the correct answer is", "the answer should be")


def extract(response: str | None, problem: Problem | None = None) -> str:
  """The model answer from a free-text response (evaluate.py's rules, without any API); the
  problem is not needed (the signature matches the other benchmarks')."""
  model_answer = (response or "").strip()
  for c in "ABCDE":
    if (model_answer.endswith(f" {c}.") or model_answer.endswith(f" ({c}).")
        or model_answer.startswith(f"{c}\n") or model_answer.startswith(f"({c})\n")
        or model_answer.startswith(f"({c}) {c}\n")):
      model_answer = c
  tail = model_answer.split("is ")[-1].rstrip(".")
  if is_number(tail):
    model_answer = tail
  if "oxed{" not in model_answer:
    for flag in _FLAGS:
      for f in (flag, flag.replace("the", "The")):
        raw = model_answer
        model_answer = model_answer.split(f)[-1].strip()
        if f in raw:
          model_answer = model_answer.split("\n")[0].split(". ")[0]
  elif model_answer.count("oxed{") > 1:
    model_answer = "\\boxed{" + model_answer.split("oxed{")[-1]
  model_answer = find_math_answer(model_answer)
  for c in "abcde":
    model_answer = model_answer.replace(f"({c})", c).replace("{" + c + "}", c)
  return model_answer.rstrip(".").lstrip(":").strip()


def judge(problem: Problem, model_answer: str) -> bool:
  """Correct when the answer equals the gold letter or the gold option's text."""
  gt = problem.answer
  gt_value = problem.choices[ord(gt) - ord("A")] if problem.choices else ""
  return is_equal(gt, model_answer) or is_equal(gt_value, model_answer)


# ---------------------------------------------------------------------------------------------
# Scores and files.

def breakdown_keys(problem: Problem) -> list[str]:
  level, subject = problem.meta["level"], problem.meta["subject"]
  return ["-all", f"-level{level}", f"{subject}", f"{subject}_level{level}",
          f"-level{level}_{subject}"]


def official_scores(problem_by_id: dict[str, Problem], correct: dict[str, bool]) -> dict[str, str]:
  """`math_level_subject_acc`'s `*_result.json`: {key: "c/n=x%"}, keys sorted."""
  counts = tally(((breakdown_keys(problem_by_id[pid]), ok) for pid, ok in correct.items()))
  out = {}
  for key in sorted(counts):
    c, n = counts[key]
    out[key] = f"{c}/{n}={round(c / max(n, 1) * 100, 2)}%" if n else f"{c}/{n}=0"
  return out


def parse_official(value: str) -> tuple[int, int]:
  """"c/n=x%" -> (c, n)."""
  m = re.match(r"\s*(\d+)/(\d+)=", value)
  if not m:
    raise ValueError(f"not a MATH-Vision score string: {value!r} (expected 'c/n=x%')")
  return int(m.group(1)), int(m.group(2))


def scores(problems: dict[str, Problem], correct: dict[str, bool]) -> dict[str, Any]:
  """{"all", "level", "subject", "subject_level"} as {correct, total, accuracy%}, plus
  "official": the `*_result.json` dict with its "-all" keys."""
  out: dict[str, Any] = {"all": entry(sum(correct.values()), len(correct))}
  groups = {"level": lambda p: f"level{p.meta['level']}", "subject": lambda p: p.meta["subject"],
            "subject_level": lambda p: f"{p.meta['subject']}_level{p.meta['level']}"}
  for key, fn in groups.items():
    counts = tally(([fn(problems[pid])], ok) for pid, ok in correct.items())
    out[key] = {v: entry(*c) for v, c in sorted(counts.items())}
  out["official"] = official_scores(problems, correct)
  return out


def output_record(problem: Problem, response: str, model_answer: str, ok: bool) -> dict:
  """One line of the official `outputs/*.jsonl`: id, response, model_answer, correct."""
  return {"id": problem.pid, "response": response, "model_answer": model_answer, "correct": ok}
