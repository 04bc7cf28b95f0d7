"""An export made in the UI imports through the API (POST configurationPolicies) and compares equal."""

from __future__ import annotations

import json

import pytest

from policies import services
from policies.catalog import ASR_RULES_GROUP_ID, FIREWALL_RULE_GROUP_ID
from policies.models import Policy

FW = FIREWALL_RULE_GROUP_ID + "_"
LX = "linux_mdatp_managed_"
LXE = LX + "antivirusengine_exclusions_item_"
LXT = LX + "antivirusengine_threattypesettings_item_"
MAC = "com.apple.managedclient.preferences_"
ADOBE = ASR_RULES_GROUP_ID + "_blockadobereaderfromcreatingchildprocesses"
LSASS = ASR_RULES_GROUP_ID + "_blockcredentialstealingfromwindowslocalsecurityauthoritysubsystem"
CASES = {
    "firewall rules": (
        "Microsoft Defender Firewall Rules",
        {
            FIREWALL_RULE_GROUP_ID: [
                {
                    FW + "name": "Block Chrome Internet",
                    FW + "action_type": "0",
                    FW + "direction": "out",
                    FW + "protocol": 6,
                    FW + "remoteportranges": ["80", "443"],
                },
                {
                    FW + "name": "Allow RDP",
                    FW + "action_type": "1",
                    FW + "direction": "in",
                    FW + "protocol": 6,
                    FW + "localportranges": ["3389"],
                },
            ]
        },
    ),  # fmt: skip
    "asr rules": (
        "Attack Surface Reduction Rules",
        {
            ADOBE: "7674ba52-37eb-4a4f-a9a1-f0f9a1619a2c=1",
            LSASS: "9e6c4e1f-7d60-472f-ba1a-a39ef669e4b2=2",
            ADOBE + "_perruleexclusions": ["C:\\Tools\\reader.exe"],
        },
    ),
    # macOS and Linux (issue 18): list settings of objects, boolean choices, their own templates and platforms.
    "linux antivirus": (
        "Microsoft Defender Antivirus (Linux)",
        {
            LX + "antivirusengine_enforcementlevel": "real_time",
            LX + "cloudservice_enabled": True,
            LX + "antivirusengine_scanhistorymaximumitems": 12000,
            LX + "antivirusengine_exclusions": [
                {LXE + "$type": "excludedPath", LXE + "path": "/var/lib/mysql", LXE + "isdirectory": True},
                {LXE + "$type": "excludedFileName", LXE + "name": "/usr/sbin/mysqld"},
            ],
            LX + "antivirusengine_threattypesettings": [
                {LXT + "key": "archive_bomb", LXT + "value": "block"},
            ],
        },
        "linux",
    ),
    "linux global exclusions": (
        "Microsoft Defender Global Exclusions (AV+EDR) (Linux)",
        {
            LX + "exclusionsettings_exclusions": [
                {
                    LX + "exclusionsettings_exclusions_item_$type": "excludedPath",
                    LX + "exclusionsettings_exclusions_item_path": "/opt/app",
                    LX + "exclusionsettings_exclusions_item_isdirectory": True,
                },
            ]
        },
        "linux",
    ),  # fmt: skip
    "macos edr tags": (
        "Endpoint detection and response (macOS)",
        {MAC + "tags": [{MAC + "tags_item_key": "GROUP", MAC + "tags_item_value": "Design Macs"}]},
        "macos",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_ui_export_imports_through_the_api_and_compares_equal(
    case, client, global_admin, ga_api, make_group
):
    profile, values, *platform = CASES[case]
    include, exclude = make_group("Servers"), make_group("Pilot exclusions")
    original = services.create_policy(
        profile, (platform or ["windows"])[0], f"Exported {case}", "made in the wizard", values,
        {"include": [include.pk], "exclude": [exclude.pk]}, global_admin,
    )  # fmt: skip
    client.force_login(global_admin)
    response = client.get(f"/endpoint-security/policies/{original.policy_id}/export/")
    assert response.status_code == 200 and response["Content-Disposition"].startswith("attachment")
    exported = json.loads(response.content)
    assert len(exported["assignments"]) == 2

    services.delete(original)  # the same tenant: free the name for the import
    created = ga_api.post("/beta/deviceManagement/configurationPolicies", exported)
    assert created.status_code == 201, created.content
    imported = Policy.objects.get(policy_id=created.json()["id"])
    assert imported.values == original.values
    assert (imported.platform, imported.profile, imported.technologies) == (
        original.platform,
        original.profile,
        original.technologies,
    )

    again = json.loads(client.get(f"/endpoint-security/policies/{imported.policy_id}/export/").content)
    assert again == exported
    read = ga_api.get(
        f"/beta/deviceManagement/configurationPolicies/{imported.policy_id}",
        **{"$expand": "settings,assignments"},
    ).json()
    for key in (
        "name",
        "description",
        "platforms",
        "technologies",
        "roleScopeTagIds",
        "templateReference",
        "settings",
    ):
        assert read[key] == exported[key], key
    assert [a["target"] for a in read["assignments"]] == [a["target"] for a in exported["assignments"]]
