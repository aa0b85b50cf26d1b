"""Process-wide runtime settings (placeholder)."""


def configure(platform: str | None = None) -> None:
  del platform
