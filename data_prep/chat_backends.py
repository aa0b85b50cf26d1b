"""Where augmentation requests are answered: one generator interface, two back ends.

A back end's `run(requests)` yields `(request, response text)` or `(request, Failed(why))` for
every request, in any order, as each finishes (so the caller can store each answer at once and
an interrupted run loses nothing it was given):
  OpenAIChat  any OpenAI-compatible chat-completions endpoint that takes images (a hosted model,
              vLLM, SGLang, ...): the image goes inline as a base64 data URL; at most
              `concurrency` requests in flight; a request that fails with 408/409/429/5xx, a
              timeout or a dropped connection is retried `retries` times with exponential
              backoff (honouring Retry-After), any other error fails it at once.
  LocalChat   this project's own LLaVA checkpoint through `mathvlm.eval.chat` (batched decoding
              with the KV cache, `mathvlm.generate`).
Both fail a reply cut at the token limit (`finish_reason: "length"`; locally, no EOS within
max_new_tokens): its last answer may be cut short, and a rerun with more tokens asks again.
"""

from __future__ import annotations

import base64
import concurrent.futures
import dataclasses
import http.client
import io
import json
import logging
import os
import random
import socket
import threading
import urllib.error
import urllib.request
from typing import Iterator, NamedTuple

from PIL import Image

log = logging.getLogger(__name__)
RETRY_STATUS = {408, 409, 429}
# What a server answers every request alike: a key it does not take, an endpoint or model it does
# not have. Asking the rest would fail each the same way (40,000 requests of Math-LLaVA's recipe
# listed as failed), so the run stops at the first.
REFUSED_STATUS = {401, 403, 404}


class Refused(Exception):
  """The server refuses requests whatever they hold (REFUSED_STATUS): the run stops."""


@dataclasses.dataclass(frozen=True)
class Request:
  key: str    # what the response is stored under (kind, record, image and prompt hash)
  text: str   # the prompt; the image goes beside it
  image: str  # the image file


class Failed(NamedTuple):
  error: str


def cut(limit: str) -> str:
  """Why a reply cut at its token limit fails, for either back end."""
  return (f"the reply was cut at {limit} (finish_reason 'length'): raise --max_new_tokens and "
          "rerun; its last answer may be cut short ('12' read as '1') and was once merged as "
          "the answer")


def data_url(path: str) -> str:
  """The image file as a `data:` URL, its type read from the bytes (not the name)."""
  with open(path, "rb") as f:
    data = f.read()
  with Image.open(io.BytesIO(data)) as im:
    fmt = (im.format or "png").lower()
  return f"data:image/{fmt};base64,{base64.b64encode(data).decode()}"


class _Retry(Exception):
  def __init__(self, why: str, wait: float | None = None):
    super().__init__(why)
    self.wait = wait


class OpenAIChat:
  """Chat completions over HTTP (stdlib only), with retries, backoff and a concurrency limit."""

  def __init__(self, url: str, model: str, *, api_key: str | None = None, concurrency: int = 4,
               retries: int = 4, backoff: float = 1.0, timeout: float = 120.0,
               max_tokens: int = 1024, temperature: float = 0.7):
    self.endpoint = url if url.rstrip("/").endswith("/chat/completions") else (
        url.rstrip("/") + "/chat/completions")
    self.model, self.api_key = model, api_key
    self.concurrency, self.retries, self.backoff = max(1, concurrency), max(0, retries), backoff
    self.timeout, self.max_tokens, self.temperature = timeout, max_tokens, temperature
    self.refused: Refused | None = None  # once set, no request is sent: the run is stopping
    self.stopping = threading.Event()  # an interrupted run: no request is retried or started
    self.unclaimed: list[tuple[Request, str | Failed]] = []  # answered after an interrupt

  def describe(self) -> dict:
    return {"backend": "openai", "url": self.endpoint, "model": self.model,
            "concurrency": self.concurrency, "retries": self.retries}

  def body(self, req: Request) -> bytes:
    content = [{"type": "text", "text": req.text},
               {"type": "image_url", "image_url": {"url": data_url(req.image)}}]
    return json.dumps({"model": self.model, "messages": [{"role": "user", "content": content}],
                       "max_tokens": self.max_tokens,
                       "temperature": self.temperature}).encode()

  def _post(self, body: bytes) -> str:
    headers = {"Content-Type": "application/json"}
    if self.api_key:
      headers["Authorization"] = f"Bearer {self.api_key}"
    req = urllib.request.Request(self.endpoint, data=body, headers=headers, method="POST")
    try:
      with urllib.request.urlopen(req, timeout=self.timeout) as resp:
        payload = json.loads(resp.read().decode("utf-8"))
    except urllib.error.HTTPError as e:
      with e:  # its connection closed now: left to a finalizer, it warned during a later import
        detail = e.read()[:300].decode("utf-8", "replace")
      if e.code in REFUSED_STATUS:
        raise Refused(f"{self.endpoint} (model {self.model!r}) answers HTTP {e.code}: "
                      f"{detail}") from None
      if e.code in RETRY_STATUS or e.code >= 500:
        after = e.headers.get("Retry-After") if e.headers else None
        raise _Retry(f"HTTP {e.code}: {detail}",
                     float(after) if after and after.isdigit() else None) from None
      raise RuntimeError(f"HTTP {e.code}: {detail}") from None
    except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError,
            http.client.HTTPException, json.JSONDecodeError) as e:
      raise _Retry(f"{type(e).__name__}: {e}") from None
    return message_text(payload)

  def ask(self, req: Request) -> str | Failed:
    """One request, retried with backoff; a Failed once the retries are spent."""
    try:
      body = self.body(req)
    except (OSError, ValueError) as e:
      return Failed(f"image {req.image}: {e}")
    for attempt in range(self.retries + 1):
      if self.refused:  # the pool's queued requests, taken before the run could cancel them
        raise self.refused
      if self.stopping.is_set():  # taken from the queue, or to be retried, after an interrupt
        return Failed(f"interrupted after {attempt} attempts, before an answer came")
      try:
        return self._post(body)
      except Refused as e:
        self.refused = e
        raise
      except _Retry as e:
        if attempt == self.retries:
          return Failed(f"{e} (after {attempt + 1} attempts)")
        wait = e.wait if e.wait is not None else self.backoff * 2 ** attempt
        log.info("request %s: %s; retrying in %.2fs", req.key, e, wait)
        self.stopping.wait(min(wait, 60.0) * (1 + 0.25 * random.random()))  # woken by a stop
      except (RuntimeError, ValueError) as e:
        return Failed(str(e))
    return Failed("unreachable")

  def run(self, requests: list[Request]) -> Iterator[tuple[Request, str | Failed]]:
    """Interrupted (Ctrl-C, a refusal, an error downstream, the caller closing it), it starts no
    more requests, lets those in flight finish (without retrying) and leaves their answers, and
    any the caller was handed but did not take back control after, in `unclaimed`: each is paid
    for, and the caller stores them (`augment.ask`)."""
    pool = concurrent.futures.ThreadPoolExecutor(self.concurrency)
    futures, claimed = {}, set()
    self.stopping, self.unclaimed = threading.Event(), []
    try:
      futures = {pool.submit(self.ask, r): r for r in requests}
      for done in concurrent.futures.as_completed(futures):
        yield futures[done], done.result()
        claimed.add(done)  # only now: an interrupt while the caller stores it leaves it unclaimed
    except BaseException:
      self.stopping.set()
      raise
    finally:
      in_flight = sum(f.running() for f in futures)
      if in_flight and self.stopping.is_set():
        log.warning("stopping: waiting for the %d requests in flight to finish, so their "
                    "answers are kept (Ctrl-C again drops them)", in_flight)
      pool.shutdown(wait=True, cancel_futures=True)
      self.unclaimed = [(futures[f], f.result()) for f in futures if f not in claimed
                        and f.done() and not f.cancelled() and f.exception() is None]


def message_text(payload: dict) -> str:
  """The first choice's message text (a string, or a list of text parts; null is ""). Content of
  any other type, or a reply cut at max_tokens, is a ValueError, so the request fails and is
  named (and asked again by a rerun): returned, a number was stored as the response and every
  run then died judging it."""
  try:
    content = payload["choices"][0]["message"]["content"]
  except (KeyError, IndexError, TypeError):
    raise ValueError(f"not a chat completion: {json.dumps(payload)[:200]}") from None
  if payload["choices"][0].get("finish_reason") == "length":
    raise ValueError(cut("max_tokens"))
  if isinstance(content, list):
    texts = [p.get("text") for p in content if isinstance(p, dict)]
    content = "".join(t or "" for t in texts) if all(
        t is None or isinstance(t, str) for t in texts) else content
  if content is not None and not isinstance(content, str):
    raise ValueError(f"the message content is not text: {json.dumps(content)[:200]}")
  return content or ""


class LocalChat:
  """This project's model (`mathvlm.eval.chat.LocalChat`), `batch_size` requests per call."""

  def __init__(self, ckpt: str, tokenizer: str | None = None, *, batch_size: int = 8,
               max_new_tokens: int = 512, temperature: float = 0.0,
               template: str | None = None):
    from mathvlm.eval import chat
    self.ckpt = ckpt
    self.chat = chat.LocalChat(ckpt, tokenizer, template=template, batch_size=batch_size,
                               max_new_tokens=max_new_tokens, temperature=temperature)
    self.batch_size = batch_size

  def describe(self) -> dict:
    return {"backend": "local", "ckpt": os.path.abspath(self.ckpt),
            "max_new_tokens": self.chat.max_new_tokens, "template": self.chat.template,
            "image_aspect": self.chat.image_aspect}

  def run(self, requests: list[Request]) -> Iterator[tuple[Request, str | Failed]]:
    """Each image is opened first: one missing or corrupt file is that request's Failed (as the
    openai back end reports it), not an exception that ends the run and loses the report. A
    batch is decoded whole; interrupted while the caller takes its answers one by one, those
    not yet taken back control after are left in `unclaimed` (as the openai back end leaves
    its answers in flight), so `augment.ask` stores the batch's decoding, not only its first."""
    self.unclaimed = []
    ok = []
    for r in requests:
      why = unreadable(r.image)
      if why is None:
        ok.append(r)
      else:
        yield r, Failed(f"image {r.image}: {why}")
    limit = cut(f"max_new_tokens={self.chat.max_new_tokens}")
    for i in range(0, len(ok), self.batch_size):
      chunk = ok[i:i + self.batch_size]
      replies = [(r, Failed(limit) if reply.cut else reply.text)
                 for r, reply in zip(chunk, self.chat.respond([(r.text, r.image) for r in chunk]))]
      for k, answer in enumerate(replies):
        self.unclaimed = replies[k:]  # claimed only once the caller resumes this generator
        yield answer
      self.unclaimed = []


NO_FILE = "no such file"


def unreadable(path: str) -> str | None:
  """Why PIL cannot decode the image file, or None when it can."""
  if not os.path.isfile(path):
    return NO_FILE
  try:
    with Image.open(path) as im:
      im.load()
  except Exception as e:  # noqa: BLE001 - PIL raises many types: OSError, SyntaxError, bombs..
    return f"{type(e).__name__}: {e}"
  return None
