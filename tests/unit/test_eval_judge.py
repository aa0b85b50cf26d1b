"""The optional judge against a real local OpenAI-compatible HTTP endpoint (no network)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from mathvlm.eval.common import Problem
from mathvlm.eval.judge import Judge


class _Chat(BaseHTTPRequestHandler):
  seen = []

  def do_POST(self):
    body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
    _Chat.seen.append((self.path, body))
    reply = {"choices": [{"message": {"content": "Extracted answer: 42"}}]}
    data = json.dumps(reply).encode()
    self.send_response(200)
    self.send_header("Content-Type", "application/json")
    self.send_header("Content-Length", str(len(data)))
    self.end_headers()
    self.wfile.write(data)

  def log_message(self, *args):
    pass


@pytest.fixture
def server():
  srv = HTTPServer(("127.0.0.1", 0), _Chat)
  threading.Thread(target=srv.serve_forever, daemon=True).start()
  yield f"http://127.0.0.1:{srv.server_port}/v1"
  srv.shutdown()


def test_judge_round_trip(server):
  p = Problem("7", "q", "42", [], [], "Question: 6*7?", {}, {})
  assert Judge(server, "m")(p, "it is forty-two", "") == "42"
  path, body = _Chat.seen[-1]
  assert path == "/v1/chat/completions" and body["model"] == "m"
  assert "Question: 6*7?" in body["messages"][0]["content"]


def test_judge_failure_keeps_rules():
  p = Problem("7", "q", "42", [], [], "Q", {}, {})
  assert Judge("http://127.0.0.1:9/v1", "m", timeout=2)(p, "r", "41") is None
  with pytest.raises(ValueError, match="judge URL is empty"):
    Judge("", "m")
