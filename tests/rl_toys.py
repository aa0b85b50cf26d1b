"""Problem streams and rewards for RL tests, named by import path in configs (`rl_toys:...`)."""

QUESTION = "Say a number."


class NumberStream:
  """Text-only prompts (no image) whose answer is 7 whatever the question: the optimal policy is
  known (always say 7), and a reward for one token is all there is to learn. Records in the
  engine's format (MAVIS-Geometry fields), as `data_prep.engine.online` makes them."""
  levels = 3

  def __init__(self, seed: int = 0):
    self.seed = seed

  def records(self, indices, level):
    return [({"id": f"q{i}", "answer": "7", "choices": [],
              "text_en": {"text_lite_question": f"{QUESTION} ({level})"}}, {})
            for i in indices]


def says_seven(response: str, problem: dict) -> float:
  del problem
  return 1.0 if response.strip().startswith("7") else 0.0


def digit_share(response: str, problem: dict) -> float:
  """A dense reward (every answer earns some): the share of its characters that are digits."""
  del problem
  text = response.replace(" ", "")
  return sum(ch.isdigit() for ch in text) / max(len(text), 1)
