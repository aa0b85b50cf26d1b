"""The built-in rewards on plain strings."""

import pytest

from mathvlm.rl.rewards import format_reward


@pytest.mark.parametrize("response, want", [
    ("The answer is 4.", 1.0), ("So the answer is: B", 1.0), ("the answer is\n\\frac{1}{2}", 1.0),
    ("I don't know what the answer is.", 0.0), ("Whatever the answer is, I cannot tell.", 0.0),
    ("the answer is", 0.0), ("", 0.0)])
def test_format_reward_needs_an_answer_after_the_phrase(response, want):
  assert format_reward(response, {}) == want
