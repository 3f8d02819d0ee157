"""IFEval instructions, checked by the ``if-verifiable`` package (google-research's checkers, packaged), offline.

Three things stand between those checkers and a deterministic, offline verdict, and are handled here:

- Two instructions (``length_constraints:number_sentences``, ``change_case:capital_word_frequency``) tokenize with
  NLTK's English Punkt model (``punkt_tab``), which NLTK downloads on request; nothing may download at run time.
  When it is not installed, IFEval is lent NLTK's untrained Punkt tokenizer for the check (noted in the score), or,
  with ``punkt_fallback`` off, those instructions are left unchecked with the reason.
- A checker given arguments it cannot use (a 'letter' that is not a letter, a missing keyword) silently picks one
  at random. Such an instruction is left unchecked, with the reason, rather than scored by a coin.
- ``language:response_language`` runs langdetect, which samples at random unless seeded: it is seeded (0).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

from ragtune.harness.model import IfevalSpec, Score
from ragtune.harness.scorers.base import ScoringSettings

# if-verifiable's checkers read module globals of the random, langdetect and NLTK modules that are set for the
# duration of a check; one check at a time keeps two threads from seeing each other's settings.
_LOCK = threading.Lock()
_SEEDS = (0, 1, 2)
UNTRAINED_PUNKT_NOTE = "sentences split by NLTK's untrained Punkt (the punkt_tab model is not installed)"
# IFEval's instruction ids (google-research instruction_following_eval/instructions_registry.py, unchanged since its
# release): case files are checked against these when if-verifiable is not installed, so that a typo is still
# caught by `ragtune cases validate`; when it is installed, its registry is the truth.
IFEVAL_INSTRUCTION_IDS = (
    "change_case:capital_word_frequency",
    "change_case:english_capital",
    "change_case:english_lowercase",
    "combination:repeat_prompt",
    "combination:two_responses",
    "detectable_content:number_placeholders",
    "detectable_content:postscript",
    "detectable_format:constrained_response",
    "detectable_format:json_format",
    "detectable_format:multiple_sections",
    "detectable_format:number_bullet_lists",
    "detectable_format:number_highlighted_sections",
    "detectable_format:title",
    "keywords:existence",
    "keywords:forbidden_words",
    "keywords:frequency",
    "keywords:letter_frequency",
    "language:response_language",
    "length_constraints:nth_paragraph_first_word",
    "length_constraints:number_paragraphs",
    "length_constraints:number_sentences",
    "length_constraints:number_words",
    "punctuation:no_comma",
    "startend:end_checker",
    "startend:quotation",
)


@dataclass
class InstructionVerdict:
    """One instruction's outcome: strict and loose verdicts, or None for both when it could not be checked."""

    id: str
    strict: bool | None
    loose: bool | None
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@lru_cache(maxsize=1)
def punkt_installed() -> bool:
    """Whether NLTK's English Punkt model is installed (NLTK would otherwise need to download it)."""
    import nltk

    try:
        nltk.data.find("tokenizers/punkt_tab/english/")
    except LookupError:
        return False
    return True


@lru_cache(maxsize=1)
def known_instruction_ids() -> tuple[str, ...]:
    """The instruction ids IFEval checks: if-verifiable's registry, else IFEval's published list.

    Importing the registry takes about two seconds (it loads NLTK and langdetect), so it is only asked for when a
    case file holds IFEval rules.
    """
    try:
        from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT
    except ImportError:
        return IFEVAL_INSTRUCTION_IDS
    return tuple(sorted(INSTRUCTION_DICT))


class _UntrainedPunkt:
    """Stands in for the ``nltk`` module inside IFEval's helpers: the same module, but Punkt without a model."""

    def __init__(self, nltk: Any) -> None:
        from nltk.tokenize import NLTKWordTokenizer
        from nltk.tokenize.punkt import PunktSentenceTokenizer

        self._nltk = nltk
        self._sentences = PunktSentenceTokenizer()
        self._words = NLTKWordTokenizer()
        self.used = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._nltk, name)

    def sentence_tokenizer(self) -> Any:
        self.used = True
        return self._sentences

    def word_tokenize(self, text: str, language: str = "english", preserve_line: bool = False) -> list[str]:
        # nltk.word_tokenize, with the untrained Punkt in place of the English model
        self.used = True
        sentences = [text] if preserve_line else self._sentences.tokenize(text)
        return [token for sentence in sentences for token in self._words.tokenize(sentence)]


@contextmanager
def _checking(settings: ScoringSettings) -> Iterator[_UntrainedPunkt | None]:
    """Seed random and langdetect, lend the untrained Punkt if needed, and put everything back afterwards."""
    import langdetect
    from if_verifiable.ifeval import instructions_util as util

    with _LOCK:
        state, seed = random.getstate(), langdetect.DetectorFactory.seed
        saved = util._get_sentence_tokenizer, util.nltk
        shim = None
        if settings.punkt_fallback and not punkt_installed():
            shim = _UntrainedPunkt(util.nltk)
            util._get_sentence_tokenizer, util.nltk = shim.sentence_tokenizer, shim
        langdetect.DetectorFactory.seed = 0
        try:
            yield shim
        finally:
            util._get_sentence_tokenizer, util.nltk = saved
            langdetect.DetectorFactory.seed = seed
            random.setstate(state)


def _resolved_args(checker_class: Any, instruction_id: str, kwargs: dict[str, Any], prompt: str, seed: int) -> str:
    """The arguments the checker settles on under ``seed``, built as if-verifiable's evaluate_instructions does."""
    random.seed(seed)
    checker = checker_class(instruction_id)
    checker.build_description(**{k: v for k, v in kwargs.items() if v is not None})
    args = checker.get_instruction_args()
    if args and "prompt" in args:
        checker.build_description(prompt=prompt)
        args = checker.get_instruction_args()
    return repr(args)


def _check_one(instruction_id: str, kwargs: dict[str, Any], prompt: str, answer: str) -> InstructionVerdict:
    from if_verifiable import IFEvalSample, evaluate_output_for_sample
    from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT

    checker_class = INSTRUCTION_DICT.get(instruction_id)
    if checker_class is None:
        return InstructionVerdict(instruction_id, None, None, "not an IFEval instruction id")
    try:
        drawn = {_resolved_args(checker_class, instruction_id, kwargs, prompt, seed) for seed in _SEEDS}
    except Exception as exc:  # IFEval raises ValueError, TypeError or KeyError on arguments it cannot use
        return InstructionVerdict(instruction_id, None, None, f"arguments IFEval refuses ({type(exc).__name__}: {exc})")
    if len(drawn) > 1:
        return InstructionVerdict(
            instruction_id,
            None,
            None,
            f"arguments {kwargs} leave IFEval's checker to pick some at random; give it valid ones",
        )
    random.seed(_SEEDS[0])
    sample = IFEvalSample(key=0, prompt=prompt, instruction_id_list=[instruction_id], kwargs=[kwargs])
    try:
        results, _ = evaluate_output_for_sample("ifeval", sample, answer)
    except LookupError:
        return InstructionVerdict(
            instruction_id,
            None,
            None,
            "needs NLTK's punkt_tab model, which is not installed and is never downloaded at run time; install "
            "it into an NLTK data folder or turn punkt_fallback on",
        )
    except Exception as exc:  # third-party checker code: its failure must not lose the other instructions
        return InstructionVerdict(instruction_id, None, None, f"IFEval's checker raised {type(exc).__name__}: {exc}")
    if not results:  # if-verifiable checks nothing in an empty answer; IFEval counts that as not followed
        return InstructionVerdict(instruction_id, False, False, "the answer is empty")
    return InstructionVerdict(instruction_id, results[0].strict_pass, results[0].loose_pass)


def check_instructions(
    spec: IfevalSpec, answer: str, settings: ScoringSettings, prompt: str = ""
) -> list[InstructionVerdict]:
    """Each instruction of ``spec`` checked against ``answer``, strict and loose."""
    verdicts = []
    with _checking(settings) as shim:
        for instruction_id, kwargs in zip(spec.instruction_id_list, spec.kwargs, strict=True):
            if shim is not None:
                shim.used = False
            verdict = _check_one(instruction_id, kwargs, prompt, answer)
            if shim is not None and shim.used and verdict.strict is not None:
                verdict.note = UNTRAINED_PUNKT_NOTE
            verdicts.append(verdict)
    return verdicts


def score_ifeval(name: str, spec: IfevalSpec, answer: str, settings: ScoringSettings, prompt: str = "") -> Score:
    """Share of the checkable instructions followed (in ``settings.ifeval_mode``); passed when all of them are."""
    try:
        verdicts = check_instructions(spec, answer, settings, prompt)
    except ImportError as exc:
        return Score.unscored(
            name, f"IFEval rules need the if-verifiable package ({exc}); install it with pip install 'ragtune[ifeval]'"
        )
    mode = settings.ifeval_mode
    checked = [v for v in verdicts if getattr(v, mode) is not None]
    if not checked:
        notes = "; ".join(f"{v.id}: {v.note}" for v in verdicts)
        reason = f"none of the {len(verdicts)} IFEval instructions could be checked ({notes})"
        return Score(name, "unscored", None, None, reason, {"instructions": [v.to_json() for v in verdicts]})
    followed = [v for v in checked if getattr(v, mode)]
    reason = f"followed {len(followed)} of {len(checked)} IFEval instructions ({mode})"
    missed = [v.id for v in checked if not getattr(v, mode)]
    if missed:
        reason += f"; not followed: {', '.join(missed)}"
    unchecked = [v for v in verdicts if getattr(v, mode) is None]
    if unchecked:
        reason += "; not checked: " + "; ".join(f"{v.id} ({v.note})" for v in unchecked)
    if any(v.note == UNTRAINED_PUNKT_NOTE for v in checked):
        reason += f"; {UNTRAINED_PUNKT_NOTE}"
    return Score.ok(
        name,
        len(followed) / len(checked),
        reason,
        rule="ifeval",
        mode=mode,
        instructions=[v.to_json() for v in verdicts],
    )
