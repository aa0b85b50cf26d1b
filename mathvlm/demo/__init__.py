"""`make demo`: the MAVIS recipe end to end on this machine (see __main__.py)."""
