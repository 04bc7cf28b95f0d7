"""devices.onboarding.evaluate: the seed's four steps and every unsupported case, decided without a database."""

from __future__ import annotations

import pytest

from devices import onboarding
from devices.onboarding import evaluate
from tests.devices.device_factories import OTHER_TENANT_ID, device_values, tenant_values


def decide(tenant=None, **facts):
    return evaluate(device_values(**facts), tenant or tenant_values())


# ---- success paths and the three kinds of trust ------------------------------------------------------


def test_a_workgroup_device_gets_a_synthetic_registration_and_both_labels():
    outcome = decide(join_type="workgroup")
    assert outcome.managed
    assert outcome.managed_by == "mde"
    assert outcome.management_type == "MicrosoftSense"
    assert outcome.trust == "synthetic"
    assert outcome.labels == ("MDEJoined", "MDEManaged")
    assert outcome.status == "Success" and outcome.code is None
    assert [s.name for s in outcome.steps] == [
        onboarding.STEP_SURVEY,
        onboarding.STEP_ENABLE,
        onboarding.STEP_TRUST,
        onboarding.STEP_MANAGED,
    ]
    assert all(s.outcome == "ok" for s in outcome.steps)


@pytest.mark.parametrize("join_type", ["entra_joined", "hybrid_joined", "entra_registered"])
def test_an_existing_registration_is_reused_without_the_mdejoined_label(join_type):
    outcome = decide(join_type=join_type)
    assert outcome.managed and outcome.trust == "existing"
    assert outcome.join_type == join_type
    assert outcome.labels == ("MDEManaged",)
    assert "reused" in outcome.steps[2].message


def test_a_domain_joined_device_completes_a_hybrid_join():
    outcome = decide(join_type="domain_joined", in_sync_scope=True)
    assert outcome.managed and outcome.trust == "hybrid"
    assert outcome.join_type == "hybrid_joined"
    assert outcome.labels == ("MDEJoined", "MDEManaged")
    assert "hybrid join" in outcome.steps[2].message


def test_a_device_that_already_has_a_trust_keeps_it():
    outcome = decide(join_type="hybrid_joined", trust="hybrid")
    assert outcome.managed and outcome.trust == "hybrid"


@pytest.mark.parametrize(
    "os,version", [("windows_server", "10.0.20348.2402"), ("macos", "14.4.1"), ("linux", "22.04")]
)
def test_every_platform_can_be_managed(os, version):
    assert decide(os=os, os_version=version).managed


# ---- step 1: Intune presence -----------------------------------------------------------------------------


def test_a_device_enrolled_in_intune_is_managed_by_intune_and_skips_this_channel():
    outcome = decide(intune_enrolled=True, join_type="entra_joined")
    assert not outcome.managed
    assert outcome.managed_by == "intune"
    assert outcome.management_type == "MDM"
    assert "MDEManaged" not in outcome.labels
    assert outcome.code is None and outcome.status == ""
    assert "does not process" in outcome.message
    assert [s.outcome for s in outcome.steps] == ["info"]


def test_an_intune_device_with_a_configmgr_client_is_co_managed():
    outcome = decide(intune_enrolled=True, configmgr_client=True, join_type="hybrid_joined")
    assert outcome.managed_by == "co_managed" and not outcome.managed


def test_intune_wins_even_when_every_switch_is_off():
    outcome = decide(
        tenant_values(allow_mde_enforcement=False, windows_client_enabled=False), intune_enrolled=True
    )
    assert outcome.managed_by == "intune" and outcome.code is None


def test_a_device_not_onboarded_to_defender_is_not_enrolled_and_gets_no_status():
    outcome = decide(mde_onboarded=False)
    assert not outcome.managed and outcome.managed_by == "none"
    assert outcome.code is None and outcome.status == ""
    assert outcome.steps[0].outcome == "skipped"


# ---- step 2: tenant switches -----------------------------------------------------------------------------


def test_a_platform_switched_off_leaves_the_device_not_enrolled_code_2():
    outcome = decide(tenant_values(windows_client_enabled=False))
    assert not outcome.managed
    assert outcome.code == 2
    assert outcome.status == "Device is not enrolled and has never been enrolled"
    assert "Turn on Windows Client" in outcome.message
    assert outcome.steps[-1].outcome == "failed"


def test_each_platform_has_its_own_switch():
    tenant = tenant_values(windows_server_enabled=False)
    assert decide(tenant, os="windows").managed
    assert decide(tenant, os="windows_server").code == 2


def test_pilot_mode_without_the_tag_is_code_2_and_names_the_tag():
    outcome = decide(tenant_values(windows_server_scope="tagged"), os="windows_server", tags=[])
    assert outcome.code == 2 and not outcome.managed
    assert "MDE-Management" in outcome.message and "pilot mode" in outcome.message


def test_pilot_mode_with_the_tag_is_managed():
    outcome = decide(
        tenant_values(windows_server_scope="tagged"), os="windows_server", tags=["MDE-Management"]
    )
    assert outcome.managed
    assert "tagged MDE-Management" in outcome.steps[1].message


def test_the_pilot_tag_is_matched_case_insensitively_among_other_tags():
    outcome = decide(tenant_values(windows_client_scope="tagged"), tags=["Finance", "mde-management"])
    assert outcome.managed


def test_a_defender_for_cloud_device_is_not_enrolled_while_that_switch_is_off():
    outcome = decide(tenant_values(mdc_devices_enabled=False), os="windows_server", onboarded_via_mdc=True)
    assert outcome.code == 2 and "Microsoft Defender for Cloud" in outcome.message
    assert decide(
        tenant_values(mdc_devices_enabled=True), os="windows_server", onboarded_via_mdc=True
    ).managed


def test_the_intune_switch_off_is_a_microsoft_intune_configuration_issue_code_8():
    outcome = decide(tenant_values(allow_mde_enforcement=False))
    assert outcome.code == 8
    assert outcome.status == "Microsoft Intune Configuration issue"
    assert (
        "Allow Microsoft Defender for Endpoint to enforce Endpoint Security Configurations" in outcome.message
    )


def test_a_configmgr_client_while_configmgr_manages_security_is_code_4():
    outcome = decide(
        tenant_values(configmgr_manages_security=True), configmgr_client=True, join_type="hybrid_joined"
    )
    assert outcome.code == 4
    assert outcome.status == "Device is managed by SCCM Agent"
    assert outcome.managed_by == "configmgr"
    assert "Manage Security settings using Configuration Manager" in outcome.message


def test_a_configmgr_client_is_managed_by_mde_when_configmgr_does_not_manage_security():
    outcome = decide(
        tenant_values(configmgr_manages_security=False), configmgr_client=True, join_type="hybrid_joined"
    )
    assert outcome.managed and outcome.managed_by == "mde"


def test_the_configmgr_switch_does_not_affect_devices_without_the_client():
    assert decide(tenant_values(configmgr_manages_security=True), configmgr_client=False).managed


# ---- step 2: unsupported devices --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "facts,reason,words",
    [
        ({"is_non_persistent_vdi": True}, "non_persistent_vdi", "non-persistent"),
        ({"os": "windows_server", "is_server_core": True}, "server_core", "Server Core"),
        ({"os": "windows_server", "is_domain_controller": True}, "domain_controller", "Domain controllers"),
        ({"language_mode": "ConstrainedLanguage"}, "constrained_language", "ConstrainedLanguage"),
        (
            {"os": "windows_server", "license_source": "servers_only"},
            "servers_only_license",
            "Defender for Servers",
        ),
    ],
)
def test_each_unsupported_kind_of_device_is_a_general_error_that_says_why(facts, reason, words):
    outcome = decide(**facts)
    assert not outcome.managed
    assert outcome.reason == reason
    assert outcome.status == "General error" and outcome.code in {5, 6, 7, 9, 11, 12, *range(26, 34)}
    assert words in outcome.message
    assert "MDEManaged" not in outcome.labels and outcome.management_type == ""


# ---- step 3: trust prerequisites -------------------------------------------------------------------------


def test_a_device_of_another_tenant_is_a_tenant_mismatch_code_15():
    outcome = decide(tenant_id=OTHER_TENANT_ID)
    assert outcome.code == 15 and outcome.status == "Tenant mismatch"
    assert str(OTHER_TENANT_ID) in outcome.message
    assert outcome.steps[-1].name == onboarding.STEP_TRUST


def test_hybrid_join_without_entra_connect_sync_is_an_entra_connect_misconfiguration_code_36():
    outcome = decide(tenant_values(entra_connect_sync_configured=False), join_type="domain_joined")
    assert outcome.code == 36
    assert outcome.status == "Microsoft Entra Connect misconfiguration"
    assert outcome.join_type == "domain_joined" and outcome.trust == ""


def test_hybrid_join_of_a_device_outside_sync_scope_is_a_general_hybrid_join_failure_code_10():
    outcome = decide(join_type="domain_joined", in_sync_scope=False)
    assert outcome.code == 10
    assert outcome.status == "General Hybrid join failure"
    assert "sync scope" in outcome.message


def test_the_sync_prerequisites_do_not_matter_to_devices_that_need_no_hybrid_join():
    tenant = tenant_values(entra_connect_sync_configured=False)
    assert decide(tenant, join_type="workgroup", in_sync_scope=False).managed
    assert decide(tenant, join_type="entra_joined", in_sync_scope=False).managed


# ---- labels when management stops, and purity ------------------------------------------------------------


def test_leaving_scope_removes_mdemanaged_but_keeps_mdejoined():
    device = device_values(join_type="workgroup")
    managed = evaluate(device, tenant_values())
    for name, value in managed.state().items():
        setattr(device, name, value)
    outcome = evaluate(device, tenant_values(windows_client_enabled=False))
    assert outcome.labels == ("MDEJoined",)
    assert outcome.trust == "synthetic"
    assert outcome.management_type == "" and outcome.managed_by == "none"


def test_evaluating_an_applied_outcome_again_gives_the_same_state():
    for facts in ({"join_type": "workgroup"}, {"join_type": "domain_joined"}, {"join_type": "entra_joined"}):
        device = device_values(**facts)
        first = evaluate(device, tenant_values())
        for name, value in first.state().items():
            setattr(device, name, value)
        assert not onboarding.differs(device, evaluate(device, tenant_values()))


def test_evaluate_needs_no_database():
    # No django_db mark here: pytest-django raises on any query, so reaching the end proves evaluate() is pure.
    for facts in ({"join_type": "domain_joined"}, {"intune_enrolled": True}, {"tenant_id": OTHER_TENANT_ID}):
        assert decide(**facts).reason
