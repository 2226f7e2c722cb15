"""bench --task chat: first-token latency at turns 1, 5 and 10 of a scripted conversation, with the runtime
keeping the conversation's state between turns, and without (the state reset before each turn, so every turn
reads the whole conversation again). Each turn is timed both ways on the same prompt, one right after the
other (the answer kept for the next turn is the reset run's, which reads exactly that prompt), so a busy
machine slows both alike. The goal: turn 10's first token within 2x of turn 1's with reuse."""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Callable
from pathlib import Path

from desktop_ai.bench.report import BenchReport, BenchRow, environment, median
from desktop_ai.engine.conversations.store import ConversationStore
from desktop_ai.engine.models.store import ModelStore
from desktop_ai.engine.tasks.chat import ChatOptions, ChatSession, ChatTurnResult

logger = logging.getLogger(__name__)

SYSTEM_PROMPT = "You are a helpful assistant who answers in a few sentences."
SCRIPT = (
    "Hello! I am planning a trip to Lisbon in the spring.",
    "What neighbourhoods should I stay in?",
    "Which of those is quietest at night?",
    "What food should I try there?",
    "Is it easy to get around by tram?",
    "Which day trips from the city do you recommend?",
    "How many days would you spend in Sintra?",
    "What should I pack for the weather in April?",
    "Are there any customs I should know about?",
    "Can you sum up the plan we made in three lines?",
)
MEASURED_TURNS = (1, 5, 10)
GOAL_RATIO = 2.0


def bench_chat(store: ModelStore, model: str, device: str, max_new_tokens: int, repeats: int,
               say: Callable[[str], None]) -> BenchReport:
    with tempfile.TemporaryDirectory(prefix="desktop-ai-bench-chat-") as folder:
        with ConversationStore(Path(folder) / "conversations.sqlite3") as conversations:
            session = ChatSession(store, conversations, device=device)
            lm = session.load(model, progress=lambda message, fraction=None: say(message))
            warm = conversations.create(model=model)  # the first decode of a fresh context is slower: not timed
            session.send(warm.id, "Hi.", ChatOptions(max_new_tokens=4, temperature=0.0))
            reuse: dict[int, list[float]] = {n: [] for n in MEASURED_TURNS}
            reset: dict[int, list[float]] = {n: [] for n in MEASURED_TURNS}
            last: dict[str, ChatTurnResult] = {}
            for round_ in range(1, repeats + 1):
                say(f"Chat bench: round {round_} of {repeats}, {len(SCRIPT)} turns")
                conversation = conversations.create(system_prompt=SYSTEM_PROMPT, model=model)
                for number, message in enumerate(SCRIPT, 1):
                    kept = session.send(conversation.id, message, _options(max_new_tokens, reuse=True), model=model)
                    fresh = session.run(conversation.id, "regenerate", options=_options(max_new_tokens, reuse=False),
                                        model=model)
                    if number in MEASURED_TURNS:
                        reuse[number].append(_ms(kept))
                        reset[number].append(_ms(fresh))
                    last = {"reuse": kept, "reset": fresh}
    report = BenchReport("chat", lm.model_id, lm.device, environment=environment())
    report.environment["runtime"] = lm.runtime
    for name, samples, result in (("with state reuse (the default)", reuse, last.get("reuse")),
                                  ("without: state reset before each turn", reset, last.get("reset"))):
        values: dict[str, float | str] = {f"turn {n} first token ms": median(samples[n]) for n in MEASURED_TURNS}
        values["turn 10 / turn 1"] = values["turn 10 first token ms"] / values["turn 1 first token ms"]
        if result is not None:
            values["turn 10 prompt tokens"] = float(result.prompt_tokens)
            values["turn 10 reused tokens"] = float(result.reused_tokens)
        report.rows.append(BenchRow(name, lm.compression, values))
    with_reuse, without = (row.values for row in report.rows)
    speedup = float(without["turn 10 first token ms"]) / float(with_reuse["turn 10 first token ms"])
    report.notes.append(f"At turn 10, keeping the conversation's state makes the first token {speedup:.2f}x sooner "
                        "than reading the whole conversation again.")
    ratio = float(with_reuse["turn 10 / turn 1"])
    met = math.isfinite(ratio) and ratio <= GOAL_RATIO
    report.notes.append(f"Goal: turn 10's first token within {GOAL_RATIO:g}x of turn 1's with state reuse: "
                        f"{ratio:.2f}x, **{'met' if met else 'not met'}**.")
    report.notes.append(f"{repeats} round(s) of the {len(SCRIPT)}-turn script, greedy, {max_new_tokens} new tokens "
                        "at most per answer; medians. First token is measured from the start of the turn (the saved "
                        "conversation read, rendered through the chat template) to the first text.")
    if not lm.keeps_conversation_state:
        report.notes.append(f"{lm.runtime} keeps no conversation state, so both rows read the whole conversation.")
    return report


def _options(max_new_tokens: int, reuse: bool) -> ChatOptions:
    return ChatOptions(max_new_tokens=max_new_tokens, temperature=0.0, repetition_penalty=1.1, reuse_state=reuse)


def _ms(result: ChatTurnResult) -> float:
    return result.first_token_ms if result.first_token_ms is not None else float("nan")
