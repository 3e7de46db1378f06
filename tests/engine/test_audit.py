"""The audit log is a hash chain whose head the state store keeps: any tampering is found (DESIGN §9)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from reconciler.stores.audit import entry_hash
from tests.support.engine import Installation
from tests.support.repo import PARTNER


@pytest.fixture
def audited(installation: Installation) -> Installation:
    installation.repo.write_partner()
    installation.repo.write_partner(PARTNER.replace("acme-bank", "beta-ngo"), name="beta-ngo")
    installation.repo.commit()
    installation.apply()
    return installation


def lines(installation: Installation) -> list[str]:
    return (installation.home / "audit.jsonl").read_text().splitlines(keepends=True)


def rewrite(installation: Installation, new_lines: list[str]) -> None:
    (installation.home / "audit.jsonl").write_text("".join(new_lines))


def verdict(installation: Installation) -> tuple[int, dict[str, object]]:
    result = installation.run("--output", "json", "audit", "verify")
    return result.exit_code, result.json()


def test_entries_have_the_design_fields_and_chain(audited: Installation) -> None:
    entries = [json.loads(line) for line in lines(audited)]
    assert len(entries) == 12  # 2 x (issued, registered, approval, review, webhook registered, webhook failing)
    previous = "0" * 64
    for seq, entry in enumerate(entries, start=1):
        assert set(entry) == {"seq", "time", "actor", "event", "partner", "details", "prev_hash", "hash"}
        assert entry["seq"] == seq
        assert entry["prev_hash"] == previous
        assert entry["hash"] == entry_hash(entry)
        previous = entry["hash"]
    assert verdict(audited) == (0, {"intact": True, "entries": 12, "firstBrokenSeq": None, "problem": None})


def _edit_details(entries: list[str]) -> list[str]:
    entry = json.loads(entries[2])
    entry["details"]["reason"] = "nothing to see"
    return [*entries[:2], json.dumps(entry) + "\n", *entries[3:]]


def _edit_and_rehash(entries: list[str]) -> list[str]:
    entry = json.loads(entries[2])
    entry["actor"] = "mallory"
    entry["hash"] = entry_hash(entry)
    return [*entries[:2], json.dumps(entry) + "\n", *entries[3:]]


@pytest.mark.parametrize(
    ("tamper", "first_broken"),
    [
        (_edit_details, 3),
        (_edit_and_rehash, 4),  # its own hash fixed, the next entry's prev_hash no longer matches
        (lambda entries: entries[:3] + entries[4:], 4),  # deletion
        (lambda entries: [*entries[:3], entries[4], entries[3], *entries[5:]], 4),  # reordering
        (lambda entries: entries[:8], 9),  # truncation of the tail
        (lambda entries: [], 1),  # the whole log removed
    ],
    ids=["edit", "edit-and-rehash", "delete", "reorder", "truncate", "empty"],
)
def test_tampering_is_detected_with_the_first_broken_seq(
    audited: Installation, tamper: Callable[[list[str]], list[str]], first_broken: int
) -> None:
    rewrite(audited, tamper(lines(audited)))
    code, report = verdict(audited)
    assert code == 1
    assert report["intact"] is False
    assert report["firstBrokenSeq"] == first_broken


def test_a_rewritten_chain_does_not_match_the_committed_head(audited: Installation) -> None:
    entries = [json.loads(line) for line in lines(audited)]
    previous = "0" * 64
    forged = []
    for entry in entries:
        entry["details"] = {}
        entry["prev_hash"] = previous
        entry["hash"] = previous = entry_hash(entry)
        forged.append(json.dumps(entry) + "\n")
    rewrite(audited, forged)
    code, report = verdict(audited)
    assert code == 1
    assert report["firstBrokenSeq"] == 12


def test_apply_refuses_to_write_onto_a_truncated_log(audited: Installation) -> None:
    rewrite(audited, lines(audited)[:3])
    audited.repo.write_partner(PARTNER.replace("acme-bank", "gamma-gov"), name="gamma-gov")
    audited.repo.commit()
    result = audited.run("apply")
    assert result.exit_code == 1
    assert "audit verify" in result.stderr


def test_uncommitted_entries_past_the_head_are_cut_on_recovery(audited: Installation) -> None:
    before = lines(audited)
    stray = json.loads(before[-1])
    stray["seq"] += 1
    rewrite(audited, [*before, json.dumps(stray) + "\n"])  # as if killed between append and commit
    audited.repo.write_partner(PARTNER.replace("acme-bank", "gamma-gov"), name="gamma-gov")
    audited.repo.commit()
    audited.apply()
    assert verdict(audited)[0] == 0
    assert lines(audited)[: len(before)] == before
