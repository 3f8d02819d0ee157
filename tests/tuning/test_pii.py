"""The personal-data scan: each kind found (and checked, so look-alikes are not), masked or dropped."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragtune.project import Project
from ragtune.tuning.data import build_dataset, load_dataset
from ragtune.tuning.pii import PII_KINDS, mask, scan
from tests.tuning.helpers import chat, chat_file

SAMPLES = {
    "email": ("Write to jo.doe+hr@example.org today.", "Write to [EMAIL] today."),
    "phone": ("Call +44 20 7946 0958 or (415) 555-0132.", "Call [PHONE] or [PHONE]."),
    "credit_card": ("Card 4111 1111 1111 1111 was charged.", "Card [CREDIT_CARD] was charged."),
    "iban": ("Pay to FR14 2004 1010 0505 0001 3M02 606 now.", "Pay to [IBAN] now."),
    "account_number": ("Her account number: 12345678 is frozen.", "Her account number: [ACCOUNT_NUMBER] is frozen."),
}


@pytest.mark.parametrize("kind", PII_KINDS)
def test_each_kind_is_found_and_masked(kind: str) -> None:
    text, masked = SAMPLES[kind]
    found = scan(text)
    assert found and {m.kind for m in found} == {kind}
    assert mask(text, found) == masked


@pytest.mark.parametrize(
    "text",
    [
        "Card 4111 1111 1111 1112 fails the Luhn check.",  # one digit off: not a card number
        "IBAN FR14 2004 1010 0505 0001 3M02 607 has bad check digits.",
        "Version 2026.1.2 shipped on 2026-01-05 with 600 requests per minute and 100,000 runs.",
        "Support is open 07:00 to 20:00 CET; the API key prefix is lr_live_.",
        "The status page is status.lumenrelay.example.",
    ],
)
def test_look_alikes_are_left_alone(text: str) -> None:
    assert scan(text) == []


def test_phone_regions_decide_national_formats() -> None:
    assert scan("Appelez le 04 72 10 20 30.") == []
    assert [m.kind for m in scan("Appelez le 04 72 10 20 30.", ("US", "FR"))] == ["phone"]


def test_an_account_number_inside_an_iban_is_one_match() -> None:
    text = "account number: GB82 WEST 1234 5698 7654 32"
    assert [m.kind for m in scan(text)] == ["iban"]


@pytest.fixture
def pii_file(tmp_path: Path) -> Path:
    lines = [chat(f"What is the {kind.replace('_', ' ')} on file?", SAMPLES[kind][0]) for kind in PII_KINDS]
    return chat_file(tmp_path / "pii.jsonl", [*lines, chat("How long is the trial?", "30 days.")])


def test_mask_mode_keeps_the_examples_with_placeholders(project: Project, pii_file: Path) -> None:
    settings = project.config.tuning.model_copy(update={"pii": "mask", "holdout": 0.0})
    report = build_dataset(project, "masked", jsonl=[pii_file], settings=settings)
    assert report.pii == dict.fromkeys(PII_KINDS, 1) | {"phone": 2}
    assert report.excluded["pii"] == 0 and report.pii_masked_examples == 5 and report.kept == 6
    answers = [e.messages[-1]["content"] for e in load_dataset(project, "masked").train]
    assert answers == [masked for _, masked in SAMPLES.values()] + ["30 days."]
    on_disk = Path(report.paths["train"]).read_text()
    assert "jo.doe" not in on_disk and "4111" not in on_disk and "[IBAN]" in on_disk


def test_drop_mode_leaves_the_examples_out(project: Project, pii_file: Path) -> None:
    settings = project.config.tuning.model_copy(update={"pii": "drop"})
    report = build_dataset(project, "dropped", jsonl=[pii_file], settings=settings)
    assert report.excluded["pii"] == 5 and report.kept == 1
    assert {e["reason"] for e in report.exclusions} == {"pii"}
    assert sorted(k for e in report.exclusions for k in e["kinds"]) == sorted(PII_KINDS)
    (only,) = load_dataset(project, "dropped").examples
    assert only.messages[-1]["content"] == "30 days."
