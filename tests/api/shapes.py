"""Graph request bodies and assertions shared by the API tests (import as `from tests.api.shapes import …`)."""

from __future__ import annotations

AV_TEMPLATE = "804339ad-1553-4478-a742-138fb5807418_1"
EXCLUSIONS_TEMPLATE = "45fea5e9-280d-4da1-9792-fb5736da0ca9_1"
GRAPH = "#microsoft.graph."


def choice(definition: str, option: str) -> dict:
    return {
        "settingInstance": {
            "@odata.type": GRAPH + "deviceManagementConfigurationChoiceSettingInstance",
            "settingDefinitionId": definition,
            "choiceSettingValue": {
                "@odata.type": GRAPH + "deviceManagementConfigurationChoiceSettingValue",
                "children": [],
                "value": f"{definition}_{option}",
            },
        }
    }


def integer(definition: str, value: int) -> dict:
    return {
        "settingInstance": {
            "@odata.type": GRAPH + "deviceManagementConfigurationSimpleSettingInstance",
            "settingDefinitionId": definition,
            "simpleSettingValue": {
                "@odata.type": GRAPH + "deviceManagementConfigurationIntegerSettingValue",
                "value": value,
            },
        }
    }


def strings(definition: str, values: list[str]) -> dict:
    return {
        "settingInstance": {
            "@odata.type": GRAPH + "deviceManagementConfigurationSimpleSettingCollectionInstance",
            "settingDefinitionId": definition,
            "simpleSettingCollectionValue": [
                {"@odata.type": GRAPH + "deviceManagementConfigurationStringSettingValue", "value": v}
                for v in values
            ],
        }
    }


REALTIME = "device_vendor_msft_policy_config_defender_allowrealtimemonitoring"
CPU_LOAD = "device_vendor_msft_policy_config_defender_avgcpuloadfactor"
EXTENSIONS = "device_vendor_msft_policy_config_defender_excludedextensions"
PATHS = "device_vendor_msft_policy_config_defender_excludedpaths"
HIDE_FROM_ADMINS = "device_vendor_msft_defender_configuration_hideexclusionsfromlocaladmins"


def av_body(name: str = "AV - created by the API", **extra) -> dict:
    """An Antivirus policy (Microsoft Defender Antivirus profile): a choice and an integer."""
    return {
        "name": name,
        "description": "api test",
        "platforms": "windows10",
        "technologies": "mdm,microsoftSense",
        "templateReference": {"templateFamily": "endpointSecurityAntivirus", "templateId": AV_TEMPLATE},
        "settings": [choice(REALTIME, "1"), integer(CPU_LOAD, 40)],
        **extra,
    }


def exclusions_body(name: str = "AV exclusions - created by the API") -> dict:
    return {
        "name": name,
        "platforms": "windows10",
        "technologies": "mdm,microsoftSense",
        "templateReference": {
            "templateFamily": "endpointSecurityAntivirus",
            "templateId": EXCLUSIONS_TEMPLATE,
        },
        "settings": [strings(EXTENSIONS, [".log", ".tmp"]), choice(HIDE_FROM_ADMINS, "1")],
    }


def assert_graph_error(response, status: int, code: str | None = None, text: str | None = None) -> dict:
    assert response.status_code == status, response.content[:500]
    error = response.json()["error"]
    assert error["message"]
    assert set(error["innerError"]) >= {"date", "request-id", "client-request-id"}
    if code:
        assert error["code"] == code
    if text:
        assert text.lower() in error["message"].lower(), error["message"]
    return error
