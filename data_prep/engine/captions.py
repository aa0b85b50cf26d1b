"""Caption and question templates: several phrasings per relation, picked by the sample's rng.

Varied wording is the point (MAVIS-Caption fills templates like "Attached to edge {} of shape {},
there is a {}"): the same fact appears in different sentences across the data.
"""

from __future__ import annotations

ROOT = [
  "The diagram starts with {shape}.",
  "First, there is {shape}.",
  "{Shape} is drawn first.",
  "The figure begins with {shape}.",
]
ATTACH = [
  "Attached to edge {edge} of {parent}, there is {shape}.",
  "Along side {edge} of {parent}, {shape} is drawn.",
  "{Shape} shares edge {edge} with {parent}.",
  "Edge {edge} of {parent} is also a side of {shape}.",
]
BESIDE = [  # a shape apart from the others (`plane._put_beside`), right of them or below
  "Apart from the rest, there is {shape}.",
  "Separately, {shape} is drawn.",
  "The figure also shows {shape}, apart from the others.",
]
LENGTH = ["{name} = {value}.", "The length of {name} is {value}.", "{name} measures {value}.",
          "Side {name} has length {value}."]
ANGLE = ["{name} = {value}.", "The angle {name} is {value}.", "{name} measures {value}."]
AREA = ["The area of {shape} is {value}.", "{shape} has an area of {value}."]
PERIM = ["The perimeter of {shape} is {value}.", "{shape} has a perimeter of {value}."]
ARC_Q = "the length of arc {name}"

ASK = {
  "area": ["What is the area of {shape}?", "Find the area of {shape}.",
           "Compute the area of {shape}.", "How large is the area of {shape}?"],
  "perimeter": ["What is the perimeter of {shape}?", "Find the perimeter of {shape}.",
                "Compute the perimeter of {shape}.", "How long is the boundary of {shape}?"],
  "length": ["What is the length of {name}?", "Find the length of {name}.", "How long is {name}?",
             "Compute {name}."],
  "arc": ["What is the length of arc {name}?", "Find the arc length {name}.",
          "How long is arc {name}?", "Compute the length of arc {name}."],
  "diagonal": ["What is the length of diagonal {name} of {shape}?",
               "Find the length of diagonal {name}.", "How long is the diagonal {name}?"],
  "height": ["What is the height of {shape} from {name}?",
             "Find the perpendicular distance from {name}.",
             "How long is the height of {shape} from {name}?"],
  "diameter": ["What is the diameter of {shape}?", "Find the diameter of {shape}.",
               "How wide is {shape} across its centre?"],
  "radius": ["What is the radius of {shape}?", "Find the radius of {shape}."],
  "circumradius": ["What is the radius of the circle through every vertex of {shape}?",
                   "Find the radius of the circle circumscribed about {shape}."],
  "chord": ["How long is the chord {name} of {shape}?", "Find the length of chord {name}."],
  "inscribed_square": ["What is the area of a square inscribed in {shape}?",
                       "Find the area of the largest square that fits in {shape}."],
}
VISION_LEAD = ["Based on the diagram, ", "Using the image, ", "From the figure, "]

FUNC_INTRO = ["The graph shows the function {f} for x in [{lo}, {hi}].",
              "Plotted is f(x) = {expr} on the interval [{lo}, {hi}].",
              "The figure is the graph of the {family} function {f}, x from {lo} to {hi}."]
FUNC_MARK = {
  "zero": ["The curve crosses the x-axis at ({x}, 0).", "A zero of f is marked at x = {x}."],
  "max": ["A local maximum is marked at ({x}, {y}).", "The highest marked point is ({x}, {y})."],
  "min": ["A local minimum is marked at ({x}, {y}).", "The lowest marked point is ({x}, {y})."],
}
ANALYTIC_INTRO = ["The Cartesian plane shows x from {x0} to {x1} and y from {y0} to {y1}.",
                  "A coordinate grid spans x in [{x0}, {x1}] and y in [{y0}, {y1}].",
                  "On a grid with x from {x0} to {x1} and y from {y0} to {y1}, several figures "
                  "are drawn."]


def one_of(rng, seq):
  """`rng.choice(seq)` for a list or tuple, drawn as NumPy draws it (one `rng.integers(len(seq))`,
  so the stream and the pick are the same) but without converting seq to an array first: ~1 µs
  against ~6, and the scene makers draw ~22 a problem. The item comes back as it is in seq (a
  str or int, not NumPy's np.str_ or np.int64)."""
  return seq[int(rng.integers(len(seq)))]


def pick(rng, options, **kw) -> str:
  s = one_of(rng, options)
  if "shape" in kw:
    kw.setdefault("Shape", kw["shape"][:1].upper() + kw["shape"][1:])
  return s.format(**kw)
