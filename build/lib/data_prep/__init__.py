"""Builders that turn sources (MathV360K, MAVIS releases, the MAVIS engine, LLaVA-format JSON)
into ArrayRecord datasets. See issues 4 and 5."""
