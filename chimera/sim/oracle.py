"""The simulator's answer oracle: what a model would reply to a request, as a pure function of (seed,
request) unless `sim.deterministic` is false. It tells the task from the request alone: the structured-output
schema name (SubfieldList, TopicList, DraftedProblem, CriticVerdict, LabelVerdict, QualityRating) or, with
no schema, a solve request; it reads the prompt through chimera.models.prompt_markers. The HTTP layer (faults,
latency, capacity) is chimera.sim.server."""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import secrets
import time
from typing import Any

from chimera.config import SimSettings
from chimera.models.prompt_markers import (
    ANSWER,
    PROBLEM,
    REFERENCE_ANSWER,
    SCHEMA_IN_PROMPT,
    SOLUTION,
    SUBFIELD,
    SUBFIELD_COUNT,
    SUBFIELDS_LISTED,
    SUBJECT,
    TOPIC_COUNT,
    TOPICS_LISTED,
    between,
    field,
    listed,
)
from chimera.sim import problems

TASKS = {"SubfieldList": "expand", "TopicList": "expand", "DraftedProblem": "draft", "CriticVerdict": "critic",
         "LabelVerdict": "label", "QualityRating": "evaluate", "solve": "solve"}
SHAPES = ("reasoning_content", "reasoning", "think", "close_think")
FILLER = ("We restate what is given and what is asked.", "Let us check the units and the definitions first.",
          "Consider a smaller case to see the pattern.", "This suggests an invariant worth testing.",
          "We verify the intermediate result by a second route.", "Now we combine the pieces carefully.",
          "An edge case must be ruled out here.", "The computation simplifies once we regroup terms.")


VERBOSE_FIELDS = ("reasons", "rationale")  # free text a verbose model runs on with


def seeded(seed: int, *parts: Any) -> random.Random:
    blob = json.dumps([seed, *parts], sort_keys=True, ensure_ascii=False, default=str)
    return random.Random(int.from_bytes(hashlib.sha256(blob.encode()).digest()[:8], "big"))


def approx_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


class Oracle:
    def __init__(self, settings: SimSettings | None = None, seed: int = 0):
        self.settings = settings or SimSettings()
        self.seed = seed

    def respond(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = body["messages"]
        user = "\n".join(str(m.get("content") or "") for m in messages if m.get("role") == "user")
        # Deterministic: the answer is a pure function of (seed, request). Otherwise every request is a fresh
        # draw, as from a sampled model, so a call asked twice is answered twice differently.
        rng = seeded(self.seed, body) if self.settings.deterministic else random.Random(secrets.randbits(64))
        task = schema_name(body) or "solve"
        handler = {
            "SubfieldList": self._subfields, "TopicList": self._expand, "DraftedProblem": self._draft,
            "CriticVerdict": self._critic,
            "LabelVerdict": self._label, "QualityRating": self._rate, "solve": self._solve,
        }.get(task)
        if handler is None:
            content, reasoning = json.dumps({"error": f"unknown schema {task}"}), ""
        else:
            content, reasoning = handler(user, rng, body)
            if task != "solve":
                content = self._shaped(content, body)
        return self._completion(body, content, reasoning, rng, prompt="\n".join(
            str(m.get("content") or "") for m in messages))

    def _shaped(self, content: str, body: dict[str, Any]) -> str:
        """A structured reply as a model that may ignore brevity writes it, held to the request schema's
        maxItems and maxLength as guided decoding holds a real server's reply.

        Whether a request gets a verbose reply depends on its messages and schema only, not on its token
        limit: a model that rambles on a request rambles again when it is asked with a larger limit.
        """
        reply = json.loads(content)
        verbose = seeded(self.seed, "verbose", body["messages"], schema_name(body)).random() < self.settings.verbose_rate
        if verbose:
            for name, value in reply.items():
                if isinstance(value, list):
                    reply[name] = value + [f"{item}: further questions" for item in value] * 2
                elif name in VERBOSE_FIELDS and isinstance(value, str):
                    reply[name] = " ".join([value, *FILLER * 6])
        schema = _schema_of(body)
        for name, rule in (schema.get("properties") or {}).items():
            value = reply.get(name)
            if isinstance(value, list):
                if isinstance(rule.get("maxItems"), int):
                    value = value[: rule["maxItems"]]
                item_limit = (rule.get("items") or {}).get("maxLength")
                reply[name] = [v[:item_limit] for v in value] if isinstance(item_limit, int) else value
            elif isinstance(value, str) and isinstance(rule.get("maxLength"), int):
                reply[name] = value[: rule["maxLength"]]
        return json.dumps(reply)

    def _subfields(self, user: str, rng: random.Random, body: dict) -> tuple[str, str]:
        subject = field(user, SUBJECT)
        count = int(field(user, SUBFIELD_COUNT) or 5)
        existing = {name.lower() for name in listed(user, SUBFIELDS_LISTED)}
        return json.dumps({"subfields": problems.subfield_names(subject, count, existing)}), ""

    def _expand(self, user: str, rng: random.Random, body: dict) -> tuple[str, str]:
        subfield = field(user, SUBFIELD) or field(user, SUBJECT)
        count = int(field(user, TOPIC_COUNT) or 5)
        existing = {name.lower() for name in listed(user, TOPICS_LISTED)}
        names = problems.topic_names(subfield, rng, count, existing, self.settings.topic_near_duplicate_rate)
        return json.dumps({"topics": names}), ""

    def _draft(self, user: str, rng: random.Random, body: dict) -> tuple[str, str]:
        subject = field(user, SUBJECT)
        revising = f"<{PROBLEM}>" in user
        if revising:
            text = between(user, PROBLEM)
            solved = problems.identify(text)
            if solved is None:  # an ill-posed draft cannot be rescued by rewording
                return json.dumps({"problem": text, "answer": field(user, REFERENCE_ANSWER)}), ""
            clarified = text if "All given quantities are exact." in text else text + " All given quantities are exact."
            return json.dumps({"problem": clarified, "answer": solved[1]}), ""
        kind = rng.choice(problems.kinds_for(subject))
        text = kind.make(rng)
        answer = kind.solve(text)
        if self.settings.draft_variety:  # its own draw, keyed by the request: subject, topic, earlier drafts
            text = problems.with_setting(text, seeded(self.seed, "variety", body["messages"]))
        if rng.random() < self.settings.ill_posed_rate:
            text = problems.make_ill_posed(text)
        elif answer is not None and rng.random() < self.settings.drafter_error_rate:
            answer = problems.near_miss(text, answer, rng)
        aside = seeded(self.seed, "unusable", body["messages"])  # its own draw: the other drafts stay as they were
        if answer is not None and aside.random() < self.settings.unusable_reference_rate:
            answer = unusable_reference(answer, aside)
        return json.dumps({"problem": text, "answer": answer}), ""

    def _critic(self, user: str, rng: random.Random, body: dict) -> tuple[str, str]:
        text = between(user, PROBLEM)
        reference = field(user, REFERENCE_ANSWER)
        solved = problems.identify(text)
        if solved is None:
            vote = {"verdict": "reject", "reasons": "ill-posed: a quantity the answer depends on is missing",
                    "own_answer": "undetermined", "agrees_with_reference": False}
            return json.dumps(vote), ""
        own = problems.equivalent_form(text, solved[1], rng)
        if rng.random() < self.settings.critic_error_rate:
            own = problems.near_miss(text, solved[1], rng)
        agrees = _right(text, own, reference)
        if not agrees:
            vote = {"verdict": "revise", "reasons": f"the reference answer looks wrong: I get {own}, not {reference}",
                    "own_answer": own, "agrees_with_reference": False}
        elif rng.random() < self.settings.critic_revise_rate and "All given quantities are exact." not in text:
            vote = {"verdict": "revise", "reasons": "state whether the given quantities are exact or measured",
                    "own_answer": own, "agrees_with_reference": True}
        else:
            vote = {"verdict": "accept", "reasons": "clear, self-contained, and the reference answer checks out",
                    "own_answer": own, "agrees_with_reference": True}
        return json.dumps(vote), ""

    def _label(self, user: str, rng: random.Random, body: dict) -> tuple[str, str]:
        reference = field(user, REFERENCE_ANSWER)
        solution = between(user, SOLUTION)
        problem = between(user, PROBLEM)
        boxed = re.findall(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}", solution)
        extracted = boxed[-1] if boxed else between(user, ANSWER).strip()
        correct = bool(extracted) and _right(problem, extracted, reference)
        verdict = {"correct": correct, "extracted_answer": extracted,
                   "rationale": "the final answer matches the reference" if correct else
                   "the final answer differs from the reference" if extracted else "no final answer given"}
        return json.dumps(verdict), ""

    def _rate(self, user: str, rng: random.Random, body: dict) -> tuple[str, str]:
        """Scores from what the text shows: a statement it can solve is well-posed, a missing quantity is not,
        a pointer to a figure is not self-contained; each score moves by one at random now and then."""
        problem = between(user, PROBLEM)
        words = len(problem.split())
        solvable = problems.identify(problem) is not None
        scores = {
            "clarity": 5 if 12 <= words <= 250 else 3,
            "well_posedness": 5 if solvable else (2 if "a certain number of" in problem else 3),
            "self_containedness": 2 if re.search(r"\b(figure|diagram|table|above|below)\b", problem, re.I) else 5,
            "reasoning_depth": min(5, 2 + words // 40 + (1 if solvable else 0)),
        }
        scores = {k: max(1, min(5, v + rng.choice((-1, 0, 0, 0, 1)))) for k, v in scores.items()}
        return json.dumps({**scores, "rationale": "rated on clarity, givens, context and steps needed"}), ""

    def _solve(self, user: str, rng: random.Random, body: dict) -> tuple[str, str]:
        problem = user.rsplit("Please reason step by step", 1)[0].strip()
        solved = problems.identify(problem)
        if solved is None:
            answer = "undetermined"
        elif rng.random() < self.settings.solver_correct_rate:
            answer = problems.equivalent_form(problem, solved[1], rng)
        else:
            answer = problems.near_miss(problem, solved[1], rng)
        jitter = self.settings.trajectory_jitter
        length = max(1, round(self.settings.trajectory_words * (1 + jitter * (2 * rng.random() - 1))))
        words: list[str] = []
        step = 1
        while len(words) < length:
            words += f"Step {step}. {rng.choice(FILLER)}".split()
            step += 1
        thinking = " ".join(words[:length])
        solution = f"Working through the problem as above, the result is \\boxed{{{answer}}}."
        aside = seeded(self.seed, "hedge", body["messages"], body.get("seed"))
        if solved is not None and aside.random() < self.settings.solver_hedge_rate:
            solution = hedged(answer, problems.near_miss(problem, solved[1], aside), aside)
        return solution, thinking

    def _completion(self, body: dict, content: str, reasoning: str, rng: random.Random, prompt: str) -> dict:
        shape: str = self.settings.reasoning_shape
        if shape == "mixed":
            shape = SHAPES[rng.randrange(len(SHAPES))]
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if reasoning:
            if shape in ("reasoning_content", "reasoning"):
                message[shape] = reasoning
            elif shape == "think":
                message["content"] = f"<think>\n{reasoning}\n</think>\n\n{content}"
            else:
                message["content"] = f"{reasoning}\n</think>\n\n{content}"
        completion_tokens = approx_tokens(message["content"] or "") + approx_tokens(reasoning) * bool(
            shape in ("reasoning_content", "reasoning") and reasoning)
        reply = {
            "id": "chatcmpl-sim-" + hashlib.sha256(prompt.encode()).hexdigest()[:12],
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "sim"),
            "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": approx_tokens(prompt), "completion_tokens": completion_tokens,
                      "total_tokens": approx_tokens(prompt) + completion_tokens,
                      "completion_tokens_details": {"reasoning_tokens": approx_tokens(reasoning) if reasoning else 0}},
        }
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if isinstance(limit, int) and completion_tokens > limit:
            truncate(reply, limit)
        return reply


def unusable_reference(answer: str, rng: random.Random) -> str:
    """A reference a careless drafter writes: a sentence, a non-answer, or a derivation cut at the schema's
    length limit (400 characters)."""
    forms = (
        f"The answer is {answer} because that is what the relation gives when every quantity is substituted.",
        "They are all positive numbers, so the quantity asked for follows from the givens.",
        ("We substitute the givens into the relation, then simplify, then substitute again = " * 8)[:400],
    )
    return forms[rng.randrange(len(forms))]


def hedged(right: str, wrong: str, rng: random.Random) -> str:
    """A solution that games a reward: two candidates (any joiner, any order), a retraction, a set or a range."""
    a, b = (right, wrong) if rng.random() < 0.5 else (wrong, right)
    forms = [
        f"The result is \\boxed{{{a}}} or \\boxed{{{b}}}.",
        f"The result is \\boxed{{{a} \\text{{ or }} {b}}}.",
        f"Final answer: either {a} or {b}.",
        f"The result is \\boxed{{{a}}}. Actually, it could also be {b}.",
        f"The result is \\boxed{{{a}, {b}}}.",
        f"The result is \\boxed{{\\{{{a}, {b}\\}}}}.",
        f"Final answer: {a} (or possibly {b})",
        f"The result is \\boxed{{{a}}}, maybe \\boxed{{{b}}}.",
    ]
    numbers = [re.fullmatch(r"-?\d+(?:\.\d+)?", x) for x in (right, wrong)]
    if all(numbers):
        low, high = sorted((float(right), float(wrong)))
        forms.append(f"The result lies between {low:g} and {high:g}, so \\boxed{{{low:g} \\le x \\le {high:g}}}.")
    return forms[rng.randrange(len(forms))]


def truncate(reply: dict, tokens: int) -> None:
    """Cut the reply to about `tokens` tokens, thinking first, as a server hitting max_tokens would."""
    message = reply["choices"][0]["message"]
    budget = tokens * 4
    for part in ("reasoning_content", "reasoning", "content"):
        text = message.get(part)
        if not text:
            continue
        kept = text[:budget]
        budget -= len(kept)
        message[part] = kept if kept or part == "content" else None
    reply["choices"][0]["finish_reason"] = "length"
    reply["usage"]["completion_tokens"] = tokens
    reply["usage"]["total_tokens"] = reply["usage"]["prompt_tokens"] + tokens




def schema_name(body: dict) -> str | None:
    """Which reply schema a request asks for, in any of the forms chimera sends: OpenAI's json_schema,
    TGI's {type: json_object, value}, or spelled out in the prompt (JSON mode, or no structured output)."""
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        return (fmt.get("json_schema") or {}).get("name")
    if isinstance(fmt, dict) and isinstance(fmt.get("value"), dict):
        return fmt["value"].get("title")
    return _prompted(body)[0]


def _schema_of(body: dict) -> dict:
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        return (fmt.get("json_schema") or {}).get("schema") or {}
    if isinstance(fmt, dict) and isinstance(fmt.get("value"), dict):
        return fmt["value"]
    return _prompted(body)[1]


def _prompted(body: dict) -> tuple[str | None, dict]:
    messages = body.get("messages") or []
    last = messages[-1].get("content") if messages and isinstance(messages[-1], dict) else None
    match = SCHEMA_IN_PROMPT.search(last) if isinstance(last, str) else None
    if not match:
        return None, {}
    try:
        return match.group(1), json.loads(match.group(2))
    except ValueError:
        return match.group(1), {}


def _right(problem: str, answer: str, reference: str) -> bool:
    """The simulator's oracle: `answer` is a right form of the true answer, and so is `reference`."""
    answer_right, reference_right = problems.accepts(problem, answer), problems.accepts(problem, reference)
    if answer_right is None or reference_right is None:
        return _same(answer, reference)
    return answer_right and reference_right


def _same(a: str, b: str) -> bool:
    from fractions import Fraction

    a, b = a.strip(), b.strip()
    try:
        return Fraction(a) == Fraction(b)
    except (ValueError, ZeroDivisionError):
        return a.lower() == b.lower()


STOPWORDS = {"a", "an", "and", "the", "of", "in", "within", "on", "for", "to", "regarding", "with", "by", "at"}


def embed(text: str, dims: int = 256) -> list[float]:
    """A deterministic embedding: hashed content words (stopwords and a plural s ignored), unit length."""
    vector = [0.0] * dims
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        if word in STOPWORDS:
            continue
        word = word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word
        h = int.from_bytes(hashlib.md5(word.encode()).digest()[:4], "big")
        vector[h % dims] += 1.0 if h & 1 << 31 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]

