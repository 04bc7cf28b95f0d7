"""devices.precedence: who wins on a Windows device, per setting, ASR rule and exclusion entry (pure, no database)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from devices.models import ConfigSource
from devices.precedence import (
    DEFAULT,
    DISABLE_LOCAL_ADMIN_MERGE,
    GROUP_POLICY,
    INTUNE,
    LOCAL_ADMIN,
    RANK,
    SOURCES,
    TAMPER_PROTECTION,
    UNKNOWN,
    Attempt,
    replay_local_changes,
    resolve,
)

P = "device_vendor_msft_policy_config_defender_"
RTP = P + "allowrealtimemonitoring"
PUA = P + "puaprotection"
PATHS = P + "excludedpaths"
ASR = P + "attacksurfacereductionrules_blockadobereaderfromcreatingchildprocesses"
GUID = "7674ba52-37eb-4a4f-a9a1-f0f9a1619a2c"
PROTECTED = frozenset({RTP})

kinds = st.sampled_from(sorted(RANK))
values = st.integers(min_value=0, max_value=2)


def one(entries, setting_id, entry=""):
    [found] = [e for e in entries if e.setting_id == setting_id and e.entry == entry]
    return found


def test_source_codes_are_the_models_choices():
    assert set(SOURCES) == set(ConfigSource.values)


def test_a_gpo_that_sets_an_asr_rule_to_audit_wins_over_this_consoles_block():
    entries = resolve(
        [Attempt(ASR, "mde", f"{GUID}=1"), Attempt(ASR, "gpo", f"{GUID}=2", "Servers baseline", 1)],
        tamper_protection=True,
        tamper_protected=PROTECTED,
    )
    found = one(entries, ASR)
    assert (found.value, found.configured_by) == (f"{GUID}=2", GROUP_POLICY)
    assert [(a.source, a.value) for a in found.other_attempts] == [(INTUNE, f"{GUID}=1")]


@given(st.lists(st.tuples(kinds, values), min_size=1, max_size=6))
def test_without_modifiers_the_strongest_source_wins_and_every_other_attempt_is_listed(pairs):
    attempts = [Attempt(PUA, kind, value, f"n{i}", i) for i, (kind, value) in enumerate(pairs)]
    found = one(resolve(attempts, tamper_protection=False, tamper_protected=PROTECTED), PUA)
    strongest = min(attempts, key=lambda a: (a.strength, a.name))
    assert found.value == strongest.value
    assert found.configured_by == strongest.source
    assert len(found.other_attempts) == len(attempts) - 1


@given(st.lists(st.sampled_from(["gpo", "mde", "configmgr", "mdm"]), min_size=1, max_size=4), values, values)
def test_local_setting_override_lets_the_local_value_win_over_every_policy(policy_kinds, local, policy):
    attempts = [Attempt(PUA, kind, policy, kind) for kind in policy_kinds] + [Attempt(PUA, "local", local)]
    with_override = one(
        resolve(attempts, tamper_protection=False, tamper_protected=PROTECTED, local_overrides={PUA}), PUA
    )
    without = one(resolve(attempts, tamper_protection=False, tamper_protected=PROTECTED), PUA)
    assert (with_override.value, with_override.configured_by) == (local, LOCAL_ADMIN)
    assert without.value == policy and without.configured_by != LOCAL_ADMIN


@given(st.lists(kinds, min_size=1, max_size=5), st.booleans())
def test_tamper_protection_keeps_a_protected_feature_on_whoever_turns_it_off(off_kinds, override):
    attempts = [Attempt(RTP, kind, 0, f"{kind}{i}", i) for i, kind in enumerate(off_kinds)]
    found = one(
        resolve(
            attempts,
            tamper_protection=True,
            tamper_protected=PROTECTED,
            local_overrides={RTP} if override else (),
        ),
        RTP,
    )
    assert (found.value, found.configured_by) == (1, TAMPER_PROTECTION)
    assert len(found.other_attempts) == len(attempts)  # every refused attempt is shown
    off = one(resolve(attempts, tamper_protection=False, tamper_protected=PROTECTED), RTP)
    assert off.value == 0 and off.configured_by != TAMPER_PROTECTION


@given(kinds)
def test_tamper_protection_does_not_stop_turning_a_protected_feature_on_or_unprotected_settings(kind):
    on = one(resolve([Attempt(RTP, kind, 1)], tamper_protection=True, tamper_protected=PROTECTED), RTP)
    assert (on.value, on.configured_by) == (1, Attempt(RTP, kind, 1).source)
    other = one(resolve([Attempt(PUA, kind, 0)], tamper_protection=True, tamper_protected=PROTECTED), PUA)
    assert other.value == 0


def test_two_sources_of_the_same_rank_and_order_that_disagree_are_unknown():
    attempts = [Attempt(PUA, "gpo", 1, "B", 1), Attempt(PUA, "gpo", 0, "A", 1)]
    found = one(resolve(attempts, tamper_protection=False, tamper_protected=PROTECTED), PUA)
    assert found.configured_by == UNKNOWN and found.value == 0  # the name that sorts first: deterministic
    agree = [Attempt(PUA, "gpo", 1, "B", 1), Attempt(PUA, "gpo", 1, "A", 1)]
    assert (
        one(resolve(agree, tamper_protection=False, tamper_protected=PROTECTED), PUA).configured_by
        == GROUP_POLICY
    )


paths = st.lists(st.sampled_from(["C:\\a", "C:\\b", "D:\\c", "E:\\d"]), max_size=4, unique=True)


@given(paths, paths, paths, st.booleans())
def test_exclusions_merge_entry_by_entry_unless_local_admin_merge_is_off(ours, gpo, local, merge_off):
    attempts = [
        Attempt(PATHS, "mde", ours),
        Attempt(PATHS, "gpo", gpo, "G", 1),
        Attempt(PATHS, "local", local),
    ]
    if merge_off:
        attempts.append(Attempt(DISABLE_LOCAL_ADMIN_MERGE, "mde", 1))
    entries = [
        e
        for e in resolve(attempts, tamper_protection=True, tamper_protected=PROTECTED)
        if e.setting_id == PATHS
    ]
    assert sorted(e.entry for e in entries) == sorted(set(ours) | set(gpo) | set(local))
    in_effect = {e.entry for e in entries if e.value is not None}
    policy = set(ours) | set(gpo)
    assert in_effect == (policy if merge_off else policy | set(local))
    for e in entries:
        if e.entry in gpo:
            assert e.configured_by == GROUP_POLICY
        elif e.entry in ours:
            assert e.configured_by == INTUNE
        elif merge_off:
            assert (e.configured_by, [a.source for a in e.other_attempts]) == (DEFAULT, [LOCAL_ADMIN])
        else:
            assert e.configured_by == LOCAL_ADMIN


@settings(max_examples=50)
@given(st.lists(st.tuples(st.sampled_from([PUA, RTP, ASR]), kinds, values), max_size=8), st.booleans())
def test_the_answer_does_not_depend_on_the_order_the_sources_are_given_in(items, tamper):
    attempts = [
        Attempt(s, k, v if s != ASR else f"{GUID}={v}", f"n{i}", i) for i, (s, k, v) in enumerate(items)
    ]
    forward = resolve(attempts, tamper_protection=tamper, tamper_protected=PROTECTED)
    backward = resolve(list(reversed(attempts)), tamper_protection=tamper, tamper_protected=PROTECTED)
    assert [(e.setting_id, e.value, e.configured_by) for e in forward] == [
        (e.setting_id, e.value, e.configured_by) for e in backward
    ]


def test_local_changes_replay_set_add_and_remove_in_time_order():
    local = replay_local_changes(
        [
            (PATHS, "add", ["C:\\a"]),
            (PATHS, "add", ["C:\\b", "C:\\a"]),
            (PATHS, "remove", ["C:\\a"]),
            (RTP, "set", 0),
            (RTP, "set", 1),
            (PUA, "set", 2),
            (PUA, "set", None),
        ]
    )
    assert local == {PATHS: ["C:\\b"], RTP: 1}


def test_an_unknown_source_kind_is_refused():
    import pytest

    with pytest.raises(ValueError, match="unknown source kind"):
        resolve([Attempt(PUA, "sccm", 1)], tamper_protection=False, tamper_protected=PROTECTED)


def test_get_mppreference_shows_the_effective_values_of_the_same_function():
    from devices import agent

    state, _ = agent.apply(agent.AgentState.from_dict({}), {ASR: f"{GUID}=1", PATHS: ["C:\\ours"]})
    others = [Attempt(ASR, "gpo", f"{GUID}=2", "Audit GPO", 1), Attempt(PATHS, "local", ["C:\\dev"])]
    effective = agent.effective_entries(state, others)
    prefs = dict(agent.mp_preference(state, effective))
    index = [g.lower() for g in prefs["AttackSurfaceReductionRules_Ids"]].index(GUID)
    assert prefs["AttackSurfaceReductionRules_Actions"][index] == 2
    assert sorted(prefs["ExclusionPath"]) == ["C:\\dev", "C:\\ours"]
    text = agent.format_mp_preference(state, effective=effective, enumeration_limit=-1)
    assert "C:\\dev" in text
    # without other sources the view is the channel's own state, as before
    assert dict(agent.mp_preference(state))["ExclusionPath"] == ["C:\\ours"]
