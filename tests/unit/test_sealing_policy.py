"""An agreement's ``without_recipient_key``: refuse by default, tls_only when written, anything else refused
naming the file and the field (in the regional policy and in an authority's overrides alike)."""

from __future__ import annotations

from pathlib import Path

import pytest
from consent_builders import ROOT

from mash_broker.consent_gate import WithoutRecipientKey, parse_policy
from mash_broker.contracts import PolicyError
from mash_broker.core.policy import LoadedPolicy, load_override
from mash_broker.core.sealing import rule_for

SOURCE = "mash_broker/defaults/policy.toml"
SHIPPED = (ROOT / SOURCE).read_text()
ENCOMPASS = 'name = "operation-encompass-school-key-adults"'


def with_rule(value: str) -> str:
    return SHIPPED.replace(ENCOMPASS, f"{ENCOMPASS}\nwithout_recipient_key = {value}", 1)


def test_every_shipped_agreement_refuses_a_recipient_without_a_key() -> None:
    policy = parse_policy(SHIPPED, source=SOURCE)

    assert {a.without_recipient_key for a in policy.agreements} == {WithoutRecipientKey.REFUSE}
    assert rule_for(policy, "operation-encompass-school-key-adults") is WithoutRecipientKey.REFUSE


@pytest.mark.parametrize(("value", "rule"), [('"refuse"', "refuse"), ('"tls_only"', "tls_only")])
def test_an_agreement_says_what_happens_without_a_recipient_key(value: str, rule: str) -> None:
    policy = parse_policy(with_rule(value), source=SOURCE)

    assert rule_for(policy, "operation-encompass-school-key-adults") is WithoutRecipientKey(rule)
    assert rule_for(policy, "health-visitor-domestic-abuse") is WithoutRecipientKey.REFUSE  # the others keep it


def test_an_agreement_not_in_the_policy_refuses() -> None:
    policy = parse_policy(with_rule('"tls_only"'), source=SOURCE)
    assert rule_for(policy, "no-such-agreement") is WithoutRecipientKey.REFUSE


@pytest.mark.parametrize("value", ['"plaintext"', '"TLS_ONLY"', "true", '""'])
def test_another_value_is_refused_naming_the_file_and_field(value: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(with_rule(value), source=SOURCE)

    assert caught.value.record == SOURCE
    assert caught.value.field == "agreement[0].without_recipient_key"
    assert "'refuse' or 'tls_only'" in caught.value.message


def test_an_authoritys_override_is_checked_the_same_way(tmp_path: Path) -> None:
    base = LoadedPolicy(parse_policy(SHIPPED, source=SOURCE), SOURCE, SHIPPED)
    agreement = SHIPPED[SHIPPED.index("[[agreement]]") : SHIPPED.index("# Health visitors")]
    override = tmp_path / "policy.toml"

    def write(rule: str) -> None:
        override.write_text(
            f'version = "998-test-1"\nbase = "{base.policy.version}"\n\n'
            + agreement.replace(ENCOMPASS, f"{ENCOMPASS}\nwithout_recipient_key = {rule}")
        )

    write('"tls_only"')
    loaded = load_override(override, base)
    assert rule_for(loaded.policy, "operation-encompass-school-key-adults") is WithoutRecipientKey.TLS_ONLY

    write('"never"')
    with pytest.raises(PolicyError) as caught:
        load_override(override, base)
    assert caught.value.record == str(override)
    assert "agreement[0].without_recipient_key" in caught.value.message
