"""Optional answer extraction by an LLM judge behind any OpenAI-compatible endpoint.

Off by default: the rule-based extraction is free and deterministic. When a URL is given (config
or `--judge_url`), the judge is asked, with MathVista's instruction, to extract the final answer;
an empty or failed reply keeps the rule-based extraction. Uses `requests` (already installed);
the API key, if any, comes from the OPENAI_API_KEY environment variable.
"""

from __future__ import annotations

import logging
import os

from mathvlm.eval.common import Problem

log = logging.getLogger(__name__)
PROMPT = ("Please read the following question and model response, then extract the model's final "
          "answer: an option letter for multiple choice, otherwise the value only.\n\n"
          "{query}\n\nModel response: {response}\n\nExtracted answer:")


class Judge:
  def __init__(self, url: str, model: str, timeout: float = 60.0, temperature: float = 0.0):
    if not url:
      raise ValueError("judge URL is empty: leave the judge off or give an OpenAI-compatible "
                       "base URL such as http://localhost:8000/v1")
    self.url = url.rstrip("/") + ("" if url.rstrip("/").endswith("/chat/completions")
                                  else "/chat/completions")
    self.model, self.timeout, self.temperature = model, timeout, temperature

  def __call__(self, problem: Problem, response: str, extraction: str) -> str | None:
    import requests
    headers = {"Content-Type": "application/json"}
    key = os.environ.get("OPENAI_API_KEY")
    if key:
      headers["Authorization"] = f"Bearer {key}"
    body = {"model": self.model, "temperature": self.temperature, "messages": [
        {"role": "user", "content": PROMPT.format(query=problem.query, response=response)}]}
    try:
      r = requests.post(self.url, json=body, headers=headers, timeout=self.timeout)
      r.raise_for_status()
      text = r.json()["choices"][0]["message"]["content"].strip()
    except (requests.RequestException, KeyError, IndexError, ValueError) as e:
      log.warning("judge failed on %s (%s); keeping the rule-based extraction", problem.pid, e)
      return None
    return text.removeprefix("Extracted answer:").strip() or None
