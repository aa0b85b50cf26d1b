"""The engine's own wrong rationales (`--wrong_rationales`), DPO's rejected side without a model:
the same problems as a run without them, each a worked chain with one mistake in its reasoning
(never in its arithmetic), ending on a wrong answer, an option for multiple choice; and the pairs
`dpo_pairs --rejected engine` makes of them."""

from __future__ import annotations

import json
import os
import re

import pytest

from data_prep.engine import dpo_pairs, exact, writer
from folders import snapshot
from test_engine_notation import STEP, _gap, _radians

PROGRAM = re.compile(r"\*|sqrt|Abs|\bpi\b|\bq\d|[{}]")  # a slip's machine form leaking through
LAST = re.compile(r"The answer is (.+?)(?: \(≈ [^)]*\))?(?:, which is option ([A-H]))?\.$")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """The same 36 problems (all domains, several depths) with and without wrong rationales."""
  out = {}
  for flag in (False, True):
    d = str(tmp_path_factory.mktemp(f"wrong_{flag}"))
    writer.generate(d, 36, writer.Options(seed=12, steps=(1, 5), wrong_rationales=flag), 2)
    out[flag] = d
  return out


def test_a_run_with_wrong_rationales_writes_the_same_problems(runs):
  """The wrong rationale is worked after the problem is made, on copies of its steps: worked on
  the steps themselves (`d.value = ...`), it rewrote the chain scenes.jsonl records."""
  plain, wrong = snapshot(runs[False]), snapshot(runs[True])
  assert set(plain) == set(wrong)
  for name in plain:
    if name not in ("instruct.json", "meta.json"):
      assert plain[name] == wrong[name], name
  records = json.loads(wrong["instruct.json"])
  stripped = [{k: v for k, v in r.items() if k != "wrong_rationale"} for r in records]
  assert stripped == json.loads(plain["instruct.json"])
  meta = json.loads(wrong["meta.json"])
  assert meta.pop("wrong_rationales") == sum(r["wrong_rationale"] is not None for r in records)
  assert meta == json.loads(plain["meta.json"])


def _worked_soundly(records: list) -> tuple:
  """Checks each record's wrong rationale; returns (mistake kinds seen, steps read back)."""
  kinds, read = set(), 0
  for r in records:
    w = r["wrong_rationale"]
    lines = w["CoT_reasoning"].split("\n")
    last = LAST.fullmatch(lines[-1])
    assert last and last.group(1) == w["answer"] != r["answer"], (r["id"], lines[-1])
    if r["choices"]:  # lands on a wrong option, by its letter
      assert last.group(2) and r["choices"][ord(last.group(2)) - 65] == w["answer"], r["id"]
      assert ord(last.group(2)) - 65 != r["answer_index"], r["id"]
    else:
      assert last.group(2) is None
    parts = STEP.match(lines[-2]).group(1).split(" = ")
    assert parts[-1].split(" ≈ ")[0] == w["answer"], (r["id"], lines[-2])  # the chain's end
    for line in lines[:-1]:  # every step's arithmetic holds: the mistake is in the reasoning
      parts = [p.split(" ≈ ")[0] for p in STEP.match(line).group(1).split(" = ")]
      if len(parts) >= 3 and "°" not in parts[-1]:
        gap = _gap(_radians(parts[-2]), parts[-1])
        read += gap is not None
        assert gap is None or gap < 1e-6, (r["id"], line)
    assert not PROGRAM.search(w["CoT_reasoning"]), (r["id"], w["CoT_reasoning"])
    chosen = r["text_en"]["CoT_reasoning"].split("\n")
    kinds.add(w["kind"])
    if w["kind"] != "other_quantity":  # one wrong turn: the steps before it agree
      first = next((i for i, (a, b) in enumerate(zip(lines, chosen)) if a != b), len(lines))
      assert lines[:first] == chosen[:first] and first < len(lines) - 1, r["id"]
  return kinds, read


def test_each_wrong_rationale_is_worked_soundly_to_a_wrong_answer(runs):
  records = json.loads(snapshot(runs[True])["instruct.json"])
  made = [r for r in records if r["wrong_rationale"]]
  assert len(made) >= 0.8 * len(records), len(made)
  kinds, read = _worked_soundly(made)
  assert read >= 2 * len(made), read
  assert {"other_quantity", "swap", "formula"} <= kinds, kinds


def test_with_options_from_wrong_reasoning_a_wrong_turn_lands_on_one(tmp_path):
  """`--wrong_options figure+mistakes`: where a figure has no option set, its options are
  answers of mistaken chains, and a wrong rationale must end on one of them."""
  opts = writer.Options(seed=13, mc=1.0, wrong_options="figure+mistakes", wrong_rationales=True,
                        steps=(2, 5))
  writer.generate(str(tmp_path), 30, opts)
  records = json.loads((tmp_path / "instruct.json").read_text())
  made = [r for r in records if r["wrong_rationale"] and r["choices"]]
  assert len(made) >= 20, len(made)
  kinds, _ = _worked_soundly(made)
  assert kinds - {"other_quantity"}, kinds  # some from a wrong turn, not only another quantity


def test_dpo_pairs_from_the_engine(runs, tmp_path):
  problems = os.path.join(runs[True], "instruct.json")
  out = str(tmp_path / "pairs.jsonl")
  stats = dpo_pairs.main(["--rejected", "engine", "--problems", problems, "--out", out,
                          "--answer", "value"])
  records = json.load(open(problems))
  rows = [json.loads(line) for line in open(out)]
  assert stats["pairs"] == len(rows) == sum(r["wrong_rationale"] is not None for r in records)
  assert stats["no_wrong_rationale"] == len(records) - len(rows)
  assert sum(stats["kinds"].values()) == len(rows) and None not in stats["kinds"]
  by_id = {r["id"]: r for r in records}
  for row in rows:
    rec = by_id[row["id"].split(":")[0]]
    assert row["rejected"] == f"The answer is {rec['wrong_rationale']['answer']}."
    assert row["kind"] == rec["wrong_rationale"]["kind"]
    assert row["chosen"] != row["rejected"] and row["image"] == rec["image_vision_dominant"]
  for style in ("cot", "final"):  # the rejected side in the chosen side's style
    rows, _ = dpo_pairs.engine_pairs(records, style, "text_lite")
    for row in rows:
      rec = by_id[row["id"].split(":")[0]]
      wrong = rec["wrong_rationale"]["CoT_reasoning"]
      assert row["rejected"] == (wrong if style == "cot" else wrong.split("\n")[-1])
      assert row["image"] == rec["image_text_lite"]


def test_dpo_pairs_from_the_engine_name_problems_made_without_them(runs, tmp_path):
  with pytest.raises(ValueError, match="--wrong_rationales"):
    dpo_pairs.main(["--rejected", "engine", "--out", str(tmp_path / "p.jsonl"), "--problems",
                    os.path.join(runs[False], "instruct.json")])
  problems = ["--problems", os.path.join(runs[True], "instruct.json"), "--out",
              str(tmp_path / "p.jsonl")]
  for mixed_up in ([], ["--rejected", "engine", "--responses", "r.jsonl"],
                   ["--responses", "r.jsonl", "--version", "text_lite"]):
    with pytest.raises(SystemExit):  # each way's own inputs only: none ignored silently
      dpo_pairs.main(problems + mixed_up)


def test_a_wrong_turn_carried_past_the_reals_is_not_written():
  """A swap carried forward can make a later step the root of a negative: its decimal could not
  be written, and problem 11 of this run stopped the whole run (`Cannot convert complex to
  float`). Such a mistake is passed over for the next one."""
  opts = writer.Options(seed=1, domain="analytic", wrong_rationales=True)
  w = writer.make_problem(opts, 11)[0]["record"]["wrong_rationale"]
  assert w is not None and "I" not in w["CoT_reasoning"] and "i" not in w["answer"]


SUBSTITUTED = re.compile(r"[Ss]ubstitute x = ([^:]+?)(?: into [^:]*)?: (f'?)\((.+?)\) = ")
TANGENT = re.compile(r"The tangent y = f'\((.+?)\)·.* at x = 0: y₀\((.+?)\) = ")


def test_function_free_form_problems_get_a_wrong_turn_written_from_its_own_values(tmp_path):
  """A function's substitution steps were written from the right f and x whatever the step was
  worked with, so no free-form function problem had a wrong rationale (0 of 90 at seeds 3 and 5).
  Their templates, reasons and names (f(2), y₀(2), rate[1, 2]) are now written from the values
  worked with: a misread x = 2 read as 3 writes `Substitute x = 3 ...: f(3) = ...`."""
  opts = writer.Options(seed=3, domain="function", mc=0.0, wrong_rationales=True, steps=(1, 6))
  writer.generate(str(tmp_path), 24, opts)
  records = [r for r in json.loads((tmp_path / "instruct.json").read_text())
             if r["question_type"] == "free_form" and r["answer"][:1] != "("]  # no intervals
  made = [r for r in records if r["wrong_rationale"]]
  assert len(made) >= 0.6 * len(records) >= 10, (len(made), len(records))
  _worked_soundly(made)  # every step's arithmetic holds with the values written
  said = 0
  for r in made:
    text = r["wrong_rationale"]["CoT_reasoning"]
    points = set()
    for at, _, name in SUBSTITUTED.findall(text):
      assert at == name, (r["id"], at, name)  # the step's name holds the x substituted
      points.add(at)
    for at, name in TANGENT.findall(text):
      assert at == name, (r["id"], at, name)
    read = re.fullmatch(r"(?:read x = (.+) as (.+)|substituted x = (.+) for x = (.+))",
                        r["wrong_rationale"]["mistake"])
    if read:
      was, now = (read[1], read[2]) if read[1] else (read[4], read[3])
      assert now in points and was not in points, (r["id"], points)
    said += bool(points)
  assert said >= 0.8 * len(made), said


def test_a_formula_slip_is_written_as_people_write_formulas():
  """A slip's machine form (`Deriv.slips`) becomes the template the wrong step writes: slots,
  ·, roots, absolute values, log₂ and angles in degrees as the right templates have them; a
  slip made with sympy's machinery has no written form and is not used."""
  assert exact.slip_template("2*(q0 + q1)") == "2 · ({0} + {1})"
  assert exact.slip_template("q0*q1*cos(q2*pi/180)/2") == "{0} · {1} · cos({2}) / 2"
  assert exact.slip_template("2*q0*cos(q1*pi/360)") == "2 · {0} · cos({1} / 2)"
  assert exact.slip_template("sqrt(Abs(q0**2 - q1**2))") == "√(|{0}² - {1}²|)"
  assert exact.slip_template("sqrt(3)*q0**2/2") == "√3 · {0}² / 2"
  assert exact.slip_template("(q0 + q1)/log(q2 - q3, 2)") == "({0} + {1}) / log₂({2} - {3})"
  assert exact.slip_template("-q0/q1*sin(q1*x + q2) + q3*x") == (
      "-{0} / {1} · sin({1} · x + {2}) + {3} · x")
  for unwritten in ("q0.subs(x, q1) - constant_term(q0)", "power_slip(q0)", "Min(*q0)",
                    "q2 + 2**(q1/q0)", "diff(q0, x)*log(2)**2", "180 - q0*pi/180",
                    "log(q0, 10)"):
    assert exact.slip_template(unwritten) is None, unwritten
  # an angle (input 1) outside a trig function: 60° · π · 8 / 360 would read as radians
  assert exact.slip_template("q1*pi*q0/360", angles=(1,)) is None
  assert exact.slip_template("q0*sin(q1*pi/180)", angles=(1,)) == "{0} · sin({1})"


def test_formula_slips_give_every_free_form_plane_problem_a_wrong_rationale(tmp_path):
  """A chain with no other quantity of a kind to swap in and no given to misread (an
  equilateral triangle's perimeter from one side) is made wrong only by a formula slip: before
  slips were written, 9 of these 40 problems had no wrong rationale (12 and 14 of 40 at seeds 32
  and 33); now every one has."""
  opts = writer.Options(seed=31, domain="plane", mc=0.0, wrong_rationales=True, steps=(1, 6))
  writer.generate(str(tmp_path), 40, opts)
  records = json.loads((tmp_path / "instruct.json").read_text())
  made = [r for r in records if r["wrong_rationale"]]
  assert len(made) == len(records) == 40, len(made)
  kinds, _ = _worked_soundly(made)  # every slip's formula, with its values, gives its value
  assert "formula" in kinds, kinds
  for r in made:
    if r["wrong_rationale"]["kind"] == "formula":
      wrong, right = (x.split("\n") for x in (r["wrong_rationale"]["CoT_reasoning"],
                                               r["text_en"]["CoT_reasoning"]))
      at = next(i for i, (a, b) in enumerate(zip(wrong, right)) if a != b)
      assert wrong[at].split(": ")[0] == right[at].split(": ")[0]  # the same reason, and
      assert wrong[at].split(" = ")[1] != right[at].split(" = ")[1], (wrong[at], right[at])
