"""MAVIS-style rule-based data engine: math diagrams with exact captions, problems and rationales.

MAVIS (arXiv 2407.08739) never released its engine, so this is our own. A domain builds a scene
(`plane` with `shapes`, `analytic`, `functions`): what is given, the formulas that derive the
rest, the askable quantities and an independent way to measure each. `problems` picks a question
of the asked depth and a harder one, re-checks every step, makes a multiple-choice question ask
one of four quantities of its figure (`option_set`: no choices-only rule beats chance), or takes
wrong options from wrong reasoning (`mistakes`, `--wrong_options figure+mistakes`), and writes
the texts in textbook notation (`notation`, `exact`). `render`
draws with Pillow, placing labels where they overlap nothing (`layout`); `writer` turns problems
into the released MAVIS record formats, locally or (`data_prep.beam`) on Apache Beam.
Run `python -m data_prep.engine --help`; the fields are in docs/engine/README.md.
"""

import os

# sympy sizes its expression cache when it is first imported (1,000 entries by default). The
# engine meets the same small numbers in every problem's formulas, notation and re-checks: with
# 20,000 a problem costs 4-8% less CPU (1,500 problems, one process: 8.4 against 8.8-9.5 ms) for
# ~10 MB more. A user's own SYMPY_CACHE_SIZE wins, and nothing changes once sympy is imported.
os.environ.setdefault("SYMPY_CACHE_SIZE", "20000")
