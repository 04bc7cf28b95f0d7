"""The managed configuration Defender for Endpoint reads on Linux (mdatp_managed.json) and macOS
(com.microsoft.wdav): rendered from what the one engine decides, checked against the reference's documented key
paths, and the effective values with local `mdatp config` values and the merge policies (pure, no database)."""

from __future__ import annotations

import json
import plistlib
from pathlib import Path

import pytest

from devices import mdatp
from policies.catalog import MAC_LINUX_DATA_FILE, get_catalog
from policies.engine import DeviceFacts, PolicyInput, resolve
from policies.validation import validate_policy_values

GOLDEN = Path(__file__).parent / "golden"
REFERENCE = Path("/work/shared/reference/setting-catalog-macos-linux.json")
L = "linux_mdatp_managed_"
EXCL = L + "antivirusengine_exclusions"
GLOBAL = L + "exclusionsettings_exclusions"
M = "com.apple.managedclient.preferences_"


def _documented_key_paths(platform: str) -> set[str]:
    """Every managed_key_path of the reference data for one platform (read straight from the JSON file)."""
    data = json.loads(MAC_LINUX_DATA_FILE.read_text(encoding="utf-8"))
    suffix = "(Linux)" if platform == "linux" else "(macOS)"
    return {
        s["managed_key_path"] for name, settings in data.items() if name.endswith(suffix) for s in settings
    }


def _key_paths(node, prefix: str = "") -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else key
            if isinstance(value, dict):
                found |= _key_paths(value, path)
            elif isinstance(value, list) and value and isinstance(value[0], dict):
                found.add(path)
                for element in value:
                    found |= {f"{path}[].{k}" for k in element}
            else:
                found.add(path)
    return found


def _policy(pid: int, name: str, profile: str, values: dict, platform: str = "linux") -> PolicyInput:
    clean, errors = validate_policy_values(get_catalog().profile(profile), values)
    assert not errors, errors
    return PolicyInput(pid, name, profile, platform, clean, frozenset({1}), frozenset())


def _linux_policies() -> list[PolicyInput]:
    return [
        _policy(
            1,
            "Linux AV baseline",
            "Microsoft Defender Antivirus (Linux)",
            {
                L + "antivirusengine_enforcementlevel": "real_time",
                L + "antivirusengine_behaviormonitoring": "enabled",
                L + "antivirusengine_scanarchives": "true",
                L + "antivirusengine_maximumondemandscanthreads": "2",
                L + "antivirusengine_scanhistorymaximumitems": "10000",
                L + "antivirusengine_exclusionsmergepolicy": "admin_only",
                EXCL: [
                    {"$type": "excludedPath", "path": "/run", "isDirectory": "true"},
                    {"$type": "excludedFileExtension", "extension": ".pdf"},
                ],
                L + "antivirusengine_threattypesettings": [
                    {"key": "potentially_unwanted_application", "value": "block"},
                    {"key": "archive_bomb", "value": "audit"},
                ],
                L + "cloudservice_enabled": "true",
                L + "cloudservice_automaticsamplesubmissionconsent": "safe",
                L + "cloudservice_cloudblocklevel": "high",
                L + "networkprotection_enforcementlevel": "audit",
            },
        ),
        _policy(
            2,
            "Linux AV exclusions - databases",
            "Microsoft Defender Antivirus exclusions (Linux)",
            {
                EXCL: [
                    {
                        "$type": "excludedPath",
                        "path": "/run",
                        "isDirectory": "true",
                    },  # also in policy 1: once
                    {"$type": "excludedPath", "path": "/var/lib/postgresql", "isDirectory": "true"},
                    {"$type": "excludedFileName", "name": "/usr/bin/backup-agent"},
                ]
            },
        ),
        _policy(
            3,
            "Linux EDR tags",
            "Endpoint detection and response (Linux)",
            {L + "edr_tags": [{"key": "GROUP", "value": "Linux servers"}]},
        ),
        _policy(
            4,
            "Linux global exclusions",
            "Microsoft Defender Global Exclusions (AV+EDR) (Linux)",
            {GLOBAL: [{"$type": "excludedPath", "path": "/opt/app", "isDirectory": "true"}]},
        ),
    ]


def _desired(os: str, policies: list[PolicyInput]) -> dict:
    device = DeviceFacts("d1", os, "mde", frozenset({1}))
    return resolve(device, policies, get_catalog()).desired


def test_the_macos_linux_catalog_is_a_byte_copy_of_the_reference():
    assert MAC_LINUX_DATA_FILE.read_bytes() == REFERENCE.read_bytes()


def test_linux_mdatp_managed_json_equals_the_golden_file_and_uses_documented_keys_only():
    text = mdatp.render(_desired("linux", _linux_policies()), "linux")

    assert text == (GOLDEN / "linux-mdatp_managed.json").read_text(encoding="utf-8")
    tree = json.loads(text)  # `python -m json.tool` would accept it
    assert _key_paths(tree) <= _documented_key_paths("linux")
    assert mdatp.check_linux(text) == []
    # The exclusions of the Antivirus and Antivirus exclusions policies merge into one superset, each path once.
    paths = [
        e.get("path") or e.get("extension") or e.get("name") for e in tree["antivirusEngine"]["exclusions"]
    ]
    assert paths == ["/run", ".pdf", "/var/lib/postgresql", "/usr/bin/backup-agent"]


def test_macos_com_microsoft_wdav_plist_equals_the_golden_file_and_uses_documented_keys_only():
    policies = [
        _policy(
            1,
            "Mac AV",
            "Microsoft Defender Antivirus (macOS)",
            {
                M + "enforcementlevel_tamperprotection": "block",
                M + "hidestatusmenuicon": "false",
                M + "maximumondemandscanthreads": "4",
                M + "exclusions": [{"$type": "excludedPath", "path": "/Users/*/git", "isDirectory": "true"}],
            },
            "macos",
        ),
        _policy(
            2,
            "Mac EDR",
            "Endpoint detection and response (macOS)",
            {M + "tags": [{"key": "GROUP", "value": "Design Macs"}]},
            "macos",
        ),
    ]
    text = mdatp.render(_desired("macos", policies), "macos")

    assert text == (GOLDEN / "macos-com.microsoft.wdav.plist").read_text(encoding="utf-8")
    tree = plistlib.loads(text.encode())
    assert _key_paths(tree) <= _documented_key_paths("macos")
    # "Hide status menu icon" lacks microsoftSense in the catalog: Not applicable on the MDE channel, not written.
    assert "userInterface" not in tree
    assert mdatp.check_macos(text) == []
    assert tree["antivirusEngine"]["exclusions"][0] == {
        "$type": "excludedPath",
        "path": "/Users/*/git",
        "isDirectory": True,
    }


def test_a_file_with_an_undocumented_key_or_literal_is_refused():
    assert mdatp.check_linux("{not json") and "isn't valid JSON" in mdatp.check_linux("{not json")[0]
    problems = mdatp.check_linux(
        json.dumps({"antivirusEngine": {"enforcementLevel": "realtime", "scanEverything": True}})
    )
    assert problems == [
        "“antivirusEngine.enforcementLevel” has an undocumented value 'realtime'.",
        "“antivirusEngine.scanEverything” isn't a documented key.",
    ]
    problems = mdatp.check_linux(
        json.dumps({"antivirusEngine": {"exclusions": [{"$type": "excludedPath", "dir": 1}]}})
    )
    assert problems == ["“antivirusEngine.exclusions[0].dir” isn't a documented key."]


def _row(rows, path):
    return next(r for r in rows if r.path == path)


def test_local_exclusions_count_only_while_the_merge_policy_is_merge():
    local = {
        "antivirusEngine.exclusions": [
            {"$type": "excludedPath", "path": "/home/dev/build", "isDirectory": True}
        ]
    }
    admin = {EXCL: [{EXCL + "_item_$type": "excludedPath", EXCL + "_item_path": "/run"}]}

    merged = _row(mdatp.effective("linux", admin, local), "antivirusEngine.exclusions")
    assert [e["path"] for e in merged.value] == ["/run", "/home/dev/build"]
    assert merged.source == "Security settings management + Local (mdatp config)"

    admin_only = {**admin, L + "antivirusengine_exclusionsmergepolicy": "admin_only"}
    only = _row(mdatp.effective("linux", admin_only, local), "antivirusEngine.exclusions")
    assert [e["path"] for e in only.value] == ["/run"]
    assert only.source == "Security settings management"
    assert "1 local entry ignored" in only.note


def test_threat_type_settings_merge_by_key_with_the_admin_value_winning():
    local = {
        "antivirusEngine.threatTypeSettings": [
            {"key": "potentially_unwanted_application", "value": "off"},
            {"key": "archive_bomb", "value": "block"},
        ]
    }
    tts = L + "antivirusengine_threattypesettings"
    admin = {tts: [{tts + "_item_key": "potentially_unwanted_application", tts + "_item_value": "block"}]}
    row = _row(mdatp.effective("linux", admin, local), "antivirusEngine.threatTypeSettings")
    assert row.value == [
        {"key": "potentially_unwanted_application", "value": "block"},
        {"key": "archive_bomb", "value": "block"},
    ]
    admin[L + "antivirusengine_threattypesettingsmergepolicy"] = "admin_only"
    row = _row(mdatp.effective("linux", admin, local), "antivirusEngine.threatTypeSettings")
    assert row.value == [{"key": "potentially_unwanted_application", "value": "block"}]


def test_managed_values_win_over_local_ones_and_defaults_fill_the_rest():
    local = {"cloudService.diagnosticLevel": "required", "cloudService.enabled": False}
    rows = mdatp.effective("linux", {L + "cloudservice_enabled": True}, local)
    assert (_row(rows, "cloudService.enabled").value, _row(rows, "cloudService.enabled").source) == (
        True,
        "Security settings management",
    )
    assert (
        _row(rows, "cloudService.diagnosticLevel").value,
        _row(rows, "cloudService.diagnosticLevel").source,
    ) == (
        "required",
        "Local (mdatp config)",
    )
    level = _row(rows, "antivirusEngine.enforcementLevel")
    assert (level.value, level.source) == ("passive", "Default")  # Linux default since 101.23062.0001


def test_mdatp_health_marks_managed_fields():
    rows = mdatp.effective(
        "linux", {L + "antivirusengine_enforcementlevel": "real_time", L + "cloudservice_enabled": True}
    )
    text = mdatp.format_health(mdatp.health(rows))
    assert "real_time_protection_enabled" in text and ": true [managed]" in text.splitlines()[0]
    assert text.splitlines()[1].endswith(": false [managed]")  # passive_mode_enabled
    assert 'cloud_automatic_sample_submission_consent : "safe"' in text  # default, not managed
    passive = mdatp.format_health(mdatp.health(mdatp.effective("linux", {})))
    assert passive.splitlines()[0].endswith(": false") and passive.splitlines()[1].endswith(": true")


def test_mdatp_config_changes_local_values_but_not_managed_ones():
    local = mdatp.mdatp_config("linux", {}, {}, "cloud-diagnostic", "required")
    assert local == {"cloudService.diagnosticLevel": "required"}
    with pytest.raises(mdatp.MdatpConfigError, match="security settings management policy"):
        mdatp.mdatp_config("linux", local, {L + "cloudservice_enabled": True}, "cloud", "disabled")
    with pytest.raises(mdatp.MdatpConfigError, match="isn't a value of cloud"):
        mdatp.mdatp_config("linux", local, {}, "cloud", "maybe")
    with pytest.raises(mdatp.MdatpConfigError, match="Unknown property"):
        mdatp.mdatp_config("linux", local, {}, "telemetry", "off")


def test_the_file_view_names_the_unverified_keys_and_literals_it_writes():
    notes = mdatp.unverified_notes({L + "antivirusengine_enforcementlevel": "audit"}, "linux")
    assert [path for path, _ in notes] == ["antivirusEngine.enforcementLevel = audit"]
    assert "guess" in notes[0][1]
    assert mdatp.unverified_notes({L + "antivirusengine_enforcementlevel": "real_time"}, "linux") == []
    assert mdatp.unverified_notes({L + "cloudservice_enabled": True}, "linux") == []
    mac = mdatp.unverified_notes({M + "enabled": True}, "macos")
    assert mac and "microsoftSense" in mac[0][1]
