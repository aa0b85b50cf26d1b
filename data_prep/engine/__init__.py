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
