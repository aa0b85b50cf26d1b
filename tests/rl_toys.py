"""Problem streams and rewards for RL tests, named by import path in configs (`rl_toys:...`)."""

QUESTION = "Say a number."


class NumberStream:
  """Text-only prompts (no image); the answer is 7 whatever the question: the optimal policy is
  known (always say 7), and a reward for one token is all there is to learn."""
  levels, versions = 3, 1

  def __init__(self, seed: int = 0):
    self.seed = seed

  def problems(self, indices, level, versions=1):
    return [{"id": f"q{i}", "query": f"{QUESTION} ({level})", "image": None, "answer": "7",
             "choices": [], "group": f"q{i}"} for i in indices]


def says_seven(response: str, problem: dict) -> float:
  del problem
  return 1.0 if response.strip().startswith("7") else 0.0


def digit_share(response: str, problem: dict) -> float:
  """A dense reward (every answer earns some): the share of its characters that are digits."""
  del problem
  text = response.replace(" ", "")
  return sum(ch.isdigit() for ch in text) / max(len(text), 1)
