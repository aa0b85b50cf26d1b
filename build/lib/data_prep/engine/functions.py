"""Function graphs: a random function of one family, its graph, and a property deduced from it.

Families as MAVIS-Function: poly, sin, cos, tan, log, abs, plus piecewise polynomials.
Coefficients are chosen so zeros, extrema and values stay exact (rational roots, special angles,
powers of the log base). Every answer is re-checked numerically from a NumPy evaluator written
from the coefficients, not from the sympy expression (finite differences, Simpson's rule, sign
changes), so a wrong symbolic step cannot pass.
"""

from __future__ import annotations

import functools
import math
import re

import numpy as np
import sympy as sp

from . import captions as C
from . import render as R
from .exact import Deriv, fmt
from .problems import Built, Rejected

X = sp.Symbol("x", real=True)
FAMILIES = ["poly", "sin", "cos", "tan", "log", "abs", "piecewise"]
PI = sp.pi


@functools.lru_cache(maxsize=1024)
def pretty(e) -> str:
  """A readable form of f for text and the plot label: x^2, 2·sin(x), |x - 1|, log2(x + 3)."""
  if isinstance(e, sp.Piecewise):
    (p1, c1), (p2, _) = e.args
    return f"{pretty(p1)} if {pretty(c1)}, else {pretty(p2)}"
  s = str(e).replace("**", "^").replace("*", "·").replace("pi", "π").replace("Abs", "abs")
  s = s.replace("log(", "ln(")
  return re.sub(r"ln\(([^()]*)\)/ln\(2\)", r"log2(\1)", s)


def sub(e) -> str:
  """A template that shows e with x replaced by the step's second input."""
  return pretty(e).replace("{", "{{").replace("}", "}}").replace("x", "({1})")


def family(rng, fam: str):
  """(sympy f, numpy f, domain lo/hi, facts dict) for one family with exact-friendly coefficients."""
  if fam == "poly":
    deg = int(rng.choice([2, 2, 3]))
    roots = sorted(rng.choice(np.arange(-4, 5), deg, replace=False).tolist())
    a = sp.Rational(int(rng.choice([1, -1, 2, -2, 1, -1])), int(rng.choice([1, 2])) if deg == 2 else 2)
    f = sp.expand(a * sp.Mul(*[(X - r) for r in roots]))
    co = [float(c) for c in sp.Poly(f, X).all_coeffs()]
    fn = lambda x: np.polyval(co, x)  # noqa: E731
    lo, hi = roots[0] - 2, roots[-1] + 2
    info = {"roots": roots, "deg": deg}
  elif fam in ("sin", "cos"):
    a = sp.Integer(int(rng.choice([1, 2, 3])))
    b = sp.Rational(int(rng.choice([1, 2, 1])), int(rng.choice([1, 1, 2])))
    c = PI * sp.Rational(int(rng.choice([0, 1, 1, 2, 3])), 6)
    d = sp.Integer(int(rng.choice([-1, 0, 0, 1])))
    trig = sp.sin if fam == "sin" else sp.cos
    f = a * trig(b * X + c) + d
    npt = np.sin if fam == "sin" else np.cos
    af, bf, cf, df = float(a), float(b), float(c), float(d)
    fn = lambda x: af * npt(bf * x + cf) + df  # noqa: E731
    lo, hi = -float(2 * PI / b), float(2 * PI / b)
    info = {"a": a, "b": b, "c": c, "d": d}
  elif fam == "tan":
    a = sp.Integer(int(rng.choice([1, 2, -1])))
    b = sp.Integer(1) if rng.random() < 0.5 else sp.Rational(1, 2)
    f = a * sp.tan(b * X)
    af, bf = float(a), float(b)
    fn = lambda x: af * np.tan(bf * x)  # noqa: E731
    half = float(PI / (2 * b))
    lo, hi = -half * 0.92, half * 0.92
    info = {"a": a, "b": b}
  elif fam == "log":
    a = sp.Integer(int(rng.choice([1, 2, 3, -1, -2])))
    h = sp.Integer(int(rng.integers(-3, 3)))
    k = sp.Integer(int(rng.integers(-3, 4)))
    f = a * sp.log(X - h, 2) + k
    af, hf, kf = float(a), float(h), float(k)
    fn = lambda x: af * np.log2(np.maximum(x - hf, 1e-300)) + kf  # noqa: E731
    lo, hi = float(h) + 0.05, float(h) + 10
    info = {"a": a, "h": h, "k": k}
  elif fam == "abs":
    a = sp.Rational(int(rng.choice([1, 2, 3, -1, -2])), int(rng.choice([1, 1, 2])))
    h = sp.Integer(int(rng.integers(-3, 4)))
    k = sp.Integer(int(rng.integers(-4, 5)))
    f = a * sp.Abs(X - h) + k
    af, hf, kf = float(a), float(h), float(k)
    fn = lambda x: af * np.abs(x - hf) + kf  # noqa: E731
    lo, hi = float(h) - 5, float(h) + 5
    info = {"a": a, "h": h, "k": k}
  elif fam == "piecewise":
    c = sp.Integer(int(rng.integers(-2, 3)))
    p2 = sp.expand(sp.Integer(int(rng.choice([1, -1]))) * (X - c) ** 2
                   + sp.Integer(int(rng.integers(-2, 3))) * (X - c) + int(rng.integers(-3, 4)))
    m = sp.Integer(int(rng.choice([-2, -1, 1, 2])))
    p1 = sp.expand(p2.subs(X, c) + m * (X - c))
    f = sp.Piecewise((p1, X < c), (p2, True))
    c1 = [float(v) for v in sp.Poly(p1, X).all_coeffs()]
    c2 = [float(v) for v in sp.Poly(p2, X).all_coeffs()]
    cf = float(c)
    fn = lambda x: np.where(x < cf, np.polyval(c1, x), np.polyval(c2, x))  # noqa: E731
    lo, hi = float(c) - 4, float(c) + 4
    info = {"c": c, "p1": p1, "p2": p2}
  else:
    raise ValueError(f"engine: unknown function family {fam!r}; choose one of {FAMILIES}")
  return f, fn, lo, hi, info


def _simpson(fn, a, b, n=4000):
  x = np.linspace(a, b, n + 1)
  y = fn(x)
  return float((b - a) / n / 3 * (y[0] + y[-1] + 4 * y[1:-1:2].sum() + 2 * y[2:-1:2].sum()))


def _dnum(fn, a, h=1e-5):
  return float((fn(a + h) - fn(a - h)) / (2 * h))


def problem(rng, fam, f, fn, lo, hi, info):
  """(target name, chain, givens, measured, answer_text, wrong_texts, marks, kind)."""
  F = "f(x)"
  giv = {F: f}
  opts = ["value", "derivative"]
  if fam in ("poly", "abs", "log"):
    opts += ["zero", "zero"]
  if fam in ("poly", "sin", "cos", "piecewise"):
    opts += ["integral"]
  if fam in ("sin", "cos") or (fam == "poly" and info["deg"] == 2) or fam == "abs":
    opts += ["extremum", "extremum"]
  if fam in ("poly", "abs", "tan") and (fam != "poly" or info["deg"] == 2):
    opts += ["monotonic"]
  kind = str(rng.choice(opts))
  chain, wrong, ans_text = [], [], None
  marks = []

  def point():
    if fam in ("sin", "cos", "tan"):
      b = info["b"]
      if fam == "tan":
        return PI * sp.Rational(int(rng.choice([1, -1])), int(rng.choice([3, 4, 6]))) / b
      return PI * sp.Rational(int(rng.choice([1, 2, 3, 4])), 6) / b
    if fam == "log":
      return info["h"] + sp.Integer(2) ** int(rng.integers(0, 4))
    return sp.Integer(int(rng.integers(math.ceil(lo) + 1, math.floor(hi))))

  if kind == "value":
    a = point()
    giv["a"] = a
    v = f.subs(X, a)
    chain.append(Deriv(f"f({fmt(a)})", sub(f), "q0.subs(x, q1)", (F, "a"), v,
                       f"Substitute x = {fmt(a)} into f(x) = {pretty(f)}", False))
    measured = float(fn(np.array([float(a)]))[0])
    ask = f"What is the value of f(x) at x = {fmt(a)}?"
    alts = [f"Find f({fmt(a)}).", f"Evaluate the function at x = {fmt(a)}.",
            f"What does f give at x = {fmt(a)}?"]
  elif kind == "derivative":
    a = point()
    if fam in ("abs", "piecewise") and a == info.get("h", info.get("c")):
      a += 1  # not at the kink: f is not differentiable there
    giv["a"] = a
    df = sp.diff(f, X)
    chain.append(Deriv("f'(x)", "d/dx [{0}]", "diff(q0, x)", (F,), df, "Differentiate f"))
    v = df.subs(X, a)
    chain.append(Deriv(f"f'({fmt(a)})", sub(df), "q0.subs(x, q1)", ("f'(x)", "a"), v,
                       f"Substitute x = {fmt(a)} into f'(x) = {pretty(df)}", False))
    measured = _dnum(fn, float(a))
    ask = f"What is the derivative of f at x = {fmt(a)}?"
    alts = [f"Find f'({fmt(a)}).", f"What is the slope of the tangent to the curve at x = {fmt(a)}?",
            f"Compute the instantaneous rate of change of f at x = {fmt(a)}."]
  elif kind == "integral":
    a = sp.Integer(int(rng.integers(math.ceil(lo), math.floor(hi) - 1)))
    bnd = sp.Integer(int(rng.integers(int(a) + 1, math.floor(hi) + 1)))
    if fam in ("sin", "cos"):
      a, bnd = sp.Integer(0), PI / info["b"]
    giv["a"], giv["b"] = a, bnd
    pieces = [(F, a, bnd)]
    if fam == "piecewise":
      c = info["c"]
      giv["p1(x)"], giv["p2(x)"], giv["c"] = info["p1"], info["p2"], c
      pieces = ([("p1(x)", a, bnd)] if bnd <= c else [("p2(x)", a, bnd)] if a >= c
                else [("p1(x)", a, "c"), ("p2(x)", "c", bnd)])
    parts = []
    for k, (fname, lo_, hi_) in enumerate(pieces):
      lo_n = "a" if lo_ is a else lo_
      hi_n = "b" if hi_ is bnd else hi_
      lo_v, hi_v = giv[lo_n], giv[hi_n]
      fv = giv[fname]
      tag = f"F{k + 1}(x)" if len(pieces) > 1 else "F(x)"
      if fam in ("sin", "cos"):
        A_, B_, C_, D_ = info["a"], info["b"], info["c"], info["d"]
        giv.update({"amplitude": A_, "frequency": B_, "phase": C_, "midline": D_})
        if fam == "sin":
          Fv = -A_ / B_ * sp.cos(B_ * X + C_) + D_ * X
          chain.append(Deriv(tag, "-{0}/{1}·cos({1}·x + {2}) + {3}·x",
                             "-q0/q1*cos(q1*x + q2) + q3*x", ("amplitude", "frequency", "phase",
                                                               "midline"), Fv,
                             "An antiderivative of a·sin(bx + c) + d is -a/b·cos(bx + c) + d·x"))
        else:
          Fv = A_ / B_ * sp.sin(B_ * X + C_) + D_ * X
          chain.append(Deriv(tag, "{0}/{1}·sin({1}·x + {2}) + {3}·x",
                             "q0/q1*sin(q1*x + q2) + q3*x", ("amplitude", "frequency", "phase",
                                                              "midline"), Fv,
                             "An antiderivative of a·cos(bx + c) + d is a/b·sin(bx + c) + d·x"))
      else:
        Fv = sp.Poly(fv, X).integrate().as_expr()
        chain.append(Deriv(tag, "∫ {0} dx", "Poly(q0, x).integrate().as_expr()", (fname,), Fv,
                           f"Integrate {pretty(fv)} term by term (power rule)"))
      name = "I" if len(pieces) == 1 else f"I{k + 1}"
      v = Fv.subs(X, hi_v) - Fv.subs(X, lo_v)
      chain.append(Deriv(name, f"{tag[:-3]}({{2}}) - {tag[:-3]}({{1}})",
                         "q0.subs(x, q2) - q0.subs(x, q1)", (tag, lo_n, hi_n), v,
                         f"Evaluate between x = {fmt(lo_v)} and x = {fmt(hi_v)}"))
      parts.append(name)
    if len(parts) > 1:
      v = chain[1].value + chain[3].value
      chain.append(Deriv("I", "{0} + {1}", "q0 + q1", tuple(parts), v, "Add the two pieces"))
    measured = _simpson(fn, float(a), float(bnd))
    ask = f"What is the integral of f(x) from x = {fmt(a)} to x = {fmt(bnd)}?"
    alts = [f"Compute the definite integral of f over [{fmt(a)}, {fmt(bnd)}].",
            f"Find the signed area between the curve and the x-axis from {fmt(a)} to {fmt(bnd)}.",
            f"Evaluate ∫ f(x) dx on [{fmt(a)}, {fmt(bnd)}]."]
  elif kind == "zero":
    if fam == "poly":
      zs = [sp.Integer(r) for r in info["roots"]]
    elif fam == "abs":
      a, h, k = info["a"], info["h"], info["k"]
      if (-k / a) <= 0:
        raise Rejected("this absolute-value graph has no zeros or only a touching one")
      zs = [h - (-k / a), h + (-k / a)]
    else:
      a, h, k = info["a"], info["h"], info["k"]
      zs = [h + sp.Integer(2) ** (-k / a)]
    z = max(zs)
    chain.append(Deriv("zeros", "solve({0} = 0)", "sorted(solve(q0, x))", (F,), sorted(zs),
                       "Set f(x) = 0 and solve"))
    chain.append(Deriv("x0", "max({0})", "Max(*q0)", ("zeros",), z, "Take the largest zero"))
    zf = float(z)
    measured = abs(float(fn(np.array([zf]))[0])) < 1e-9 and not any(
      abs(float(fn(np.array([t]))[0])) < 1e-9 for t in np.linspace(zf + 1e-3, hi + 5, 400))
    chain[0] = chain[0] if fam != "log" else Deriv("zeros", "solve({0} = 0)", "[2**(-q1/q2) + q3]",
                                                   (F, "k", "a", "h"), zs, "Set f(x) = 0 and solve")
    if fam == "log":
      giv.update(k=info["k"], a=info["a"], h=info["h"])
      chain[0] = Deriv("zeros", "{3} + 2^(-{1}/{2})", "[2**(-q1/q2) + q3]", (F, "k", "a", "h"), zs,
                       "Set a·log2(x - h) + k = 0, so x - h = 2^(-k/a)")
    ask = "What is the largest zero of f(x)?"
    alts = ["Find the largest x with f(x) = 0.", "Where does the graph last cross the x-axis?",
            "What is the greatest root of f(x) = 0?"]
    if fam != "log":
      marks.append(("zero", zs))
  elif kind == "extremum":
    if fam in ("sin", "cos"):
      a, d = info["a"], info["d"]
      giv["amplitude"], giv["midline"] = a, d
      v = a + d
      chain.append(Deriv("max f", "{0} + {1}", "q0 + q1", ("amplitude", "midline"), v,
                         f"f oscillates between midline ± amplitude ({fmt(d)} ± {fmt(a)})"))
      measured = float(fn(np.linspace(lo, hi, 20001)).max())
      ask = "What is the maximum value of f(x)?"
      alts = ["Find the largest value f(x) takes.", "How high does the graph reach?",
              "What is the global maximum of f?"]
    else:
      df = sp.diff(f, X)
      if fam == "abs":
        xc = info["h"]
        giv["h"] = xc
        chain.append(Deriv("x*", "{0}", "q0", ("h",), xc, "|x - h| is smallest at x = h"))
      else:
        chain.append(Deriv("f'(x)", "d/dx [{0}]", "diff(q0, x)", (F,), df, "Differentiate f"))
        xc = sp.solve(df, X)[0]
        chain.append(Deriv("x*", "solve({0} = 0)", "solve(q0, x)[0]", ("f'(x)",), xc,
                           "The extremum is where f'(x) = 0"))
      v = f.subs(X, xc)
      chain.append(Deriv("f(x*)", sub(f), "q0.subs(x, q1)", (F, "x*"), v,
                         "Evaluate f at the extremum", False))
      xs = np.linspace(float(xc) - 3, float(xc) + 3, 60001)
      ys = fn(xs)
      measured = float(ys.max() if float(sp.sign(f.subs(X, xc + 1) - v)) < 0 else ys.min())
      ans_kind = "maximum" if float(f.subs(X, xc + 1) - v) < 0 else "minimum"
      ask = f"What is the {ans_kind} value of f(x)?"
      alts = [f"Find the {ans_kind} of f.", f"What is the y-coordinate of the vertex of the graph?",
              f"Give the {ans_kind} value the function attains."]
      marks.append(("max" if ans_kind == "maximum" else "min", [(xc, v)]))
  else:  # monotonic
    if fam == "tan":
      half = PI / (2 * info["b"])
      inc = info["a"] > 0
      giv["a"] = info["a"]
      chain.append(Deriv("f'(x)", "d/dx [{0}]", "diff(q0, x)", (F,), sp.diff(f, X),
                         "Differentiate f; sec² is positive"))
      ans_text = f"({fmt(-half)}, {fmt(half)})"
      wrong = [f"(0, {fmt(half)})", f"({fmt(-half)}, 0)", "(-oo, oo)"]
      word = "increasing" if inc else "decreasing"
      xs = np.linspace(-float(half) * 0.9, float(half) * 0.9, 400)
      dv = np.diff(fn(xs))
      measured = bool(np.all(dv > 0) if inc else np.all(dv < 0))
    else:
      if fam == "abs":
        xc, up = info["h"], info["a"] > 0
        giv["h"] = xc
        chain.append(Deriv("x*", "{0}", "q0", ("h",), xc, "The graph turns at its vertex x = h"))
      else:
        df = sp.diff(f, X)
        chain.append(Deriv("f'(x)", "d/dx [{0}]", "diff(q0, x)", (F,), df, "Differentiate f"))
        xc = sp.solve(df, X)[0]
        chain.append(Deriv("x*", "solve({0} = 0)", "solve(q0, x)[0]", ("f'(x)",), xc,
                           "f' changes sign where f'(x) = 0"))
        up = sp.Poly(f, X).LC() > 0
      word = str(rng.choice(["increasing", "decreasing"]))
      right = (word == "increasing") == bool(up)
      ans_text = f"({fmt(xc)}, oo)" if right else f"(-oo, {fmt(xc)})"
      other = f"(-oo, {fmt(xc)})" if right else f"({fmt(xc)}, oo)"
      wrong = [other, f"({fmt(xc + 1)}, oo)", f"(-oo, {fmt(xc - 1)})", "(-oo, oo)"]
      xa = float(xc) + (np.linspace(1e-3, 4, 300) if right else -np.linspace(4, 1e-3, 300))
      dv = np.diff(fn(xa))
      measured = bool(np.all(dv > 0) if word == "increasing" else np.all(dv < 0))
    ask = f"On which interval is f(x) {word}?"
    alts = [f"Where is f {word}?", f"Give the interval on which the function is {word}.",
            f"On what interval does f(x) keep {word}?"]
  return kind, chain, giv, measured, ans_text, wrong, marks, ask, alts


def make(rng) -> Built:
  fam = str(rng.choice(FAMILIES))
  f, fn, lo, hi, info = family(rng, fam)
  kind, chain, giv, measured, ans_text, wrong, marks, ask, alts = problem(rng, fam, f, fn, lo, hi,
                                                                         info)
  if fam == "tan" and kind == "value" and abs(float(chain[-1].value)) > 8:
    raise Rejected("the value lies off the plotted range")
  if fam in ("poly", "abs") and rng.random() < 0.5:  # extrema and zeros sometimes marked
    if fam == "poly" and not any(m[0] == "zero" for m in marks):
      marks.append(("zero", [sp.Integer(r) for r in info["roots"]]))
  xs = np.linspace(lo, hi, 500)
  ys = fn(xs)
  if fam == "tan":
    ys = np.where(np.abs(ys) > 8, np.nan, ys)
  fin = ys[np.isfinite(ys)]
  y0, y1 = float(min(fin.min(), 0)), float(max(fin.max(), 0))
  pad = 0.12 * (y1 - y0 + 1e-9)
  view = (float(lo), float(hi), y0 - pad, y1 + pad)
  c = R.axes(view, equal=False)
  segs, cur = [], []
  for x, y in zip(xs, ys):
    if np.isfinite(y):
      cur.append((x, y))
    elif cur:
      segs.append(cur)
      cur = []
  segs.append(cur)
  col = R.COLORS[int(rng.integers(len(R.COLORS)))]
  its = [{"op": "polyline", "segments": segs, "color": col, "width": 2.4}]
  cap = [C.pick(rng, C.FUNC_INTRO, f=f"f(x) = {pretty(f)}", expr=pretty(f), family=fam,
                lo=f"{lo:.3g}", hi=f"{hi:.3g}")]
  facts = [{"id": "expr", "text": f"f(x) = {pretty(f)}", "numeric": True}]
  for mk, pts in marks:
    for p in (pts if mk != "zero" else [(z, 0) for z in pts]):
      px, py = float(p[0]), float(p[1])
      if not (view[0] <= px <= view[1]):
        continue
      fid = f"{mk}:{fmt(p[0])}"
      its.append({"op": "point", "at": (px, py), "color": R.MARK, "id": fid})
      its.append({"op": "label", "at": (px, py), "text": f"({fmt(p[0])}, {fmt(p[1])})",
                  "offset": (0, -14 if mk != "min" else 14), "size": 12, "color": R.MARK})
      cap.append(C.pick(rng, C.FUNC_MARK[mk], x=fmt(p[0]), y=fmt(p[1])))
      facts.append({"id": fid, "text": f"({fmt(p[0])}, {fmt(p[1])})", "numeric": True})
  R.items(c, its)
  c.text((12, 14), f"f(x) = {pretty(f)}".replace("π", "pi"), 14, col, "lm")
  c.drawn.append("expr")
  img = c.finish()
  td = f"The function f(x) = {pretty(f)} is plotted."
  if len(facts) > 1:
    td += " Marked points: " + ", ".join(x["text"] for x in facts[1:]) + "."
  steps = len(chain)
  return Built(
    domain="function", family=fam, images={"single": img}, drawn={"single": sorted(c.drawn)},
    facts=facts, context={"text_dominant": td, "text_lite": "", "vision_dominant": ""},
    question=ask, alt_questions=alts, chain=chain, givens=giv, angles=set(), target=chain[-1].name,
    measured=measured, caption=cap, generation=cap[:1],
    complexity=min(3, steps - 1 + (fam == "piecewise")), answer_text=ans_text, wrong_texts=wrong,
    key=f"{fam}|{f}|{ask}")
