"""Sharing policy files (the shipped policy with one mistake each): refused whole, naming the file and
the field (``agreement[2].purpose``), never quoting a value from a checked field, and blaming only that
field: the agreements around it are not named. A policy is all or nothing, so "nothing lost" means the
stack never runs on half a policy: the error is raised before anything is decided.

Values in fields whose reason must say what was not found (an unknown message kind, a released field
that is not in the contract) are quoted on purpose: they are configuration, never personal data.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pytest

from mash_broker.agencies.registry import REGISTRY
from mash_broker.consent_gate import parse_policy
from mash_broker.consent_gate.policy import policy_from_document
from mash_broker.contracts import PolicyError
from mash_broker.core.policy import load_policy

from .conftest import FAMILY, GIVEN, ROOT, assert_unquoted

SHIPPED_PATH = ROOT / "mash_broker" / "defaults" / "policy.toml"
SHIPPED = SHIPPED_PATH.read_text()
DOCUMENT = tomllib.loads(SHIPPED)
Doc = dict[str, Any]


def _set(where: tuple[Any, ...], value: object) -> Callable[[Doc], None]:
    def edit(doc: Doc) -> None:
        node: Any = doc
        for part in where[:-1]:
            node = node[part]
        node[where[-1]] = value

    return edit


def _drop(where: tuple[Any, ...]) -> Callable[[Doc], None]:
    def edit(doc: Doc) -> None:
        node: Any = doc
        for part in where[:-1]:
            node = node[part]
        del node[where[-1]]

    return edit


def _same_name(doc: Doc) -> None:
    doc["agreement"][3]["name"] = doc["agreement"][1]["name"]


A = "agreement"
# case id -> (the edit, the field the error names, whether the value is checked (so never quoted))
CASES: dict[str, tuple[Callable[[Doc], None], str, bool]] = {
    "version-with-spaces": (_set(("version",), f"{GIVEN} {FAMILY}"), "version", True),
    "version-missing": (_drop(("version",)), "version", True),
    "gillick-age-9": (_set(("gillick_age",), 9), "gillick_age", True),
    "gillick-age-words": (_set(("gillick_age",), GIVEN), "gillick_age", True),
    "unknown-top-level-key": (_set(("share_all",), GIVEN), "share_all", True),
    "default-recipients-not-a-list": (
        _set(("default_recipients", "contact"), GIVEN),
        "default_recipients.contact",
        True,
    ),
    "no-agreements": (_set((A,), []), A, True),
    "name-capitals": (_set((A, 2, "name"), GIVEN), "agreement[2].name", True),
    "name-missing": (_drop((A, 1, "name")), "agreement[1].name", True),
    "name-twice": (_same_name, "agreement[3].name", False),
    "recipient-class-spaces": (
        _set((A, 0, "recipient_class"), f"{GIVEN} {FAMILY}"),
        "agreement[0].recipient_class",
        True,
    ),
    "purpose-hyphen-and-capitals": (_set((A, 2, "purpose"), f"{FAMILY}-Purpose"), "agreement[2].purpose", True),
    "message-kinds-empty": (_set((A, 0, "message_kinds"), []), "agreement[0].message_kinds", True),
    "message-kinds-unknown": (_set((A, 1, "message_kinds"), ["notification.gossip"]), "agreement[1]", False),
    "article6-unknown": (_set((A, 0, "article6"), [GIVEN]), "agreement[0].article6[0]", True),
    "article6-empty": (_set((A, 2, "article6"), []), "agreement[2].article6", True),
    "article9-unknown": (_set((A, 1, "article9"), [FAMILY]), "agreement[1].article9[0]", True),
    "statutory-power-unknown": (_set((A, 0, "statutory_powers"), [GIVEN]), "agreement[0].statutory_powers[0]", True),
    "released-fields-empty": (_set((A, 0, "released_fields"), []), "agreement[0].released_fields", True),
    "released-field-not-in-contract": (
        _set((A, 0, "released_fields"), ["payload.home_address"]),
        "agreement[0]",
        False,
    ),
    "released-field-the-signature": (_set((A, 1, "released_fields"), ["signature"]), "agreement[1]", False),
    "content-level-unknown": (_set((A, 0, "content_level"), GIVEN), "agreement[0].content_level", True),
    "max-age-26": (_set((A, 0, "max_age"), 26), "agreement[0].max_age", True),
    "min-age-negative": (_set((A, 1, "min_age"), -1), "agreement[1].min_age", True),
    "min-age-above-max-age": (_set((A, 1, "min_age"), 9), "agreement[1]", True),
    "agreement-unknown-key": (_set((A, 2, "share_everything"), GIVEN), "agreement[2].share_everything", True),
    "agreement-not-a-table": (_set((A, 1), GIVEN), "agreement[1]", True),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_mistake_is_refused_naming_the_file_and_field_only(logs: StringIO, case: str) -> None:
    edit, field, checked = CASES[case]
    doc = copy.deepcopy(DOCUMENT)
    edit(doc)

    with pytest.raises(PolicyError) as refused:
        policy_from_document(doc, source="area-policy.toml", kinds=REGISTRY.policy_kinds)

    error = refused.value
    assert (error.record, error.code) == ("area-policy.toml", "policy_invalid")
    assert error.field is not None
    assert error.field.startswith(field), (error.field, str(error))
    # Only this field is blamed: every problem listed is at (or under) it.
    for problem in error.message.split("; "):
        assert problem.startswith(field), problem
    if checked:
        assert_unquoted(str(error), logs.getvalue())


TEXT_CASES: dict[str, tuple[str, str]] = {
    # the edit to the shipped text, the line the TOML error names
    "unclosed-string": ('version = "example-area-2026.11-5"', f'version = "{GIVEN}'),
    "bare-word-value": ("gillick_age = 12", f"gillick_age = {GIVEN}"),
    "duplicate-key": ("gillick_age = 12", "gillick_age = 12\ngillick_age = 13"),
    "unclosed-array": ('message_kinds = ["notification.encompass"]', f'message_kinds = ["{FAMILY}"'),
}


@pytest.mark.parametrize("case", list(TEXT_CASES))
def test_a_file_that_is_not_toml_is_refused_naming_where(tmp_path: Path, logs: StringIO, case: str) -> None:
    old, new = TEXT_CASES[case]
    assert old in SHIPPED
    path = tmp_path / "policy.toml"
    text = SHIPPED.replace(old, new, 1)
    path.write_text(text)

    with pytest.raises(PolicyError) as refused:
        load_policy(path, REGISTRY.policy_kinds)  # what `mash up` and `mash gate` load, before anything runs

    assert refused.value.record == str(path)
    assert "line" in str(refused.value)
    assert_unquoted(str(refused.value), logs.getvalue())


def test_the_shipped_policy_is_the_valid_neighbour_of_every_case() -> None:
    """Each case is the shipped policy with one edit, and the shipped policy loads whole."""
    policy = parse_policy(SHIPPED, source=str(SHIPPED_PATH), kinds=REGISTRY.policy_kinds)
    assert len(policy.agreements) == len(DOCUMENT[A]) >= 4
