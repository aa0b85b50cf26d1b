"""MAVIS-style rule-based data engine: math diagrams with exact captions, problems and rationales.

MAVIS (arXiv 2407.08739) never released its engine, so this is our own: plane geometry
(`plane`), analytic geometry (`analytic`) and function graphs (`functions`), drawn with Pillow
(`render`), assembled into the released MAVIS record formats (`sample`, `writer`).
Run `python -m data_prep.engine --help`.
"""
