"""``field__any=[…]``: the rows ``__in`` finds, with the list as one array parameter on PostgreSQL."""

from __future__ import annotations

import pytest
from django.db import connection

from devices.models import Device, GroupMember
from tests.checkins import fleet as f
from tests.helpers import recorded_statements

pytestmark = pytest.mark.django_db


@pytest.fixture
def devices():
    g = f.group("G")
    return [f.device(f"PC-{i:02}", groups=[g] if i % 2 else []) for i in range(8)]


def _names(queryset) -> list[str]:
    return sorted(queryset.values_list("display_name", flat=True))


def test_it_finds_what_in_finds_for_ids_foreign_keys_and_model_instances(devices):
    ids = [d.pk for d in devices[:5]]

    assert _names(Device.objects.filter(pk__any=ids)) == _names(Device.objects.filter(pk__in=ids))
    assert _names(Device.objects.filter(display_name__any=["PC-01", "PC-03", "nope"])) == ["PC-01", "PC-03"]
    members = GroupMember.objects.filter(device_id__any=ids).values_list("device_id", flat=True)
    assert sorted(members) == sorted(
        GroupMember.objects.filter(device_id__in=ids).values_list("device_id", flat=True)
    )
    by_instance = GroupMember.objects.filter(device__any=devices[:5]).values_list("device_id", flat=True)
    assert sorted(by_instance) == sorted(members)


def test_none_is_left_out_duplicates_count_once_and_an_empty_list_matches_nothing(devices):
    first = devices[0].pk
    assert list(Device.objects.filter(pk__any=[first, first, None]).values_list("pk", flat=True)) == [first]
    assert not Device.objects.filter(pk__any=[]).exists()
    assert not Device.objects.filter(pk__any=[None]).exists()
    assert Device.objects.exclude(pk__any=[]).count() == len(devices)


def test_a_subquery_is_passed_through_as_in_does(devices):
    members = GroupMember.objects.values("device_id")
    assert _names(Device.objects.filter(pk__any=members)) == _names(Device.objects.filter(pk__in=members))


def test_on_postgresql_the_list_is_one_parameter_whatever_its_length(devices):
    if connection.vendor != "postgresql":
        pytest.skip("other databases get __in")
    many = [d.pk for d in devices] + list(range(10**9, 10**9 + 500))
    with recorded_statements() as seen:
        found = Device.objects.filter(pk__any=many).count()

    assert found == len(devices)
    ((sql, params),) = seen
    assert "= ANY(%s)" in sql and " IN (" not in sql
    assert len(params) == 1 and len(params[0]) == len(many)
