"""Piper's own phoneme rules, with espeak-ng run as a separate program (espeak-ng is GPL: never linked in).

What piper-phonemize does with the espeak-ng library, and what is reproduced here:
- espeak-ng turns each clause into IPA phonemes (stress marks kept, words separated by spaces);
- the clause's terminator comes back as punctuation: "." "?" "!" as they are, "," ":" ";" followed by a space;
- a sentence's phonemes are its clauses' phonemes in order, each a Unicode code point after NFD decomposition;
- phoneme ids: BOS "^", then the pad "_" after it and after every phoneme, then EOS "$" (the voice's phoneme_id_map);
  a phoneme the voice does not know is left out (Piper logs it too).
Feeding the voice plain `espeak-ng --ipa` output (no punctuation, no pads) garbles about one word in four.

The espeak-ng program prints one line of phonemes per clause and loses the terminators, so the clauses are cut here
(at ",", ":", ";" and the sentence's end) and given to one espeak-ng run as lines separated by blank lines: each
clause's phonemes come back as one block (espeak-ng may break a clause further, as after "Mr.", which the library
did too), and its terminator is known from the cut. Sentences come from `sentencex`, the segmenter the app uses
for translation (abbreviation and number rules), as Piper speaks one sentence per inference.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import unicodedata
from dataclasses import dataclass

from desktop_ai.engine.errors import EngineError

logger = logging.getLogger(__name__)

BOS, EOS, PAD = "^", "$", "_"
ESPEAK_TIMEOUT_S = 30.0
# A clause ends at these, when a space or the end follows (so "3.5" and "a,b" stay whole), quotes and brackets after.
_CLAUSE_END = re.compile(r"([,:;]+)[\"'”’»)\]]*(?=\s|$)")
_SENTENCE_END = re.compile(r"([.!?…]+)[\"'”’»)\]]*\s*$")
_HAS_WORD = re.compile(r"\w")


class PhonemizerError(EngineError):
    """espeak-ng is missing or failed."""


@dataclass(frozen=True)
class Clause:
    text: str
    terminator: str  # "", ".", "?", "!", ",", ":" or ";"


def split_sentences(text: str, language: str = "en") -> list[str]:
    """Sentences as sentencex cuts them, stripped, empty ones dropped."""
    from sentencex import segment

    return [s.strip() for s in segment(language, text) if s.strip()]


def split_clauses(sentence: str) -> list[Clause]:
    """A sentence's clauses with the punctuation Piper keeps for each (see the module's docstring)."""
    sentence = " ".join(sentence.split())  # espeak-ng reads its input line by line: no newline inside a clause
    final = ""
    match = _SENTENCE_END.search(sentence)
    if match:
        final = {"…": "."}.get(match.group(1)[0], match.group(1)[0])
        sentence = sentence[: match.start()]
    clauses: list[Clause] = []
    start = 0
    for cut in _CLAUSE_END.finditer(sentence):
        clauses.append(Clause(sentence[start:cut.start()].strip(), cut.group(1)[0]))
        start = cut.end()
    clauses.append(Clause(sentence[start:].strip(), final))
    # A clause with no word (a stray "--") gives espeak-ng nothing to say: its terminator goes to the one before.
    merged: list[Clause] = []
    for clause in clauses:
        if _HAS_WORD.search(clause.text):
            merged.append(clause)
        elif merged and clause.terminator:
            merged[-1] = Clause(merged[-1].text, clause.terminator)
    return merged


def _terminator_phonemes(terminator: str) -> str:
    return terminator + " " if terminator in (",", ":", ";") else terminator


def espeak_program() -> str:
    program = shutil.which("espeak-ng")
    if program is None:
        raise PhonemizerError("Reading aloud needs the espeak-ng program for the voice's phonemes, and it is not "
                              "installed (on Debian or Ubuntu: sudo apt install espeak-ng).")
    return program


def _run_espeak(lines: list[str], espeak_voice: str) -> str:
    command = [espeak_program(), "-q", "-b", "1", "--ipa", "-v", espeak_voice]
    try:
        done = subprocess.run(command, input="\n".join(lines) + "\n", capture_output=True, text=True,
                              encoding="utf-8", timeout=ESPEAK_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as error:
        raise PhonemizerError(f"espeak-ng took more than {ESPEAK_TIMEOUT_S:.0f} s and was stopped.") from error
    if done.returncode != 0:
        detail = done.stderr.strip() or f"exit code {done.returncode}"
        raise PhonemizerError(f"espeak-ng could not phonemize with the voice {espeak_voice!r}: {detail}")
    return done.stdout


def _clause_phonemes(clauses: list[Clause], espeak_voice: str) -> list[str]:
    """Each clause's IPA (espeak-ng's lines for it joined by spaces); one espeak-ng run for all when it can."""
    if not clauses:
        return []
    lines: list[str] = []
    for clause in clauses:
        lines.extend((clause.text, ""))
    blocks = [" ".join(block.split("\n")).strip() for block in re.split(r"\n\s*\n", _run_espeak(lines, espeak_voice))]
    blocks = [block for block in blocks if block]
    if len(blocks) == len(clauses):
        return blocks
    logger.debug("espeak-ng gave %d blocks for %d clauses; phonemizing them one by one", len(blocks), len(clauses))
    return [" ".join(_run_espeak([clause.text], espeak_voice).split("\n")).strip() for clause in clauses]


def phonemize(sentence: str, espeak_voice: str) -> list[str]:
    """One sentence's phonemes as Piper gives them to its voice: code points of the NFD-decomposed IPA."""
    clauses = split_clauses(sentence)
    ipa = "".join(phonemes + _terminator_phonemes(clause.terminator)
                  for clause, phonemes in zip(clauses, _clause_phonemes(clauses, espeak_voice)))
    return list(unicodedata.normalize("NFD", ipa))


def phoneme_ids(phonemes: list[str], id_map: dict[str, list[int]]) -> list[int]:
    """BOS, pad, then each phoneme followed by the pad, then EOS (piper-phonemize's phonemes_to_ids)."""
    pad = id_map[PAD]
    ids = [*id_map[BOS], *pad]
    missing: set[str] = set()
    for phoneme in phonemes:
        known = id_map.get(phoneme)
        if known is None:
            missing.add(phoneme)
            continue
        ids.extend(known)
        ids.extend(pad)
    ids.extend(id_map[EOS])
    if missing:
        logger.warning("Phonemes the voice does not know were left out: %s", " ".join(sorted(missing)))
    return ids
