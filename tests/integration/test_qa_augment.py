"""data_prep.augment against an OpenAI-compatible server started here on 127.0.0.1: some answers
malformed, empty or duplicated, a rephrasing that changes the answer, requests failing once (500,
503), one failing for good (400) and one answered with an empty reply (failed, asked again). Only
valid, unique pairs are merged, each rejection is counted with its id, the concurrency limit
holds, a rerun asks only for what it does not have, and the builders read augmented.json with 0
bad records. The local back end: a tiny model."""

import base64
import http.server
import json
import os
import re
import threading
import time

import pytest
from PIL import Image
# Imported here, not first inside a test: Python 3.11's import lock raises KeyError(<thread id>)
# when a finalizer imports a module in the middle of another import in the same thread
# (CPython gh-91351, fixed in 3.12), and the few-shot clusters' first sklearn import came in a
# test after others had left garbage with finalizers (one CI run failed so).
import sklearn.cluster  # noqa: F401
import sklearn.feature_extraction.text  # noqa: F401

from data_prep import augment, llava_json, mathv360k
from train_utils import cpu_env

Q = "What is the length of side {}?"


def _src(tmp_path):
  """Records r0..r4 on images img0..img3 (r3 shares img0 with r0), source GEOS, and r5 of
  ChartQA; MathV360K layout."""
  imgs = tmp_path / "images"
  recs = []
  for i, img in enumerate(["img0", "img1", "img2", "img0", "img3", "img4"]):
    source = "ChartQA" if i == 5 else "GEOS"
    path = imgs / source / "images" / f"{img}.png"
    os.makedirs(path.parent, exist_ok=True)
    Image.new("RGB", (8, 8), (40 * int(img[-1]), 0, 0)).save(path)
    recs.append({"id": f"r{i}", "image": f"{source}/images/{img}.png", "conversations": [
        {"from": "human", "value": "<image>\n" + Q.format(i)}, {"from": "gpt", "value": str(i)}]})
  recs.append({"id": "text_only", "conversations": [
      {"from": "human", "value": "1+1?"}, {"from": "gpt", "value": "2"}]})
  (tmp_path / "src.json").write_text(json.dumps(recs))
  return str(tmp_path / "src.json"), str(imgs)


def pair(q, a):
  return f"The question is {q} The answer is {a}"


# What the server says, by (kind, record). A list: one answer per attempt; ints are HTTP errors.
SCRIPT = {
  ("new", 0): "\n".join([pair(Q.format(0), "0"), pair("How many sides are there?", "4"),
                         pair("how many sides are there", "4"), pair("What colour is it?", ""),
                         pair("What is the area?", "12")]),
  ("harder", 0): pair("What is twice side 0 plus 1?", "1"),
  ("rephrase", 0): pair("How long is side 0?", "0"),
  ("simplify", 0): "Sure! A simpler question: side?",
  ("new", 1): "I cannot see the image.",
  ("harder", 1): ["", pair("What is side 1 cubed?", "1")],  # empty: failed, a rerun asks again
  ("rephrase", 1): pair("How long is side 1?", "7"),
  ("simplify", 1): pair("Side?", "1"),
  ("new", 2): [500, "1. " + pair("Which side is longest?", "AB")],
  ("harder", 2): [503, pair("What is side 2 squared?", "4")],
  ("rephrase", 3): pair("How long is side 0?", "3"),  # img0 again: a duplicate of r0's
  ("harder", 4): [400],                                 # fails for good (this run)
}
KINDS = {"up to 5 new questions": "new", "one harder question": "harder",
         "Rewrite the question": "rephrase", "shorter, simplified": "simplify"}


class Server:
  """An OpenAI-compatible /v1/chat/completions on loopback that follows SCRIPT."""

  def __init__(self, key):
    self.log, self.attempts, self.lock = [], {}, threading.Lock()
    self.in_flight = self.max_in_flight = self.refused = 0
    server = self

    class Handler(http.server.BaseHTTPRequestHandler):
      def log_message(self, *a):
        pass

      def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        status, text = server.answer(self.path, self.headers.get("Authorization"), body)
        with server.lock:
          server.in_flight -= 1
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if status == 503:
          self.send_header("Retry-After", "0")
        self.end_headers()
        self.wfile.write(json.dumps(text if status != 200 else {
            "choices": [{"message": {"role": "assistant", "content": text}}]}).encode())

    self.key = key
    self.hold = None  # an Event: every request after the first waits for it
    self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
    threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

  def answer(self, path, auth, body):
    with self.lock:
      self.in_flight += 1
      self.max_in_flight = max(self.max_in_flight, self.in_flight)
    threading.Event().wait(0.02)  # let requests overlap
    if path != "/v1/chat/completions" or auth != f"Bearer {self.key}":
      with self.lock:
        self.refused += 1
      return 401, {"error": "bad path or key"}
    text, image = body["messages"][0]["content"][0]["text"], body["messages"][0]["content"][1]
    kind = next(v for k, v in KINDS.items() if k in text)
    rec = int(re.search(r"(?:already has this question|with its answer):\nThe question is "
                        r"What is the length of side (\d+)", text).group(1))
    with self.lock:
      n = self.attempts.get((kind, rec), 0)
      self.attempts[kind, rec] = n + 1
      self.log.append((kind, rec, text, image["image_url"]["url"]))
      held = self.hold is not None and len(self.log) > 1
    if held:
      self.hold.wait(20)  # a test that fails to release them fails in seconds, not minutes
    script = SCRIPT.get((kind, rec), pair(f"{kind} question about side {rec}?", str(rec)))
    step = script[min(n, len(script) - 1)] if isinstance(script, list) else script
    return (step, {"error": "scripted"}) if isinstance(step, int) else (200, step)


@pytest.fixture
def server(monkeypatch):
  monkeypatch.setenv("TEST_CHAT_KEY", "sekret")
  s = Server("sekret")
  yield s
  s.httpd.shutdown()


def _args(server, src, images, out, kinds="new,harder,rephrase,simplify"):
  return ["--src", src, "--images", images, "--out", str(out), "--kinds", kinds,
          "--backend", "openai", "--url", server.url, "--model", "m", "--api_key_env",
          "TEST_CHAT_KEY", "--concurrency", "2", "--retries", "2", "--backoff", "0.01",
          "--no_progress"]


def _run(server, src, images, out, kinds="new,harder,rephrase,simplify"):
  try:
    augment.main(_args(server, src, images, out, kinds))
    failed = False
  except SystemExit as e:
    assert "rerun the same command" in str(e)
    failed = True
  report = json.load(open(out / "report.json"))
  return failed, report, json.load(open(out / "augmented.json"))


def ids(report, kind, outcome):
  return report["kinds"][kind][outcome]["ids"]


def test_only_valid_unique_pairs_are_merged_and_each_rejection_counted(server, tmp_path):
  src, images = _src(tmp_path)
  failed, rep, merged = _run(server, src, images, tmp_path / "out")
  assert failed and server.max_in_flight <= 2
  assert rep["records"] == 6 and rep["images"] == 5
  assert [b["id"] for b in rep["unusable_records"]["ids"]] == ["text_only"]
  assert [r["requests"] for r in rep["kinds"].values()] == [5, 6, 6, 6]  # new: once per image
  assert ids(rep, "new", "duplicates") == ["r0_new0", "r0_new2"]  # of the original, each other
  assert ids(rep, "new", "empty") == ["r0_new3"]
  assert ids(rep, "new", "malformed") == ["r1_new"]
  assert ids(rep, "new", "accepted") == ["r0_new1", "r0_new4", "r2_new0", "r4_new0", "r5_new0"]
  assert ids(rep, "harder", "empty") == []
  assert [f["id"] for f in ids(rep, "harder", "failed")] == ["r1_harder", "r4_harder"]
  assert ids(rep, "harder", "failed")[0]["error"].startswith("an empty reply")
  assert "HTTP 400" in ids(rep, "harder", "failed")[1]["error"]
  assert ids(rep, "rephrase", "answer_changed") == ["r1_rephrase"]
  assert ids(rep, "rephrase", "duplicates") == ["r3_rephrase"]  # r0's rephrasing, same image
  assert ids(rep, "simplify", "malformed") == ["r0_simplify"]
  for kind, r in rep["kinds"].items():
    judged = sum(r[o]["count"] for o in augment.OUTCOMES)
    assert judged >= r["requests"] and all(r[o]["count"] == len(r[o]["ids"])
                                           for o in augment.OUTCOMES)
  accepted = [i for k in rep["kinds"] for i in ids(rep, k, "accepted")]
  assert sorted(m["id"] for m in merged) == sorted(accepted)
  assert rep["written"] == len(merged) == 18
  assert [m["id"] for m in merged][:4] == ["r0_new1", "r0_new4", "r0_harder", "r3_harder"]
  by_id = {m["id"]: m for m in merged}
  assert by_id["r2_new0"]["conversations"] == [
      {"from": "human", "value": "<image>\nWhich side is longest?"},
      {"from": "gpt", "value": "AB"}]
  assert by_id["r0_rephrase"]["image"] == "GEOS/images/img0.png"
  assert server.attempts["new", 2] == 2 and server.attempts["harder", 2] == 2  # retried once
  assert server.attempts["harder", 4] == 1  # a 400 is not retried
  # the image travels inline, and `new` is few-shot from the source's clusters, not its own
  kind, rec, text, url = next(x for x in server.log if x[:2] == ("new", 0))
  assert base64.b64decode(url.split(",", 1)[1]) == open(
      os.path.join(images, "GEOS/images/img0.png"), "rb").read()
  shots = text.split("with their answers:\n\n")[1].split("\n\nThe image already")[0]
  assert 1 <= len(shots.splitlines()) <= 5 and "side 0?" not in shots and "side 3?" not in shots
  # the builders read the merged pairs with 0 bad records
  for module, name in ((mathv360k, "mathv360k"), (llava_json, "llava_json")):
    built = module.main(["--json", str(tmp_path / "out" / "augmented.json"), "--images", images,
                         "--out", str(tmp_path / "data"), "--no_progress"])
    assert (built["written"], built["bad"]) == (18, 0), name


def test_rerun_asks_only_for_what_it_does_not_have(server, tmp_path):
  src, images = _src(tmp_path)
  out = tmp_path / "out"
  _run(server, src, images, out)
  first = len(server.log)
  SCRIPT_4 = SCRIPT.pop(("harder", 4))
  try:
    failed, rep, merged = _run(server, src, images, out)  # the server now answers r4 harder
  finally:
    SCRIPT[("harder", 4)] = SCRIPT_4
  assert not failed and len(server.log) == first + 2
  assert sorted(x[:2] for x in server.log[-2:]) == [("harder", 1), ("harder", 4)]
  assert (rep["asked"], rep["reused"]) == (2, 21)  # the empty reply was not stored
  assert {"r1_harder", "r4_harder"} <= set(ids(rep, "harder", "accepted")) and len(merged) == 20
  again_failed, again, merged_again = _run(server, src, images, out)
  assert not again_failed and len(server.log) == first + 2  # nothing asked twice
  assert again["asked"] == 0 and merged_again == merged
  assert again["kinds"] == rep["kinds"]


def test_a_torn_store_line_is_asked_again(server, tmp_path):
  src, images = _src(tmp_path)
  out = tmp_path / "out"
  _run(server, src, images, out, kinds="rephrase")
  store = (out / "responses.jsonl").read_text().splitlines()
  (out / "responses.jsonl").write_text("\n".join(store[:-1]) + "\n" + store[-1][:10])
  n = len(server.log)
  _, rep, _ = _run(server, src, images, out, kinds="rephrase")
  assert rep["asked"] == 1 and len(server.log) == n + 1


def test_a_subset_augments_only_the_selected_records(server, tmp_path):
  """A selection line per image (data_prep.select's form): img0's records r0 and r3, and an id the
  source does not hold, counted as missing; a selection of none of the source's ids is refused."""
  src, images = _src(tmp_path)
  sel = tmp_path / "selected.jsonl"
  sel.write_text(json.dumps({"id": "GEOS/images/img0.png", "records": ["r0", "r3"]}) + "\n"
                 + json.dumps({"id": "elsewhere", "records": ["r9"]}) + "\n")
  out = tmp_path / "out"
  args = ["--subset", str(sel)]
  augment.main(["--src", src, "--images", images, "--out", str(out), "--kinds", "rephrase",
                "--backend", "openai", "--url", server.url, "--model", "m", "--api_key_env",
                "TEST_CHAT_KEY", "--no_progress", *args])
  rep = json.load(open(out / "report.json"))
  assert rep["records"] == 2 and rep["requests"] == 2
  assert rep["subset"]["missing"] == {"count": 1, "ids": ["r9"]} and rep["subset"]["ids"] == 3
  assert sorted(x[1] for x in server.log if x[0] == "rephrase") == [0, 3]
  sel.write_text(json.dumps({"id": "x", "records": ["r8", "r9"]}) + "\n")
  with pytest.raises(SystemExit, match="another pool"):
    augment.main(["--src", src, "--images", images, "--out", str(out), "--kinds", "rephrase",
                  "--backend", "openai", "--url", server.url, "--model", "m", *args])


def test_a_server_that_refuses_the_key_or_the_model_stops_the_run(server, tmp_path, monkeypatch):
  """A 401 (here: a wrong key, or a path the server does not serve) is every request's answer:
  the run stops at the first, naming it, instead of asking the rest and listing each as failed;
  what was stored before is kept for the rerun."""
  src, images = _src(tmp_path)
  _run(server, src, images, tmp_path / "out", kinds="rephrase")
  stored = (tmp_path / "out" / "responses.jsonl").read_text()
  asked = len(server.log)
  assert server.refused == 0
  monkeypatch.setenv("TEST_CHAT_KEY", "wrong")
  with pytest.raises(SystemExit, match=r"answers HTTP 401.*Check --url, --model and the key in "
                                       r"\$TEST_CHAT_KEY"):
    augment.main(_args(server, src, images, tmp_path / "out", "rephrase,harder,simplify"))
  assert server.refused <= 2 and len(server.log) == asked  # those in flight (--concurrency 2)
  assert (tmp_path / "out" / "responses.jsonl").read_text() == stored


def _stored(out):
  path = out / "responses.jsonl"
  return [json.loads(x)["key"] for x in path.read_text().splitlines()] if path.exists() else []


def _wait_for(what, timeout=60):
  end = time.time() + timeout
  while not what():
    assert time.time() < end, "timed out"
    time.sleep(0.02)


def test_ctrl_c_keeps_the_answers_in_flight_and_sends_no_more(server, tmp_path):
  """Ctrl-C while two requests are in flight (--concurrency 2): the run starts no queued request,
  waits for those two and stores their answers (each was paid for; they were dropped), then exits
  naming the store. The server holds every request after the first until the run says it is
  waiting, so the moment of the signal is the state named, not a race."""
  import signal
  import subprocess
  import sys
  src, images = _src(tmp_path)
  out = tmp_path / "out"
  server.hold = threading.Event()
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  env = {**os.environ, "PYTHONPATH": root, **cpu_env()}
  # Ctrl-C's default action restored: pytest-xdist's workers ignore SIGINT, and a Python started
  # with SIGINT ignored installs no KeyboardInterrupt handler (the run then finished unstopped)
  proc = subprocess.Popen([sys.executable, "-m", "data_prep.augment",
                           *_args(server, src, images, out, "rephrase")],
                          cwd=root, env=env, stderr=subprocess.PIPE, text=True,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
  try:
    _wait_for(lambda: len(_stored(out)) == 1 and len(server.log) == 3, timeout=30)
    proc.send_signal(signal.SIGINT)
    err = []
    for line in proc.stderr:  # the run has taken the signal: now let the two answer
      err.append(line)
      if "waiting for the 2 requests in flight" in line:
        server.hold.set()
        break
    err += proc.stderr.read()
    assert proc.wait(30) == 1, "".join(err)[-3000:]
  finally:
    server.hold.set()
    proc.kill()
  assert "augment: interrupted" in "".join(err) and str(out / "responses.jsonl") in "".join(err)
  assert len(server.log) == 3  # no queued request was sent after the signal
  asked = {(k, r) for k, r, *_ in server.log}
  assert len(set(_stored(out))) == 3 and len(asked) == 3
  failed, _, merged = _run(server, src, images, out, kinds="rephrase")  # the rerun asks the rest
  assert len(server.log) == 6 and not failed and len(merged) > 0


def test_an_answer_handed_over_but_not_yet_stored_when_interrupted_is_stored(server, tmp_path,
                                                                            monkeypatch):
  """The interrupt lands in the caller, after the back end handed an answer over and before it
  was written: that answer, and every one in flight beside it (held by the server until then),
  are stored all the same. In flight: the second request, and the third where the worker that
  answered the first took it before the interrupt stopped the queue (a race either way)."""
  src, images = _src(tmp_path)
  real, calls = augment.replied, []
  server.hold = threading.Event()

  def interrupted_once(response):
    calls.append(response)
    if len(calls) == 1:
      threading.Timer(0.2, server.hold.set).start()
      raise KeyboardInterrupt
    return real(response)

  monkeypatch.setattr(augment, "replied", interrupted_once)
  with pytest.raises(SystemExit, match="augment: interrupted"):
    augment.main(_args(server, src, images, tmp_path / "out", "rephrase"))
  assert len(server.log) in (2, 3) and len(set(_stored(tmp_path / "out"))) == len(server.log)


def test_the_local_back_end_keeps_its_decoded_batch_when_the_caller_is_interrupted(
    tmp_path, monkeypatch):
  """The local back end decodes a batch whole and hands its answers over one by one; the
  interrupt lands in the caller while it stores the second of a batch of three: all three are
  stored (the second and third were dropped), the next batch is never decoded, and a rerun asks
  only for that batch's. A stand-in model: what is tested is the hand-over, not the decoding."""
  from types import SimpleNamespace

  from data_prep import chat_backends
  image = tmp_path / "x.png"
  Image.new("RGB", (4, 4)).save(image)
  batches = []

  def respond(prompts):
    batches.append(len(prompts))
    return [SimpleNamespace(text=f"answer to {t}", cut=False) for t, _ in prompts]

  backend = object.__new__(chat_backends.LocalChat)
  backend.chat = SimpleNamespace(max_new_tokens=8, respond=respond)
  backend.batch_size = 3
  planned = [SimpleNamespace(kind="rephrase", original=SimpleNamespace(id=f"r{i}", image="x.png"),
                             request=chat_backends.Request(f"k{i}", f"q{i}", str(image)))
             for i in range(5)]
  real, calls = augment.replied, []

  def interrupted_at_the_second(response):
    calls.append(response)
    if len(calls) == 2:
      raise KeyboardInterrupt
    return real(response)

  store = str(tmp_path / "responses.jsonl")
  monkeypatch.setattr(augment, "replied", interrupted_at_the_second)
  with pytest.raises(KeyboardInterrupt):
    augment.ask(backend, planned, store, progress=False)
  assert batches == [3] and set(augment.load_store(store)) == {"k0", "k1", "k2"}
  got, asked = augment.ask(backend, planned, store, progress=False)
  assert batches == [3, 2] and asked == 2 and got["k4"] == "answer to q4"
  assert len(open(store).readlines()) == 5  # each once: nothing left unclaimed after the end


def test_bad_arguments(tmp_path):
  src, images = _src(tmp_path)
  with pytest.raises(SystemExit):
    augment.main(["--src", src, "--images", images, "--out", str(tmp_path / "o"), "--kinds",
                  "new,funnier", "--backend", "openai"])
  with pytest.raises(SystemExit, match="needs --url"):
    augment.main(["--src", src, "--images", images, "--out", str(tmp_path / "o"),
                  "--backend", "openai"])


def test_local_backend_runs_on_a_tiny_model(tmp_path):
  """r0..r3 on three images, one of them (r2's) not an image: that record is unusable, naming
  the file, and never asked (a corrupt file once raised out of the model's batch and ended the
  run with no report and nothing stored, on every rerun; then it failed its request on every
  rerun). The random model says no EOS within 6 tokens, so the other replies are cut at
  --max_new_tokens: failed as a server's finish_reason 'length' is, and not stored (they were
  stored and merged as if the model had finished)."""
  import dataclasses
  import subprocess
  import sys

  from mathvlm import checkpoint
  from mathvlm.models import registry
  from mathvlm.demo.parity import train_tokenizer
  from mathvlm.models.vlm import Llava
  from random_models import random_model
  src, images = _src(tmp_path)
  corrupt = os.path.join(images, "GEOS", "images", "img2.png")
  with open(corrupt, "wb") as f:
    f.write(b"not an image")
  tok = train_tokenizer([Q.format(i) + " The question is The answer is" for i in range(50)], 300)
  tiny = registry.get("llava").preset("tiny")  # its vocabulary cut to the tokenizer's: every id decodes to text
  cfg = dataclasses.replace(tiny, image_token_id=tok.token_to_id("<image>"),
                            text=dataclasses.replace(tiny.text, vocab_size=tok.get_vocab_size()))
  ckpt = str(tmp_path / "ckpt")
  checkpoint.save_model(random_model(Llava, cfg, 0, std=0.02), cfg, ckpt)
  tok.save(os.path.join(ckpt, "tokenizer.json"))
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  env = {**os.environ, "PYTHONPATH": root, **cpu_env()}
  res = subprocess.run([sys.executable, "-m", "data_prep.augment", "--src", src, "--images",
                        images, "--out", str(tmp_path / "out"), "--kinds", "rephrase",
                        "--limit", "4", "--backend", "local", "--ckpt", ckpt, "--batch", "4",
                        "--max_new_tokens", "6", "--temperature", "0", "--no_progress"],
                       cwd=root, env=env, capture_output=True, text=True, timeout=300)
  assert res.returncode == 1 and "3 requests failed" in res.stderr, res.stderr[-3000:]
  rep = json.load(open(tmp_path / "out" / "report.json"))
  assert rep["backend"] == "local" and rep["asked"] == rep["requests"] == 3
  assert (tmp_path / "out" / "responses.jsonl").read_text() == ""  # nothing cut is stored
  unusable = {b["id"]: b for b in rep["unusable_records"]["ids"]}
  assert unusable["r2"]["reason"] == "unreadable_image"
  assert unusable["r2"]["detail"].startswith(f"{corrupt}: UnidentifiedImageError")
  failed = {f["id"]: f["error"] for f in rep["kinds"]["rephrase"]["failed"]["ids"]}
  assert sorted(failed) == ["r0_rephrase", "r1_rephrase", "r3_rephrase"]
  assert all("cut at max_new_tokens=6 (finish_reason 'length')" in e for e in failed.values())
  merged = json.load(open(tmp_path / "out" / "augmented.json"))
  assert merged == [] and rep["written"] == 0
