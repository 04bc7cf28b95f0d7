"""Tests for devices.rules: Entra dynamic device-membership rules, parsed and evaluated in pure Python."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.rules import (
    DEVICE_PROPERTIES,
    MAX_RULE_LENGTH,
    Rule,
    RuleSyntaxError,
    parse_rule,
    properties_used,
)


def matches(rule: str, **device: object) -> bool:
    return parse_rule(rule).matches(device)


def syntax_error(rule: str) -> RuleSyntaxError:
    with pytest.raises(RuleSyntaxError) as info:
        parse_rule(rule)
    return info.value


# ------------------------------------------------------------------------------------ the MDE rules


MDE_DEVICE = {
    "deviceOSType": "Windows Server",
    "managementType": "MicrosoftSense",
    "systemLabels": ["MDEJoined", "MDEManaged"],
}


def test_the_microsoft_sense_rule_parses_exactly_as_written_and_matches_mde_managed_devices():
    rule = parse_rule('(device.managementType -eq "MicrosoftSense")')
    assert rule.text == '(device.managementType -eq "MicrosoftSense")'
    assert rule.matches(MDE_DEVICE)
    assert not rule.matches({"managementType": "MDM"})
    assert not rule.matches({})


def test_the_windows_server_rule_matches_servers_but_not_windows_clients():
    rule = parse_rule('(device.deviceOSType -eq "Windows Server")')
    assert rule.matches(MDE_DEVICE)
    assert not rule.matches({"deviceOSType": "Windows"})


def test_an_equals_windows_rule_drops_servers_while_contains_windows_still_matches_them():
    assert not matches('(device.deviceOSType -eq "Windows")', deviceOSType="Windows Server")
    assert matches('(device.deviceOSType -contains "Windows")', deviceOSType="Windows Server")


def test_the_legacy_system_labels_rule_matches_either_label():
    rule = parse_rule(
        '(device.systemLabels -contains "MDEJoined") or (device.systemLabels -contains "MDEManaged")'
    )
    assert rule.matches(MDE_DEVICE)
    assert rule.matches({"systemLabels": ["MDEManaged"]})
    assert rule.matches({"systemLabels": ["M365Managed", "MDEJoined"]})
    assert not rule.matches({"systemLabels": ["M365Managed"]})
    assert not rule.matches({"systemLabels": []})
    assert not rule.matches({})


# ---------------------------------------------------------------------------------------- operators

OPERATOR_CASES = [
    # (rule, device value, expected)
    ('device.displayName -eq "PC-01"', "PC-01", True),
    ('device.displayName -eq "PC-01"', "PC-02", False),
    ('device.displayName -ne "PC-01"', "PC-02", True),
    ('device.displayName -ne "PC-01"', "PC-01", False),
    ('device.displayName -startsWith "PC-"', "PC-01", True),
    ('device.displayName -startsWith "PC-"', "LAPTOP-PC-01", False),
    ('device.displayName -notStartsWith "PC-"', "LAPTOP-PC-01", True),
    ('device.displayName -notStartsWith "PC-"', "PC-01", False),
    ('device.displayName -endsWith "-01"', "PC-01", True),
    ('device.displayName -endsWith "-01"', "PC-02", False),
    ('device.displayName -notEndsWith "-01"', "PC-02", True),
    ('device.displayName -notEndsWith "-01"', "PC-01", False),
    ('device.displayName -contains "C-0"', "PC-01", True),
    ('device.displayName -contains "C-0"', "LAPTOP", False),
    ('device.displayName -notContains "C-0"', "LAPTOP", True),
    ('device.displayName -notContains "C-0"', "PC-01", False),
    ('device.displayName -in ["PC-01","PC-02"]', "PC-02", True),
    ('device.displayName -in ["PC-01","PC-02"]', "PC-03", False),
    ('device.displayName -notIn ["PC-01","PC-02"]', "PC-03", True),
    ('device.displayName -notIn ["PC-01","PC-02"]', "PC-01", False),
    ('device.displayName -match "^PC-\\d+$"', "PC-42", True),
    ('device.displayName -match "^PC-\\d+$"', "PC-4a", False),
    ('device.displayName -notMatch "^PC-\\d+$"', "PC-4a", True),
    ('device.displayName -notMatch "^PC-\\d+$"', "PC-42", False),
]


@pytest.mark.parametrize(("rule", "value", "expected"), OPERATOR_CASES)
def test_every_operator_holds_or_fails_as_entra_defines_it(rule, value, expected):
    assert matches(rule, displayName=value) is expected


@pytest.mark.parametrize(
    "rule",
    [
        'device.deviceOSType -eq "windows server"',
        'device.deviceOSType -EQ "WINDOWS SERVER"',
        'device.deviceOSType -startswith "WINDOWS"',
        'device.deviceOSType -ENDSWITH "server"',
        'device.deviceOSType -CONTAINS "dows s"',
        'device.deviceOSType -in ["LINUX", "windows SERVER"]',
        'device.deviceOSType -match "^windows"',
        'DEVICE.DEVICEOSTYPE -eq "Windows Server"',
        'device.deviceostype -eq "Windows Server"',
    ],
)
def test_string_comparisons_operator_names_and_property_names_ignore_case(rule):
    assert matches(rule, deviceOSType="Windows Server")


@pytest.mark.parametrize(
    "rule", ['device.deviceOSType -ne "windows"', 'device.deviceOSType -notIn ["WINDOWS"]']
)
def test_negative_operators_ignore_case_too(rule):
    assert not matches(rule, deviceOSType="Windows")


@pytest.mark.parametrize(
    "rule",
    [
        'device.deviceOSType eq "Linux"',
        'device.deviceOSType startsWith "Lin"',
        'device.deviceOSType notContains "Windows"',
        'device.deviceOSType in ["Linux"]',
        'device.deviceOSType \u2013eq "Linux"',
    ],
)
def test_operators_may_be_written_without_the_hyphen_or_with_the_docs_en_dash(rule):
    assert matches(rule, deviceOSType="Linux")


def test_in_lists_accept_single_quoted_values_and_spaces_around_items():
    rule = "device.deviceTrustType -in [ 'AzureAD' , \"ServerAD\" ]"
    assert matches(rule, deviceTrustType="ServerAD")
    assert not matches(rule, deviceTrustType="Workplace")


def test_a_one_item_in_list_behaves_like_eq():
    assert matches('device.deviceOwnership -in ["Company"]', deviceOwnership="company")
    assert not matches('device.deviceOwnership -in ["Company"]', deviceOwnership="Personal")


def test_match_searches_anywhere_in_the_value_like_the_entra_examples():
    assert matches('device.displayName -match "^Da.*"', displayName="David")
    assert not matches('device.displayName -match "^Da.*"', displayName="aDa")
    assert matches('device.displayName -match ".*vid"', displayName="David")
    assert not matches('device.displayName -match ".*vid"', displayName="Da")
    assert matches('device.deviceModel -match "surface"', deviceModel="Microsoft Surface Pro 9")


def test_match_ignores_case():
    assert matches('device.deviceManufacturer -match "^MICRO"', deviceManufacturer="microsoft")


# ----------------------------------------------------------------------------------- boolean and null


def test_boolean_properties_compare_with_true_and_false():
    assert matches("device.accountEnabled -eq true", accountEnabled=True)
    assert not matches("device.accountEnabled -eq true", accountEnabled=False)
    assert matches("device.isRooted -eq false", isRooted=False)
    assert matches("device.isRooted -ne true", isRooted=False)
    assert not matches("device.isRooted -ne false", isRooted=False)


def test_boolean_values_ignore_case_and_may_be_quoted():
    assert matches("device.accountEnabled -eq TRUE", accountEnabled=True)
    assert matches('device.accountEnabled -eq "True"', accountEnabled=True)


def test_boolean_device_values_given_as_strings_are_understood():
    assert matches("device.accountEnabled -eq true", accountEnabled="True")
    assert matches("device.accountEnabled -eq false", accountEnabled="false")


def test_a_missing_boolean_is_neither_true_nor_false_but_null():
    assert not matches("device.isRooted -eq true")
    assert not matches("device.isRooted -eq false")
    assert matches("device.isRooted -eq null")
    assert matches("device.isRooted -ne true")


def test_a_missing_property_is_null():
    assert matches("device.extensionAttribute3 -eq null")
    assert not matches("device.extensionAttribute3 -ne null")
    assert matches("device.extensionAttribute3 -ne null", extensionAttribute3="x")
    assert matches("device.extensionAttribute3 -eq NULL", extensionAttribute3=None)


def test_the_all_devices_rule_matches_every_device_with_an_object_id():
    assert matches("device.objectId -ne null", objectId="aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb")
    assert not matches("device.objectId -ne null")


def test_a_quoted_null_is_the_literal_string_null():
    assert matches('device.extensionAttribute1 -eq "null"', extensionAttribute1="NULL")
    assert not matches('device.extensionAttribute1 -eq "null"')


def test_positive_string_operators_never_match_a_null_value_and_negative_ones_always_do():
    for positive in ("-eq", "-startsWith", "-endsWith", "-contains", "-match"):
        assert not matches(f'device.deviceCategory {positive} "x"')
    for negative in ("-ne", "-notStartsWith", "-notEndsWith", "-notContains", "-notMatch"):
        assert matches(f'device.deviceCategory {negative} "x"')
    assert not matches('device.deviceCategory -in ["x"]')
    assert matches('device.deviceCategory -notIn ["x"]')


def test_an_empty_string_value_is_not_null():
    assert matches('device.deviceCategory -eq ""', deviceCategory="")
    assert not matches("device.deviceCategory -eq null", deviceCategory="")


# ------------------------------------------------------------------------------ multi-valued properties


def test_a_multi_valued_property_equals_a_value_when_some_element_equals_it():
    labels = ["M365Managed", "MDEJoined"]
    assert matches('device.systemLabels -eq "mdejoined"', systemLabels=labels)
    assert not matches('device.systemLabels -eq "MDE"', systemLabels=labels)
    assert matches('device.systemLabels -startsWith "M365"', systemLabels=labels)
    assert matches('device.systemLabels -in ["x", "MDEJoined"]', systemLabels=labels)
    assert matches('device.systemLabels -match "^mde"', systemLabels=labels)


def test_contains_on_a_multi_valued_property_is_a_substring_test_on_each_element():
    assert matches('device.systemLabels -contains "Joined"', systemLabels=["MDEJoined"])


def test_negative_operators_on_a_multi_valued_property_hold_when_no_element_matches():
    assert matches('device.systemLabels -notContains "MDE"', systemLabels=["M365Managed"])
    assert not matches('device.systemLabels -notContains "MDE"', systemLabels=["M365Managed", "MDEJoined"])
    assert matches('device.systemLabels -ne "MDEJoined"', systemLabels=[])
    assert not matches('device.systemLabels -ne "MDEJoined"', systemLabels=["MDEJoined"])


def test_a_missing_or_empty_collection_is_null():
    assert matches("device.systemLabels -eq null")
    assert matches("device.systemLabels -eq null", systemLabels=[])
    assert not matches("device.systemLabels -eq null", systemLabels=["MDEJoined"])
    assert matches("device.systemLabels -ne null", systemLabels=["MDEJoined"])


def test_a_single_string_given_for_a_multi_valued_property_counts_as_one_element():
    assert matches('device.systemLabels -contains "MDEJoined"', systemLabels="MDEJoined")


def test_a_multi_valued_property_given_as_a_tuple_or_set_works_like_a_list():
    assert matches('device.systemLabels -eq "a"', systemLabels=("b", "a"))
    assert matches('device.systemLabels -eq "a"', systemLabels=frozenset({"a"}))


PHYSICAL_IDS = ["[ZTDId]:0123-abcd", "[OrderID]:179887111881", "[USER-GID]:1234"]


def test_any_with_parentheses_matches_when_some_physical_id_satisfies_the_condition():
    rule = 'device.devicePhysicalIds -any (_ -startsWith "[OrderID]")'
    assert matches(rule, devicePhysicalIds=PHYSICAL_IDS)
    assert not matches(rule, devicePhysicalIds=["[ZTDId]:0123-abcd"])
    assert not matches(rule)


def test_any_without_parentheses_is_accepted_as_in_the_entra_autopilot_example():
    assert matches('device.devicePhysicalIDs -any _ -startsWith "[ZTDId]"', devicePhysicalIds=PHYSICAL_IDS)
    assert matches(
        '(device.devicePhysicalIds -any _ -eq "[OrderID]:179887111881")', devicePhysicalIds=PHYSICAL_IDS
    )


def test_all_matches_only_when_every_element_satisfies_the_condition():
    rule = 'device.devicePhysicalIds -all (_ -startsWith "[")'
    assert matches(rule, devicePhysicalIds=PHYSICAL_IDS)
    assert not matches(rule, devicePhysicalIds=[*PHYSICAL_IDS, "oops"])


def test_all_is_true_for_an_empty_collection_and_any_is_false():
    assert matches('device.devicePhysicalIds -all (_ -eq "x")', devicePhysicalIds=[])
    assert not matches('device.devicePhysicalIds -any (_ -eq "x")', devicePhysicalIds=[])


def test_the_element_expression_can_combine_conditions_on_underscore():
    rule = 'device.devicePhysicalIds -any (_ -startsWith "[OrderID]" -and -not (_ -endsWith "881"))'
    assert not matches(rule, devicePhysicalIds=PHYSICAL_IDS)
    assert matches(rule, devicePhysicalIds=["[OrderID]:42"])
    assert matches("device.systemLabels -any (_ -match 'mde' or _ -in ['x'])", systemLabels=["x"])


def test_any_and_all_accept_hyphenless_spelling_and_ignore_case():
    assert matches('device.systemLabels ANY (_ -eq "mdejoined")', systemLabels=["MDEJoined"])
    assert matches('device.systemLabels -All (_ -eq "mdejoined")', systemLabels=["MDEJoined"])


def test_any_combines_with_other_expressions_at_the_outer_level():
    rule = 'device.devicePhysicalIds -any _ -startsWith "[ZTDId]" -and device.deviceOSType -eq "Windows"'
    assert matches(rule, devicePhysicalIds=PHYSICAL_IDS, deviceOSType="Windows")
    assert not matches(rule, devicePhysicalIds=PHYSICAL_IDS, deviceOSType="Linux")


# ------------------------------------------------------------------------------ logic and precedence


def test_and_requires_both_sides_and_or_requires_either():
    both = 'device.deviceOSType -eq "Linux" -and device.deviceModel -eq "VM"'
    either = 'device.deviceOSType -eq "Linux" -or device.deviceModel -eq "VM"'
    assert matches(both, deviceOSType="Linux", deviceModel="VM")
    assert not matches(both, deviceOSType="Linux")
    assert matches(either, deviceModel="VM")
    assert not matches(either)


def test_not_negates_the_expression_it_precedes():
    assert matches('-not (device.deviceOSType -eq "Linux")', deviceOSType="macOS")
    assert not matches('-not (device.deviceOSType -eq "Linux")', deviceOSType="Linux")
    assert matches('-not -not (device.deviceOSType -eq "Linux")', deviceOSType="Linux")


def test_not_binds_looser_than_a_comparison_so_parentheses_are_optional():
    assert matches('-not device.deviceOSType -eq "Linux"', deviceOSType="macOS")


def test_the_entra_and_not_example_excludes_the_negated_match():
    rule = '(device.deviceOSType -eq "Windows") -and -not (device.displayName -startsWith "SRV")'
    assert matches(rule, deviceOSType="Windows", displayName="PC-1")
    assert not matches(rule, deviceOSType="Windows", displayName="SRV-1")


def test_and_binds_tighter_than_or():
    rule = (
        'device.extensionAttribute1 -eq "a" -or device.extensionAttribute2 -eq "b" '
        '-and device.extensionAttribute3 -eq "c"'
    )
    # a or (b and c): true with only a, false with only b.
    assert matches(rule, extensionAttribute1="a")
    assert not matches(rule, extensionAttribute2="b")
    assert matches(rule, extensionAttribute2="b", extensionAttribute3="c")


def test_parentheses_override_precedence():
    rule = (
        '(device.extensionAttribute1 -eq "a" -or device.extensionAttribute2 -eq "b") '
        '-and device.extensionAttribute3 -eq "c"'
    )
    assert not matches(rule, extensionAttribute1="a")
    assert matches(rule, extensionAttribute1="a", extensionAttribute3="c")


def test_not_binds_tighter_than_and():
    rule = '-not device.extensionAttribute1 -eq "a" -and device.extensionAttribute2 -eq "b"'
    # (not a) and b
    assert matches(rule, extensionAttribute2="b")
    assert not matches(rule, extensionAttribute1="a", extensionAttribute2="b")
    assert not matches(rule)


def test_not_applies_to_a_whole_parenthesised_group():
    rule = '-not (device.extensionAttribute1 -eq "a" -or device.extensionAttribute2 -eq "b")'
    assert matches(rule)
    assert not matches(rule, extensionAttribute2="b")


@pytest.mark.parametrize(
    "rule",
    [
        '(device.extensionAttribute1 -eq "a") and (device.extensionAttribute2 -eq "b")',
        '(device.extensionAttribute1 -eq "a") AND (device.extensionAttribute2 -eq "b")',
        '(device.extensionAttribute1 -eq "a") -And (device.extensionAttribute2 -eq "b")',
        '(device.extensionAttribute1 -eq "a") \u2013and (device.extensionAttribute2 -eq "b")',
        'not (device.extensionAttribute1 -ne "a") and (device.extensionAttribute2 -eq "b")',
        '(device.extensionAttribute1 -eq "z") or (device.extensionAttribute2 -eq "b") -AND -NOT '
        '(device.extensionAttribute1 -ne "a")',
    ],
)
def test_logical_operators_accept_lower_case_upper_case_and_hyphenless_spellings(rule):
    assert matches(rule, extensionAttribute1="a", extensionAttribute2="b")
    assert not matches(rule, extensionAttribute1="a", extensionAttribute2="c")


def test_deeply_but_reasonably_nested_parentheses_are_fine():
    rule = "(" * 30 + 'device.deviceOSType -eq "Linux"' + ")" * 30
    assert matches(rule, deviceOSType="Linux")


def test_whitespace_and_newlines_between_tokens_are_ignored():
    rule = '\n  (\tdevice.deviceOSType\n-eq   "Linux"  )\r\n  -or(device.deviceOSType-eq"macOS")  '
    assert matches(rule, deviceOSType="macOS")


# -------------------------------------------------------------------------------------------- values


def test_a_backtick_escapes_a_double_quote_inside_a_string_as_entra_documents():
    assert matches('device.displayName -eq "`"Sales`""', displayName='"Sales"')
    assert matches('device.displayName -eq "a``b"', displayName="a`b")
    assert matches('device.displayName -eq "a`b"', displayName="a`b")


def test_a_doubled_single_quote_is_a_literal_single_quote():
    assert matches("device.displayName -eq 'Rob''s iPhone'", displayName="Rob's iPhone")


def test_a_backslash_is_an_ordinary_character():
    assert matches('device.displayName -eq "DOMAIN\\PC"', displayName="domain\\pc")


def test_values_may_contain_parentheses_brackets_and_operators():
    assert matches('device.displayName -eq "(x) -and [y]"', displayName="(X) -AND [Y]")


def test_the_documented_mdm_app_id_spelling_reads_the_mdm_app_id_property():
    rule = parse_rule('device.deviceManagementAppId -eq "54b943f8-d761-4f8d-951e-9cea1846db5a"')
    assert rule.matches({"mdmAppId": "54B943F8-D761-4F8D-951E-9CEA1846DB5A"})
    assert properties_used(rule) == {"mdmAppId"}


@pytest.mark.parametrize("name", sorted(DEVICE_PROPERTIES))
def test_every_supported_property_can_be_used_in_a_rule(name):
    kind = DEVICE_PROPERTIES[name]
    if kind == "boolean":
        rule, device = f"device.{name} -eq true", {name: True}
    elif kind == "multi":
        rule, device = f'device.{name} -any (_ -eq "v")', {name: ["v"]}
    else:
        rule, device = f'device.{name} -eq "v"', {name: "V"}
    parsed = parse_rule(rule)
    assert parsed.matches(device)
    assert not parsed.matches({})
    assert properties_used(parsed) == {name}


# ---------------------------------------------------------------------------------------- public API


def test_properties_used_lists_every_property_once_with_its_canonical_spelling():
    rule = parse_rule(
        '(device.DEVICEOSTYPE -eq "Windows") -and -not (device.deviceOSType -eq "x") -or '
        '(device.systemlabels -contains "MDEJoined") -or device.devicePhysicalIds -any (_ -eq "a")'
    )
    assert properties_used(rule) == {"deviceOSType", "systemLabels", "devicePhysicalIds"}


def test_a_rule_keeps_its_text_and_compares_equal_by_text():
    text = 'device.deviceOSType -eq "Linux"'
    assert parse_rule(text) == Rule(text)
    assert hash(parse_rule(text)) == hash(Rule(text))
    assert parse_rule(text).text == text
    assert parse_rule(text) != parse_rule(text + " ")


def test_constructing_a_rule_directly_validates_it():
    with pytest.raises(RuleSyntaxError):
        Rule("device.nope -eq 1")


def test_a_rule_is_immutable():
    rule = parse_rule('device.deviceOSType -eq "Linux"')
    with pytest.raises(AttributeError):
        rule.text = "x"  # type: ignore[misc]


def test_matches_accepts_any_mapping_and_ignores_unknown_keys():
    from types import MappingProxyType

    device = MappingProxyType({"deviceOSType": "Linux", "somethingElse": 1})
    assert parse_rule('device.deviceOSType -eq "Linux"').matches(device)


def test_the_syntax_error_is_a_value_error_with_position_and_reason():
    error = syntax_error("(device.managementType -eq )")
    assert isinstance(error, ValueError)
    assert error.position == 27
    assert error.reason == "expected a quoted value after -eq"
    assert str(error) == "Position 27: expected a quoted value after -eq"


def test_the_syntax_error_survives_pickling():
    error = syntax_error("(device.managementType -eq )")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.position, copy.reason, str(copy)) == (error.position, error.reason, str(error))


def test_a_rule_of_exactly_the_entra_limit_is_accepted():
    base = 'device.displayName -eq ""'
    rule = base[:-1] + "x" * (MAX_RULE_LENGTH - len(base)) + '"'
    assert len(rule) == MAX_RULE_LENGTH
    assert parse_rule(rule).matches({"displayName": "x" * (MAX_RULE_LENGTH - len(base))})


# ------------------------------------------------------------------------------------- syntax errors

SYNTAX_ERRORS = [
    # (rule, position, reason fragment)
    ("", 0, "the rule is empty"),
    ("   \n\t", 0, "the rule is empty"),
    ('device.displayName -eq "' + "x" * 3100 + '"', 3072, "Entra allows at most 3072"),
    ('device.nope -eq "x"', 0, "unknown device property 'nope'"),
    ('(device.deviceOsTyp -eq "x")', 1, "did you mean 'deviceOSType'?"),
    ('user.department -eq "Sales"', 0, "only device properties can be used, found 'user.department'"),
    ('deviceOSType -eq "Windows"', 0, "expected a device property such as device.deviceOSType"),
    ('"Windows" -eq device.deviceOSType', 0, "expected a device property"),
    ('device.deviceOSType -equals "x"', 20, "unknown operator '-equals'"),
    ('device.deviceOSType -like "x"', 20, "unknown operator '-like'"),
    (
        'device.deviceOSType "x"',
        20,
        "expected an operator such as -eq after device.deviceOSType, found '\"x\"'",
    ),
    ("device.deviceOSType", 19, "expected an operator such as -eq after device.deviceOSType, found the end"),
    ('device.deviceOSType -and "x"', 20, "unknown operator '-and'"),
    ('device.deviceOSType - eq "x"', 20, "expected an operator name after '-'"),
    ("(device.managementType -eq )", 27, "expected a quoted value after -eq"),
    ("device.managementType -eq", 25, "expected a quoted value after -eq"),
    ("device.managementType -eq MicrosoftSense", 26, "expected a quoted value after -eq"),
    ("device.managementType -eq true", 26, "expected a quoted value after -eq"),
    ('device.managementType -eq ["a"]', 26, "expected a quoted value after -eq"),
    (
        "device.managementType -startsWith null",
        34,
        "null can only be compared with -eq or -ne, not -startsWith",
    ),
    ('device.accountEnabled -eq "yes"', 26, "expected true, false or null after -eq"),
    ("device.accountEnabled -contains true", 22, "-contains cannot be used with the boolean property"),
    ('device.deviceOSType -in "Windows"', 24, 'expected a bracketed list such as ["a","b"] after -in'),
    ("device.deviceOSType -notIn []", 28, "the list after -notIn is empty"),
    ('device.deviceOSType -in ["a",]', 29, "expected a quoted value in the list after -in"),
    ('device.deviceOSType -in ["a" "b"]', 29, "expected ',' or ']' in the list after -in"),
    ('device.deviceOSType -in ["a"', 28, "expected ',' or ']' in the list after -in"),
    ("device.deviceOSType -in [a]", 25, "expected a quoted value in the list after -in"),
    ('device.deviceOSType -match "(unclosed"', 27, "invalid regular expression"),
    ('device.deviceOSType -notMatch "*x"', 30, "invalid regular expression"),
    ('device.deviceOSType -eq "Windows', 24, 'unterminated string: missing the closing "'),
    ("device.deviceOSType -eq 'Windows", 24, "unterminated string: missing the closing '"),
    ('device.deviceOSType -eq "a`"', 24, "unterminated string"),
    ('(device.deviceOSType -eq "a"', 28, "missing ')' to close the '(' at position 0"),
    ('((device.deviceOSType -eq "a")', 30, "missing ')' to close the '(' at position 0"),
    ('device.deviceOSType -eq "a")', 27, "')' has no matching '('"),
    ("()", 1, "expected a device property"),
    ('(device.deviceOSType -eq "a") (device.deviceOSType -eq "b")', 30, "expected -and, -or or the end"),
    ('device.deviceOSType -eq "a" "b"', 28, "expected -and, -or or the end of the rule, found '\"b\"'"),
    ('device.deviceOSType -eq "a" -and', 32, "expected a device property"),
    ('device.deviceOSType -eq "a" -or -or device.deviceOSType -eq "b"', 32, "expected a device property"),
    ("-not", 4, "expected a device property"),
    ('(device.deviceOSType -eq "a" device.deviceOSType -eq "b")', 29, "expected ')', -and or -or"),
    ('device.deviceOSType -eq "a" ; drop', 28, "unexpected character ';'"),
    ('device.deviceOSType == "a"', 20, "unexpected character '='"),
    ('device.deviceOSType -any (_ -eq "a")', 20, "-any can only be used with multi-valued properties"),
    ("device.systemLabels -all", 24, "expected (_ <operator> <value>) after -all"),
    ('device.systemLabels -any (device.deviceOSType -eq "a")', 26, "expected _ inside -any/-all"),
    ('device.systemLabels -any (_ -any (_ -eq "a"))', 28, "-any cannot be used inside -any/-all"),
    ('device.systemLabels -any (_ -eq "a"', 35, "missing ')' to close the '(' at position 25"),
    ('_ -eq "a"', 0, "_ can only be used inside -any or -all"),
    ("(" * 70 + 'device.deviceOSType -eq "a"' + ")" * 70, 64, "nested more than 64 levels deep"),
    ("-not " * 70 + 'device.deviceOSType -eq "a"', 320, "nested more than 64 levels deep"),
]


@pytest.mark.parametrize(("rule", "position", "reason"), SYNTAX_ERRORS)
def test_every_syntax_error_reports_the_position_of_the_offending_token_and_why(rule, position, reason):
    error = syntax_error(rule)
    assert error.position == position, str(error)
    assert reason in error.reason
    assert str(error) == f"Position {position}: {error.reason}"


def test_the_earliest_problem_in_the_text_is_reported_first():
    # The unknown property comes before the unterminated string.
    assert syntax_error('device.nope -eq "x').position == 0
    # The bad character comes before the missing parenthesis.
    assert syntax_error('(device.deviceOSType -eq "a" ?').reason == "unexpected character '?'"


def test_a_non_string_rule_is_a_type_error_not_a_syntax_error():
    with pytest.raises(TypeError):
        parse_rule(None)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------- properties

RULE_PIECES = st.sampled_from(
    [
        "device.",
        "device.deviceOSType",
        "device.systemLabels",
        "device.devicePhysicalIds",
        "device.accountEnabled",
        "_",
        " -eq ",
        " -ne ",
        " -contains ",
        " -in ",
        " -match ",
        " -any ",
        " -all ",
        " -and ",
        " -or ",
        " -not ",
        " and ",
        "(",
        ")",
        "[",
        "]",
        ",",
        '"Windows"',
        '"(["',
        "'x'",
        '"',
        "'",
        "`",
        "true",
        "null",
        "-",
        "\u2013",
        " ",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_parsing_arbitrary_text_raises_nothing_but_rule_syntax_errors(text):
    try:
        rule = parse_rule(text)
    except RuleSyntaxError as error:
        assert 0 <= error.position <= len(text)
        assert error.reason
    else:
        rule.matches({})


@settings(max_examples=400, deadline=None)
@given(st.lists(RULE_PIECES, max_size=25).map("".join))
def test_parsing_rule_like_fragments_raises_nothing_but_rule_syntax_errors(text):
    try:
        rule = parse_rule(text)
    except RuleSyntaxError as error:
        assert 0 <= error.position <= len(text)
    else:
        assert properties_used(rule) <= set(DEVICE_PROPERTIES)
        rule.matches({"deviceOSType": "Windows", "systemLabels": ["a"], "devicePhysicalIds": ["x"]})


COMPARISONS = st.sampled_from(
    [
        'device.deviceOSType -eq "Windows"',
        'device.deviceOSType -startsWith "Win"',
        'device.managementType -eq "MicrosoftSense"',
        'device.systemLabels -contains "MDEJoined"',
        "device.accountEnabled -eq true",
        'device.devicePhysicalIds -any (_ -startsWith "[ZTDId]")',
    ]
)


def _expressions() -> st.SearchStrategy[tuple[str, object]]:
    """Random well-formed rules together with a Python predicate that says what they mean."""

    def leaf(text: str) -> tuple[str, object]:
        rule = parse_rule(text)
        return text, rule.matches

    def extend(children: st.SearchStrategy[tuple[str, object]]) -> st.SearchStrategy[tuple[str, object]]:
        def combine(op: str, left: tuple[str, object], right: tuple[str, object]) -> tuple[str, object]:
            (lt, lf), (rt, rf) = left, right
            if op == "-and":
                return f"({lt}) -and ({rt})", lambda d: lf(d) and rf(d)
            return f"({lt}) -or ({rt})", lambda d: lf(d) or rf(d)

        def negate(inner: tuple[str, object]) -> tuple[str, object]:
            text, fn = inner
            return f"-not ({text})", lambda d: not fn(d)

        return st.one_of(
            st.builds(combine, st.sampled_from(["-and", "-or"]), children, children),
            children.map(negate),
        )

    return st.recursive(COMPARISONS.map(leaf), extend, max_leaves=8)


DEVICES = st.fixed_dictionaries(
    {},
    optional={
        "deviceOSType": st.sampled_from(["Windows", "Windows Server", "Linux"]),
        "managementType": st.sampled_from(["MicrosoftSense", "MDM"]),
        "systemLabels": st.lists(st.sampled_from(["MDEJoined", "MDEManaged", "M365Managed"])),
        "accountEnabled": st.booleans(),
        "devicePhysicalIds": st.lists(st.sampled_from(["[ZTDId]:1", "[OrderID]:2"])),
    },
)


@settings(max_examples=200, deadline=None)
@given(_expressions(), DEVICES)
def test_well_formed_rules_evaluate_like_the_boolean_logic_they_spell(expression, device):
    text, meaning = expression
    assert parse_rule(text).matches(device) is meaning(device)
