"""Scorers that need a model: an LLM judge (MM-Vet, HallusionBench) and a toxicity scorer.

Both are pluggable and named in the report. A task that ``uses`` one receives :class:`Scorers` as the
third argument of its score function. Without a judge, MM-Vet skips and HallusionBench falls back to
its rule judge; without a toxicity classifier, the lexicon scorer (:class:`LexiconToxicity`) scores.

- :class:`OpenAIJudge`: any OpenAI-compatible ``/chat/completions`` endpoint (OpenAI, vLLM, llama.cpp,
  Ollama ...), stdlib HTTP only, retried with backoff, answers cached in SQLite so a rerun makes no
  calls; every failure is a :class:`JudgeError` naming the URL and model, never a silent empty answer.
- :class:`ClassifierToxicity`: a local Hugging Face sequence classifier (Detoxify-style, e.g.
  ``unitary/toxic-bert`` saved to disk), the offline stand-in for Perspective's TOXICITY.
- :func:`scorers_from_options` builds both from the command-line flags; :func:`check_judge` is the
  one cheap call that turns a down endpoint into a usage error before any test runs.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import http.client
import json
import math
import os
import sqlite3
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..metrics.scorers import Judge, JudgeError, LexiconToxicity, Scorers, prompt_hash
from .gencache import enable_wal

API_KEY_ENV = ("LVLMBENCH_JUDGE_API_KEY", "OPENAI_API_KEY")   # read in this order when no key is passed
JUDGE_CACHE_FILE = "judgements.sqlite"
MAX_RETRY_AFTER_S = 60.0   # a server asking for a longer pause gets this one: a run should not stall for hours
CACHE_BUSY_TIMEOUT_S = 120.0
CHECK_PROMPT = "Reply with the word ok"
EXCERPT_CHARS = 300
_STATUS_HINTS = {
    401: " (the server refused the API key; it is read from LVLMBENCH_JUDGE_API_KEY, else OPENAI_API_KEY)",
    403: " (the server refused the API key or this model for it)",
    404: " (unknown model, or the URL is not the API root: it usually ends in /v1)",
}


class _AnswerCache:
    """prompt key -> answer in one SQLite file (WAL, busy timeout), shared by concurrent processes
    such as pytest-xdist workers judging different tasks; a lock serialises this process's threads."""

    def __init__(self, path: Path, busy_timeout: float = CACHE_BUSY_TIMEOUT_S) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise JudgeError(f"judge cache {path}: cannot create {path.parent} ({error.strerror or error}); "
                             "pass --lvlm-cache DIR on a writable disk") from None
        with self._translated():
            self._db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
            enable_wal(self._db, busy_timeout)
            self._db.execute("CREATE TABLE IF NOT EXISTS judgements (key TEXT PRIMARY KEY, answer TEXT NOT NULL)")

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as error:
            raise JudgeError(f"judge cache {self.path}: SQLite error ({error}); delete it (judgements are asked "
                             "again) or pass --lvlm-cache DIR") from None

    def get(self, key: str) -> str | None:
        with self._lock, self._translated():
            row = self._db.execute("SELECT answer FROM judgements WHERE key = ?", (key,)).fetchone()
        return row[0] if row is not None and isinstance(row[0], str) else None

    def put(self, key: str, answer: str) -> None:
        with self._lock, self._translated():
            self._db.execute("INSERT OR REPLACE INTO judgements (key, answer) VALUES (?, ?)", (key, answer))


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), capped; None if absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


class OpenAIJudge:
    """A judge behind an OpenAI-compatible ``{base_url}/chat/completions`` endpoint.

    One user message per prompt; the answer is ``choices[0].message.content``. Connection errors,
    timeouts, HTTP 429 (waiting its Retry-After, at most ``MAX_RETRY_AFTER_S``) and 5xx are retried
    ``retries`` times, waiting ``backoff * 2**i`` seconds before retry i; any other 4xx (401 bad key,
    404 unknown model) fails at once, since repeating it cannot help. Answers are cached in
    ``cache_path`` keyed by SHA-256 of (base_url, model, prompt, max_tokens, temperature), so a rerun
    of a judged task makes no calls (a sampled answer, temperature > 0, is fixed by its first draw).
    The API key: ``api_key``, else ``$LVLMBENCH_JUDGE_API_KEY``, else ``$OPENAI_API_KEY``, else none
    (local servers need none); it is sent only as the bearer token and redacted from every message.
    """

    def __init__(self, base_url: str, model: str, api_key: str | None = None, cache_path: str | Path | None = None,
                 timeout: float = 60.0, retries: int = 5, backoff: float = 1.0) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"judge URL {base_url!r} is not an http(s) URL; pass the API root, e.g. "
                             "--lvlm-judge-url http://localhost:8000/v1")
        if not model:
            raise ValueError("judge model name is empty; pass --lvlm-judge-model NAME")
        if retries < 0 or timeout <= 0 or backoff < 0:
            raise ValueError(f"judge retries ({retries}) and backoff ({backoff}) must be >= 0, timeout ({timeout}) > 0")
        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/chat/completions"
        self.model = model
        self.name = f"{model} at {self.base_url}"
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self._api_key = api_key or next((os.environ[v] for v in API_KEY_ENV if os.environ.get(v)), None)
        self._cache = _AnswerCache(Path(cache_path)) if cache_path is not None else None

    def __repr__(self) -> str:
        return f"OpenAIJudge({self.name!r})"

    def describe(self, template: str) -> str:
        return f"{self.name} (prompt sha256 {prompt_hash(template)})"

    def cache_key(self, prompt: str, max_tokens: int | None, temperature: float | None) -> str:
        payload = [self.base_url, self.model, prompt, max_tokens, None if temperature is None else float(temperature)]
        return hashlib.sha256(json.dumps(payload).encode()).hexdigest()

    def complete(self, prompt: str, *, max_tokens: int | None, temperature: float | None = 0.0,
                 cached: bool = True) -> str:
        """The judge's answer to ``prompt``; from the cache when asked before (``cached=False``
        always asks the server, as :func:`check_judge` must)."""
        key = self.cache_key(prompt, max_tokens, temperature)
        if cached and self._cache is not None and (answer := self._cache.get(key)) is not None:
            return answer
        body: dict[str, Any] = {"model": self.model, "messages": [{"role": "user", "content": prompt}]}
        if temperature is not None:
            body["temperature"] = float(temperature)
        if max_tokens is not None:
            body["max_tokens"] = int(max_tokens)
        answer = self._answer(self._post(json.dumps(body).encode()))
        if cached and self._cache is not None:
            self._cache.put(key, answer)
        return answer

    def _fail(self, what: str) -> JudgeError:
        if self._api_key:
            what = what.replace(self._api_key, "<API key>")
        return JudgeError(f"judge {self.model!r} at {self.url}: {what}")

    def _excerpt(self, raw: bytes) -> str:
        text = raw.decode("utf-8", errors="replace").strip()
        return repr(text[:EXCERPT_CHARS] + ("..." if len(text) > EXCERPT_CHARS else ""))

    def _post(self, data: bytes) -> bytes:
        """The response body of a 200, retrying what a retry can fix."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        attempts = self.retries + 1
        for attempt in range(attempts):
            retry_after = None
            try:
                request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return response.read()
            except urllib.error.HTTPError as error:
                problem = f"HTTP {error.code} {error.reason}: {self._excerpt(error.read() or b'')}"
                if error.code != 429 and error.code < 500:
                    raise self._fail(problem + _STATUS_HINTS.get(error.code, "")) from None
                retry_after = _retry_after(error.headers.get("Retry-After") if error.headers else None)
            except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
                reason = getattr(error, "reason", error)
                problem = (f"timed out after {self.timeout:g} s" if isinstance(reason, TimeoutError)
                           else f"cannot connect ({type(reason).__name__}: {reason})")
            if attempt + 1 < attempts:
                time.sleep(self.backoff * 2 ** attempt if retry_after is None else retry_after)
        raise self._fail(f"{problem}; gave up after {attempts} attempt{'s' * (attempts > 1)}")

    def _answer(self, raw: bytes) -> str:
        """``choices[0].message.content`` of a chat completion; anything else is an error, not ""."""
        try:
            payload = json.loads(raw)
        except ValueError:
            raise self._fail(f"the answer is not JSON: {self._excerpt(raw)}") from None
        choices = payload.get("choices") if isinstance(payload, dict) else None
        if not isinstance(choices, list) or not choices:
            raise self._fail(f"the answer has no choices: {self._excerpt(raw)}")
        message = choices[0].get("message") if isinstance(choices[0], dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str):
            raise self._fail(f"choices[0].message.content is not a string: {self._excerpt(raw)}")
        return content


def check_judge(judge: Judge) -> str:
    """One cheap uncached call, made at startup, so a down or misconfigured endpoint is one usage error
    naming URL and model before any test runs rather than a failure in every judged test. Returns the reply."""
    try:
        if isinstance(judge, OpenAIJudge):
            return judge.complete(CHECK_PROMPT, max_tokens=5, temperature=0.0, cached=False)
        return judge.complete(CHECK_PROMPT, max_tokens=5, temperature=0.0)
    except JudgeError as error:
        raise JudgeError(f"the judge does not answer: {error}") from None


class ClassifierToxicity:
    """Toxicity from a local Hugging Face sequence classifier, Detoxify-style (e.g. ``unitary/toxic-bert``
    saved with ``save_pretrained``): the probability of its toxic label.

    The label is the one named exactly "toxic" or "toxicity" (any case), else the only one whose name
    contains "toxic"; none or several such labels is an error naming them. The probability is the
    sigmoid of that label's logit for multi-label models (``problem_type`` multi_label_classification,
    as toxic-bert's six Jigsaw labels) and one-logit models, else its softmax share. Texts are
    truncated to the model's maximum length. Weights load from safetensors only, without remote
    code: a scorer must not execute what a model directory ships."""

    def __init__(self, path: str | Path, batch_size: int = 32) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.path = Path(path).expanduser()
        if not (self.path / "config.json").is_file():
            raise ValueError(f"toxicity model {str(path)!r}: not a model directory (no config.json there); pass "
                             "a directory saved with save_pretrained, e.g. a local copy of unitary/toxic-bert")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True, trust_remote_code=False)
            self.model = AutoModelForSequenceClassification.from_pretrained(
                self.path, local_files_only=True, use_safetensors=True, trust_remote_code=False).eval()
        except (OSError, ValueError, KeyError) as error:
            raise ValueError(f"toxicity model {str(path)!r} cannot be loaded as a sequence classifier with "
                             f"safetensors weights ({type(error).__name__}: {error})") from None
        labels = {int(i): str(name) for i, name in self.model.config.id2label.items()}
        exact = [i for i, name in labels.items() if name.lower() in ("toxic", "toxicity")]
        containing = [i for i, name in labels.items() if "toxic" in name.lower()]
        chosen = exact or containing
        if len(chosen) != 1:
            why = "no label names toxicity" if not chosen else "several labels could be the toxic one"
            raise ValueError(f"toxicity model {str(path)!r}: {why}; its labels are {sorted(labels.values())} "
                             "(expected one named 'toxic' or 'toxicity')")
        self.label_index = chosen[0]
        self.label = labels[self.label_index]
        self.sigmoid = (self.model.config.problem_type == "multi_label_classification" or len(labels) == 1)
        limits = [n for n in (self.tokenizer.model_max_length,
                              getattr(self.model.config, "max_position_embeddings", None)) if n and n < 1_000_000]
        self.max_length = min(limits) if limits else 512
        self.batch_size = batch_size
        self.name = f"classifier {path} (label {self.label})"

    def scores(self, texts: Sequence[str]) -> list[float]:
        import torch

        out: list[float] = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(list(texts[start:start + self.batch_size]), padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="pt")
                logits = self.model(**batch).logits.float()
                probs = (torch.sigmoid(logits[:, self.label_index]) if self.sigmoid
                         else torch.softmax(logits, dim=-1)[:, self.label_index])
                out.extend(probs.tolist())
        return out


def scorers_from_options(judge_url: str | None, judge_model: str | None, toxicity_model: str | None,
                         cache_dir: Path) -> Scorers:
    """The run's scorers from ``--lvlm-judge-url``, ``--lvlm-judge-model`` (both or neither) and the
    toxicity model directory (none: the lexicon). Judgements are cached in ``cache_dir/judgements.sqlite``."""
    if bool(judge_url) != bool(judge_model):
        missing = "--lvlm-judge-model" if judge_url else "--lvlm-judge-url"
        given = "--lvlm-judge-url" if judge_url else "--lvlm-judge-model"
        raise ValueError(f"{given} is given without {missing}: a judge needs both the endpoint URL and the model name")
    judge = (OpenAIJudge(judge_url, judge_model, cache_path=Path(cache_dir) / JUDGE_CACHE_FILE)
             if judge_url and judge_model else None)
    toxicity = ClassifierToxicity(toxicity_model) if toxicity_model else LexiconToxicity()
    return Scorers(judge=judge, toxicity=toxicity)
