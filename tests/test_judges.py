"""Judges and toxicity scorers: the OpenAI-compatible client against a fake local endpoint (retries,
named errors, cache), the official MM-Vet / HallusionBench judge prompts and parses, MaxToxicity,
and the lexicon and classifier toxicity scorers."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from pytest_lvlmbench.engine import judges
from pytest_lvlmbench.engine.judges import ClassifierToxicity, OpenAIJudge, check_judge, scorers_from_options
from pytest_lvlmbench.metrics.scorers import JudgeError, LexiconToxicity, Scorers, prompt_hash
from pytest_lvlmbench.metrics.judged import (HALLUSION_JUDGE_PROMPT, MMVET_PROMPT, MMVET_RETRY_SUFFIX,
                                             hallusion_gpt_judge, hallusion_judge_prompt, hallusion_verdict,
                                             max_toxicity_statistics, mmvet_judge_score, mmvet_parse_score,
                                             mmvet_query, mmvet_statistics, toxicity_share)
from pytest_lvlmbench.metrics.stats import bootstrap_weights
from pytest_lvlmbench.metrics.yesno import hallusion_statistics

KEY = "sk-test-secret-0123456789"
MODEL = "judge-model"


def completion(content: object) -> bytes:
    return json.dumps({"id": "x", "object": "chat.completion", "model": MODEL,
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                    "finish_reason": "stop"}]}).encode()


class FakeEndpoint:
    """An OpenAI-compatible /v1/chat/completions on 127.0.0.1: replies come from ``plan`` in order
    (status, headers, body, delay), then ``reply`` as a normal completion; every request is recorded."""

    def __init__(self) -> None:
        self.plan: list[tuple[int, dict[str, str], bytes, float]] = []
        self.reply = "ok"
        self.requests: list[dict] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                endpoint.requests.append({"path": self.path, "body": body,
                                          "auth": self.headers.get("Authorization")})
                status, headers, payload, delay = (endpoint.plan.pop(0) if endpoint.plan
                                                   else (200, {}, completion(endpoint.reply), 0.0))
                time.sleep(delay)
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, address: None   # a slow reply's client is gone: not an error
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def judge(self, **kwargs: object) -> OpenAIJudge:
        return OpenAIJudge(self.url, MODEL, **{"retries": 2, "backoff": 0.01, "timeout": 5.0, **kwargs})


@pytest.fixture(autouse=True)
def no_proxy_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                 *judges.API_KEY_ENV):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def endpoint() -> Iterator[FakeEndpoint]:
    fake = FakeEndpoint()
    thread = threading.Thread(target=fake.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def assert_names_endpoint(error: pytest.ExceptionInfo, url: str) -> None:
    message = str(error.value)
    assert url in message and MODEL in message and KEY not in message


# ----------------------------------------------------------------------------- the HTTP client


def test_sends_an_openai_chat_request_and_returns_the_content(endpoint: FakeEndpoint) -> None:
    endpoint.reply = "0.6"
    assert endpoint.judge().complete("How good?", max_tokens=3, temperature=0.0) == "0.6"
    (request,) = endpoint.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["body"] == {"model": MODEL, "messages": [{"role": "user", "content": "How good?"}],
                               "temperature": 0.0, "max_tokens": 3}
    assert request["auth"] is None   # local servers need no key


def test_server_defaults_when_temperature_and_max_tokens_are_none(endpoint: FakeEndpoint) -> None:
    endpoint.judge().complete("q", max_tokens=None, temperature=None)
    assert set(endpoint.requests[0]["body"]) == {"model", "messages"}


def test_api_key_from_argument_then_env(endpoint: FakeEndpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "openai-key")
    endpoint.judge().complete("a", max_tokens=1)
    monkeypatch.setenv("LVLMBENCH_JUDGE_API_KEY", "bench-key")
    endpoint.judge().complete("b", max_tokens=1)
    judge = endpoint.judge(api_key=KEY)
    judge.complete("c", max_tokens=1)
    assert [r["auth"] for r in endpoint.requests] == ["Bearer openai-key", "Bearer bench-key", f"Bearer {KEY}"]
    assert KEY not in repr(judge) and KEY not in judge.name


def test_name_and_describe(endpoint: FakeEndpoint) -> None:
    judge = OpenAIJudge(endpoint.url + "/", MODEL)
    assert judge.name == f"{MODEL} at {endpoint.url}"
    assert judge.describe("template") == f"{judge.name} (prompt sha256 {prompt_hash('template')})"
    with pytest.raises(ValueError, match="not an http"):
        OpenAIJudge("localhost:8000/v1", MODEL)


def test_rate_limit_waits_retry_after_then_succeeds(endpoint: FakeEndpoint) -> None:
    endpoint.plan = [(429, {"Retry-After": "1"}, b'{"error": "rate limited"}', 0.0)]
    started = time.monotonic()
    assert endpoint.judge(backoff=0.001).complete("q", max_tokens=3) == "ok"
    assert time.monotonic() - started >= 0.9   # Retry-After, not the 1 ms backoff
    assert len(endpoint.requests) == 2


def test_retry_after_is_capped(endpoint: FakeEndpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(judges, "MAX_RETRY_AFTER_S", 0.05)
    endpoint.plan = [(429, {"Retry-After": "3600"}, b"slow down", 0.0)]
    started = time.monotonic()
    assert endpoint.judge().complete("q", max_tokens=3) == "ok"
    assert time.monotonic() - started < 2


def test_server_errors_are_retried_then_succeed(endpoint: FakeEndpoint) -> None:
    endpoint.plan = [(500, {}, b"boom", 0.0), (503, {}, b"busy", 0.0)]
    assert endpoint.judge(retries=2).complete("q", max_tokens=3) == "ok"
    assert len(endpoint.requests) == 3


def test_server_errors_forever_give_a_named_error(endpoint: FakeEndpoint) -> None:
    endpoint.plan = [(500, {}, b"internal error", 0.0)] * 3
    with pytest.raises(JudgeError, match=r"HTTP 500.*internal error.*3 attempts") as error:
        endpoint.judge(retries=2, api_key=KEY).complete("q", max_tokens=3)
    assert_names_endpoint(error, endpoint.url)
    assert len(endpoint.requests) == 3


def test_rate_limited_past_the_retries(endpoint: FakeEndpoint) -> None:
    endpoint.plan = [(429, {"Retry-After": "0"}, b"quota", 0.0)] * 2
    with pytest.raises(JudgeError, match="HTTP 429.*quota.*2 attempts") as error:
        endpoint.judge(retries=1).complete("q", max_tokens=3)
    assert_names_endpoint(error, endpoint.url)


def test_bad_key_fails_at_once_without_showing_it(endpoint: FakeEndpoint) -> None:
    endpoint.plan = [(401, {}, f'{{"error": "Incorrect API key provided: {KEY}"}}'.encode(), 0.0)]
    with pytest.raises(JudgeError, match="HTTP 401.*API key") as error:
        endpoint.judge(api_key=KEY).complete("q", max_tokens=3)
    assert_names_endpoint(error, endpoint.url)
    assert len(endpoint.requests) == 1


def test_unknown_model_fails_at_once(endpoint: FakeEndpoint) -> None:
    endpoint.plan = [(404, {}, b'{"error": "model not found"}', 0.0)]
    with pytest.raises(JudgeError, match="HTTP 404.*model not found") as error:
        endpoint.judge().complete("q", max_tokens=3)
    assert_names_endpoint(error, endpoint.url)
    assert len(endpoint.requests) == 1


def test_down_endpoint_is_a_named_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(JudgeError, match="cannot connect.*3 attempts") as error:
        OpenAIJudge(url, MODEL, api_key=KEY, retries=2, backoff=0.01).complete("q", max_tokens=3)
    assert_names_endpoint(error, url)


def test_slow_endpoint_times_out(endpoint: FakeEndpoint) -> None:
    endpoint.plan = [(200, {}, completion("late"), 1.0)] * 2
    with pytest.raises(JudgeError, match="timed out after 0.2 s.*2 attempts") as error:
        endpoint.judge(timeout=0.2, retries=1, api_key=KEY).complete("q", max_tokens=3)
    assert_names_endpoint(error, endpoint.url)


@pytest.mark.parametrize(("body", "what"), [
    (b"<html>Bad gateway</html>", "not JSON"),
    (b'{"object": "error", "message": "oops"}', "no choices"),
    (b'{"choices": []}', "no choices"),
    (completion(None), "content is not a string"),
])
def test_garbage_answer_is_a_named_error(endpoint: FakeEndpoint, body: bytes, what: str) -> None:
    endpoint.plan = [(200, {}, body, 0.0)]
    with pytest.raises(JudgeError, match=what) as error:
        endpoint.judge(api_key=KEY).complete("q", max_tokens=3)
    assert_names_endpoint(error, endpoint.url)
    assert len(endpoint.requests) == 1


def test_cache_hit_makes_no_request(endpoint: FakeEndpoint, tmp_path: Path) -> None:
    cache = tmp_path / "cache" / "judgements.sqlite"
    assert endpoint.judge(cache_path=cache).complete("q", max_tokens=3) == "ok"
    endpoint.reply = "changed"
    assert endpoint.judge(cache_path=cache).complete("q", max_tokens=3) == "ok"   # a rerun: new process, same file
    assert len(endpoint.requests) == 1
    assert endpoint.judge(cache_path=cache).complete("q", max_tokens=4) == "changed"   # settings are in the key
    assert endpoint.judge(cache_path=cache).complete("q", max_tokens=3, temperature=0.5) == "changed"
    assert len(endpoint.requests) == 3


def test_check_judge(endpoint: FakeEndpoint, tmp_path: Path) -> None:
    judge = endpoint.judge(cache_path=tmp_path / "j.sqlite")
    check_judge(judge)
    check_judge(judge)   # never from the cache: it checks the endpoint
    assert len(endpoint.requests) == 2
    assert endpoint.requests[0]["body"]["messages"][0]["content"] == "Reply with the word ok"
    endpoint.plan = [(500, {}, b"down", 0.0)] * 3
    with pytest.raises(JudgeError, match="does not answer") as error:
        check_judge(judge)
    assert_names_endpoint(error, endpoint.url)


def test_scorers_from_options(endpoint: FakeEndpoint, tmp_path: Path) -> None:
    scorers = scorers_from_options(None, None, None, tmp_path)
    assert scorers.judge is None and isinstance(scorers.toxicity, LexiconToxicity)
    scorers = scorers_from_options(endpoint.url, MODEL, None, tmp_path)
    assert scorers.judge.name == f"{MODEL} at {endpoint.url}"
    scorers.judge.complete("q", max_tokens=1)
    assert (tmp_path / judges.JUDGE_CACHE_FILE).is_file()
    with pytest.raises(ValueError, match="without --lvlm-judge-model"):
        scorers_from_options(endpoint.url, None, None, tmp_path)
    with pytest.raises(ValueError, match="without --lvlm-judge-url"):
        scorers_from_options(None, MODEL, None, tmp_path)
    with pytest.raises(ValueError, match="no-such-dir"):
        scorers_from_options(None, None, str(tmp_path / "no-such-dir"), tmp_path)


# ----------------------------------------------------------------------------- MM-Vet


class FakeJudge:
    """Answers from a list (the last one repeats) and records (prompt, max_tokens, temperature)."""

    name = "fake judge"

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.calls: list[tuple[str, int | None, float | None]] = []

    def complete(self, prompt: str, *, max_tokens: int | None, temperature: float | None = 0.0) -> str:
        self.calls.append((prompt, max_tokens, temperature))
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]

    def describe(self, template: str) -> str:
        return self.name


def test_mmvet_prompt_is_the_official_one() -> None:
    # sha256 of ``prompt`` in yuweihao/MM-Vet mm-vet_evaluator.py (c7ff270 and every earlier version)
    assert hashlib.sha256(MMVET_PROMPT.encode()).hexdigest() == \
        "d1b3e0a5b4e72c888b77164489d705bba4dd149934fff564dfba6443d81afe3f"
    assert MMVET_PROMPT.endswith("| 1.0\n") and "\n\nQuestion | Ground truth | Prediction | Correctness\n" in MMVET_PROMPT


def test_mmvet_query_is_the_official_construction() -> None:
    query = mmvet_query("What is x in the equation?", "-1<AND>-5", "x = -1")
    assert query == MMVET_PROMPT + "\nWhat is x in the equation? | -1 <AND> -5 | x = -1 | "
    assert mmvet_query("Q?", "a<OR>b", "b").endswith("\nQ? | a <OR> b | b | ")


def test_mmvet_score_over_http(endpoint: FakeEndpoint) -> None:
    endpoint.reply = "0.6"
    assert mmvet_judge_score(endpoint.judge(), "Q?", "yes", "yes") == 0.6
    body = endpoint.requests[0]["body"]
    assert body["messages"][0]["content"] == mmvet_query("Q?", "yes", "yes")
    assert (body["max_tokens"], body["temperature"]) == (3, 0.0)


@pytest.mark.parametrize(("text", "score"), [
    ("0.6", 0.6), ("1.0 because it matches", 1.0), ("0", 0.0), ("0.6\n", 0.6), ("1e-1", 0.1),
    ("garbage", None), (" 0.6", None), ("0.6,", None), ("1.5", None), ("-0.1", None), ("nan", None), ("", None),
])
def test_mmvet_parse_score(text: str, score: float | None) -> None:
    assert mmvet_parse_score(text) == score


def test_mmvet_first_reply_parses() -> None:
    judge = FakeJudge("1.0 because...")
    assert mmvet_judge_score(judge, "Q?", "A", "P") == 1.0
    assert judge.calls == [(mmvet_query("Q?", "A", "P"), 3, 0.0)]


def test_mmvet_reasks_with_rising_temperature_then_scores_zero() -> None:
    judge = FakeJudge("garbage")
    assert mmvet_judge_score(judge, "Q?", "A", "P") == 0.0
    query = mmvet_query("Q?", "A", "P")
    assert [p for p, _, _ in judge.calls] == [query] + [query + MMVET_RETRY_SUFFIX] * 4
    assert [t for _, _, t in judge.calls] == [0.0, 0.0, 0.5, 1.0, 1.5]
    assert {m for _, m, _ in judge.calls} == {3}


def test_mmvet_reask_that_parses() -> None:
    judge = FakeJudge("garbage", "The answer", "0.7")
    assert mmvet_judge_score(judge, "Q?", "A", "P") == 0.7
    assert [t for _, _, t in judge.calls] == [0.0, 0.0, 0.5]


def test_mmvet_statistics_worked_example() -> None:
    items = [{"question": "q1", "answer": "a", "capability": "rec,ocr"},
             {"question": "q2", "answer": "a", "capability": "ocr"},
             {"question": "q3", "answer": "a", "capability": "math, know"}]
    scores = {"q1": "1.0", "q2": "0.5", "q3": "0.0"}

    class ByQuestion(FakeJudge):
        def complete(self, prompt: str, *, max_tokens: int | None, temperature: float | None = 0.0) -> str:
            return scores[prompt.rsplit("\n", 1)[1].split(" | ")[0]]

    stats = mmvet_statistics(items, ["p1", "p2", "p3"], ByQuestion())
    values = {name: s.value() for name, s in stats.items()}
    assert values == pytest.approx({"mmvet_total": 50.0, "mmvet_rec": 100.0, "mmvet_ocr": 75.0,
                                    "mmvet_know": 0.0, "mmvet_gen": 0.0, "mmvet_spat": 0.0, "mmvet_math": 0.0})
    assert stats["mmvet_gen"].undefined and stats["mmvet_spat"].undefined and not stats["mmvet_know"].undefined
    assert all(len(s.rows) == 3 for s in stats.values())
    with pytest.raises(ValueError, match="unknown capability"):
        mmvet_statistics([{"question": "q", "answer": "a", "capability": "rec,vision"}], ["p"], ByQuestion())


# ----------------------------------------------------------------------------- HallusionBench


def test_hallusion_prompt_is_the_official_one() -> None:
    prompt = hallusion_judge_prompt("Is {x} blue?", "The sky is blue.", "Yes")
    # sha256 of the prompt tianyi-lab/HallusionBench utils.py evaluate_by_chatgpt (744007c) builds for this sample
    assert hashlib.sha256(prompt.encode()).hexdigest() == \
        "6c647358dbd1b5902c15f25a922de56e3b95dd8570584b686d36075f6834f6a5"
    assert prompt.endswith(' "unclear". \n\n Question:Is {x} blue?\nReference answer: The sky is blue.\n'
                           "Prediction answer:Yes\nOutput:")
    assert "\u201ccorrect\u201d" in HALLUSION_JUDGE_PROMPT


@pytest.mark.parametrize(("reply", "verdict"), [
    ("correct", 1), ("Correct.", 1), ("incorrect", 0), ("Incorrect", 0), ("unclear", 2),
    ("The prediction is not correct", 1), ("I cannot tell", 2), ("", 2), ("correct, not incorrect", 0),
])
def test_hallusion_verdict(reply: str, verdict: int) -> None:
    assert hallusion_verdict(reply) == verdict


def test_hallusion_gpt_judge_uses_the_official_call(endpoint: FakeEndpoint) -> None:
    endpoint.reply = "Incorrect"
    record = {"question": "Is it red?", "gt_answer_details": "It is blue.", "category": "VD", "subcategory": "s",
              "set_id": "0", "figure_id": "1", "question_id": "0", "gt_answer": "0", "prediction": "Yes, red."}
    stats = hallusion_statistics([record], hallusion_gpt_judge(endpoint.judge()))
    assert stats["accuracy"].value() == 0.0
    body = endpoint.requests[0]["body"]
    assert set(body) == {"model", "messages"}   # official: no temperature, no max_tokens
    assert body["messages"][0]["content"] == hallusion_judge_prompt("Is it red?", "It is blue.", "Yes, red.")


# ----------------------------------------------------------------------------- toxicity


def test_max_toxicity_worked_example() -> None:
    scores = [0.1, 0.2, 0.8, 0.4, 0.3]
    sets = ["A", "B", "A", "B", "A"]
    stats = max_toxicity_statistics(scores, sets)
    assert stats.value() == pytest.approx((0.8 + 0.4) / 2)
    assert stats.rows.tolist() == [[0.8, 1.0], [0.4, 1.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]
    resampled = stats.resampled(bootstrap_weights(sets, n_resamples=200, seed=0))
    assert set(np.round(resampled, 6)) <= {0.4, 0.6, 0.8}
    assert max_toxicity_statistics([], []).undefined
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        max_toxicity_statistics([1.5], ["A"])


def test_toxicity_share() -> None:
    stats = toxicity_share([0.1, 0.5, 0.9, 0.2])
    assert stats.value() == 0.5 and stats.binary


def test_lexicon_toxicity_worked_example() -> None:
    scorer = LexiconToxicity()
    assert scorer.scores(["You are an IDIOT!", "A kind person.", "idiotic"]) == [1.0, 0.0, 0.0]
    assert Scorers().toxicity.name == scorer.name


def save_tiny_classifier(path: Path, id2label: dict[int, str], problem_type: str | None = None) -> Path:
    """A random BertForSequenceClassification and a word-level tokenizer (built with ``tokenizers``,
    no download), saved as a Hugging Face model directory."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", *"you are a an idiot nice kind person the very".split()]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                            special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                            sep_token="[SEP]", model_max_length=16).save_pretrained(path)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32, initializer_range=0.5,
                        id2label=id2label, label2id={v: k for k, v in id2label.items()}, problem_type=problem_type)
    BertForSequenceClassification(config).save_pretrained(path)
    return path


TEXTS = ["you are an idiot", "a very kind person", "", "nice " * 50]   # the last one is truncated


@pytest.fixture(scope="module")
def multilabel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_classifier(tmp_path_factory.mktemp("toxic-bert"),
                                {0: "severe_toxic", 1: "toxic", 2: "obscene"}, "multi_label_classification")


def test_classifier_toxicity_multilabel(multilabel_dir: Path) -> None:
    import torch

    scorer = ClassifierToxicity(multilabel_dir)
    assert scorer.label == "toxic" and scorer.sigmoid and scorer.max_length == 16
    assert scorer.name == f"classifier {multilabel_dir} (label toxic)"
    scores = scorer.scores(TEXTS)
    assert len(scores) == 4 and all(0.0 <= s <= 1.0 for s in scores) and len(set(scores)) > 1
    assert ClassifierToxicity(multilabel_dir, batch_size=1).scores(TEXTS) == pytest.approx(scores, abs=1e-5)
    batch = scorer.tokenizer(TEXTS[:1], return_tensors="pt")
    with torch.no_grad():
        expected = torch.sigmoid(scorer.model(**batch).logits[0, 1]).item()
    assert scores[0] == pytest.approx(expected, abs=1e-6)
    assert scorer.scores([]) == []


def test_classifier_toxicity_softmax(tmp_path: Path) -> None:
    import torch

    scorer = ClassifierToxicity(save_tiny_classifier(tmp_path, {0: "non-toxic", 1: "toxic"}))
    assert scorer.label == "toxic" and not scorer.sigmoid
    batch = scorer.tokenizer(TEXTS[:1], return_tensors="pt")
    with torch.no_grad():
        expected = torch.softmax(scorer.model(**batch).logits[0], dim=-1)[1].item()
    assert scorer.scores(TEXTS[:1])[0] == pytest.approx(expected, abs=1e-6)


def test_classifier_toxicity_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="missing-model"):
        ClassifierToxicity(tmp_path / "missing-model")
    with pytest.raises(ValueError, match=r"no label names toxicity.*LABEL_0"):
        ClassifierToxicity(save_tiny_classifier(tmp_path / "a", {0: "LABEL_0", 1: "LABEL_1"}))
    with pytest.raises(ValueError, match=r"several labels.*toxic_speech"):
        ClassifierToxicity(save_tiny_classifier(tmp_path / "b", {0: "toxic_speech", 1: "toxicity_score"}))
