"""Built-in questions with known answers, so the simulator's answer quality can be measured.

A prompt is a *known question* when its normalised text contains one of :data:`QUESTIONS` or has the form
``What is A + B?`` (``+``, ``-``, ``*``, ``x``). :func:`is_correct` tells whether an answer text (plain or
JSON such as ``{"answer": "Paris"}``) gives the right answer; the load generator uses it to send feedback.
Other prompts get lorem-like text. Tokens are counted as words and punctuation marks (:func:`count_tokens`).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Question:
    """A question, its right answer, and plausible wrong ones."""

    prompt: str
    answer: str
    wrong: tuple[str, ...]


QUESTIONS: tuple[Question, ...] = (
    Question("What is the capital of France?", "Paris", ("Lyon", "Marseille", "Nice")),
    Question("What is the capital of Japan?", "Tokyo", ("Kyoto", "Osaka")),
    Question("What is the capital of Australia?", "Canberra", ("Sydney", "Melbourne")),
    Question("What is the capital of Canada?", "Ottawa", ("Toronto", "Montreal")),
    Question("What is the capital of Italy?", "Rome", ("Milan", "Naples")),
    Question("What is the largest planet in the solar system?", "Jupiter", ("Saturn", "Neptune")),
    Question("Which planet is known as the red planet?", "Mars", ("Venus", "Mercury")),
    Question("What is the chemical symbol for gold?", "Au", ("Ag", "Gd")),
    Question("What is the chemical symbol for sodium?", "Na", ("So", "Sd")),
    Question("How many continents are there?", "7", ("6", "5")),
    Question("How many days are in a leap year?", "366", ("365", "364")),
    Question("Who wrote Romeo and Juliet?", "Shakespeare", ("Marlowe", "Dickens")),
    Question("What is the boiling point of water in degrees Celsius?", "100", ("90", "212")),
    Question("What is the square root of 144?", "12", ("14", "11")),
    Question("What is the longest river in Africa?", "Nile", ("Congo", "Niger")),
    Question("In which year did the Second World War end?", "1945", ("1944", "1939")),
    Question("What is the smallest prime number?", "2", ("1", "3")),
    Question("What gas do plants absorb from the air?", "Carbon dioxide", ("Oxygen", "Nitrogen")),
    Question("What is the hardest natural substance?", "Diamond", ("Quartz", "Granite")),
    Question("How many sides does a hexagon have?", "6", ("8", "5")),
)

_ARITH = re.compile(r"what is (-?\d{1,9}) ?([-+*x×]) ?(-?\d{1,9})")
TOKEN_PATTERN = _TOKEN = re.compile(r"\w+|[^\w\s]")
_NON_WORD = re.compile(r"[^a-z0-9+\-*×]+")
_LOREM = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut "
          "labore et dolore magna aliqua enim ad minim veniam quis nostrud exercitation ullamco laboris "
          "nisi aliquip ex ea commodo consequat duis aute irure in reprehenderit voluptate velit esse "
          "cillum fugiat nulla pariatur excepteur sint occaecat cupidatat non proident sunt culpa qui "
          "officia deserunt mollit anim id est laborum")
_WORDS = tuple(_LOREM.split())


def normalize(text: str) -> str:
    """Lower case, punctuation to single spaces."""
    return " ".join(_NON_WORD.sub(" ", text.lower()).split())


_INDEX = {normalize(q.prompt): q for q in QUESTIONS}


def find_question(text: str) -> Question | None:
    """The known question ``text`` asks, if any (built-in or ``What is A + B?``)."""
    norm = normalize(text)
    for key, question in _INDEX.items():
        if key in norm:
            return question
    match = _ARITH.search(norm)
    if match is None:
        return None
    a, op, b = int(match.group(1)), match.group(2), int(match.group(3))
    value = a + b if op == "+" else a - b if op == "-" else a * b
    wrong = (str(value + 1), str(value - 1), str(value + 10), str(value - 2))
    return Question(f"What is {a} {op} {b}?", str(value), wrong)


def is_correct(prompt: str, answer_text: str) -> bool | None:
    """Whether ``answer_text`` answers ``prompt`` right; ``None`` when the prompt is no known question."""
    question = find_question(prompt)
    if question is None:
        return None
    expected = normalize(question.answer)
    return re.search(rf"(?<![\w-]){re.escape(expected)}(?![\w])", normalize(answer_text)) is not None


def sample_question(rng: random.Random, arithmetic_share: float = 0.5) -> Question:
    """A random known question: a built-in one, or a fresh ``What is A + B?`` with that probability."""
    if rng.random() < arithmetic_share:
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        op = rng.choice("+-*")
        found = find_question(f"What is {a} {op} {b}?")
        assert found is not None
        return found
    return rng.choice(QUESTIONS)


def count_tokens(text: str) -> int:
    """Simulated token count: words and punctuation marks."""
    return len(_TOKEN.findall(text))


def lorem(rng: random.Random, n_tokens: int) -> str:
    """Lorem-like text of exactly ``n_tokens`` tokens (by :func:`count_tokens`)."""
    out: list[str] = []
    count = 0
    sentence = 0
    while count < n_tokens:
        word = rng.choice(_WORDS)
        if sentence == 0:
            word = word.capitalize()
        out.append(word if not out else " " + word)
        count += 1
        sentence += 1
        if count < n_tokens and sentence >= rng.randint(6, 14):
            out.append(".")
            count += 1
            sentence = 0
    return "".join(out)


def pieces(text: str) -> list[str]:
    """``text`` cut into stream pieces (a word with its leading space each); joined they give ``text``."""
    parts = re.findall(r"\s*\S+", text)
    if parts and len("".join(parts)) < len(text):
        parts[-1] += text[len("".join(parts)):]
    return parts or ([text] if text else [])


__all__ = ["QUESTIONS", "Question", "count_tokens", "find_question", "is_correct", "lorem", "normalize",
           "pieces", "sample_question"]
