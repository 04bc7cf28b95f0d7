"""Intune's assignment filter rule syntax (devices.rules.parse_filter_rule): the properties the simulated devices
have, Intune's operators, and errors that point at the column."""

from __future__ import annotations

import pytest

from devices.models import Device, JoinType, OSType
from devices.rules import FILTER_PROPERTIES, RuleSyntaxError, parse_filter_rule


def props(**overrides) -> dict:
    base = {
        "deviceName": "CONTOSO-LT-0001",
        "osVersion": "10.0.26100.1742",
        "deviceTrustType": "Azure AD joined",
        "operatingSystemSKU": "Enterprise",
    }
    return base | overrides


@pytest.mark.parametrize(
    "rule, expected",
    [
        ('(device.deviceName -eq "contoso-lt-0001")', True),  # case-insensitive, as Intune
        ('(device.deviceName -ne "CONTOSO-LT-0001")', False),
        ('(device.deviceName -startsWith "CONTOSO-LT")', True),
        ('(device.deviceName -endsWith "0001")', True),
        ('(device.deviceName -contains "LT")', True),
        ('(device.deviceName -notContains "LT")', False),
        ('(device.deviceTrustType -in ["Hybrid Azure AD joined", "Azure AD joined"])', True),
        ('(device.deviceTrustType -notIn ["Azure AD registered"])', True),
        ('(device.osVersion -match "^10\\.0\\.26100")', True),
        ('(device.osVersion -notMatch "^10\\.0\\.22")', True),
        ('(device.operatingSystemSKU -eq "Enterprise") and (device.osVersion -startsWith "10.0.22")', False),
        ('(device.operatingSystemSKU -eq "Enterprise") or (device.osVersion -startsWith "10.0.22")', True),
        (
            '((device.deviceName -startsWith "X") or (device.deviceName -startsWith "C")) -and '
            '(device.deviceTrustType -ne "Unknown")',
            True,
        ),  # fmt: skip
        ("(device.deviceName -ne $null)", True),
        ("(device.operatingSystemSKU -eq null)", False),
    ],
)
def test_it_evaluates_intune_filter_rules(rule, expected):
    assert parse_filter_rule(rule).matches(props()) is expected


@pytest.mark.parametrize(
    "rule, column, words",
    [
        ('(device.deviceName -eq "x"', 27, "missing ')'"),
        ('(device.deviceNam -eq "x")', 2, "did you mean 'deviceName'?"),
        ('(device.deviceName -notStartsWith "x")', 20, "unknown operator '-notStartsWith'"),
        ("(device.deviceName -eq x)", 24, "expected a quoted value after -eq"),
        ('(device.manufacturer -eq "Microsoft")', 2, "isn't recorded for the simulated devices"),
        ('(device.osVersion -match "(a)\\1")', 26, "unsupported regular expression: backreferences"),
        ('(app.deviceName -eq "x")', 2, "only device properties"),
        ("", 1, "the rule is empty"),
    ],
)
def test_a_bad_rule_is_refused_with_the_column_it_goes_wrong(rule, column, words):
    with pytest.raises(RuleSyntaxError) as caught:
        parse_filter_rule(rule)
    assert caught.value.column == column
    assert words in caught.value.reason


def test_an_unsupported_intune_property_is_refused_with_the_supported_list():
    with pytest.raises(RuleSyntaxError) as caught:
        parse_filter_rule('(device.model -startsWith "Surface")')
    assert all(f"device.{name}" in caught.value.reason for name in FILTER_PROPERTIES)


def test_entra_membership_rule_properties_are_not_intune_filter_properties():
    with pytest.raises(RuleSyntaxError, match="unknown device property 'displayName'"):
        parse_filter_rule('(device.displayName -eq "x")')


def test_a_device_exposes_the_properties_intune_filters_read():
    device = Device(
        display_name="CONTOSO-LT-0009",
        os=OSType.WINDOWS,
        os_version="10.0.22631.3593",
        os_edition="Windows 11 Pro 23H2",
        join_type=JoinType.HYBRID_JOINED,
    )
    server = Device(
        display_name="SRV-1", os=OSType.WINDOWS_SERVER, os_edition="Windows Server 2022 Datacenter"
    )
    assert device.filter_properties() == {
        "deviceName": "CONTOSO-LT-0009",
        "osVersion": "10.0.22631.3593",
        "deviceTrustType": "Hybrid Azure AD joined",
        "operatingSystemSKU": "Professional",
    }
    assert server.filter_properties()["operatingSystemSKU"] is None
    assert server.filter_properties()["deviceTrustType"] == "Unknown"
    multi = Device(os=OSType.WINDOWS, os_edition="Windows 11 Enterprise multi-session 23H2")
    assert multi.operating_system_sku == "ServerRdsh"
