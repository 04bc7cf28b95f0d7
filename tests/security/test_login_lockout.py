"""Sign-in and API-token brute force (issue 12, item 2): 30 wrong passwords in a row used to be followed by the right
one being accepted at once, with nothing in the audit log. Now an account, and separately an address, is locked after
5 failures (the right password is refused meanwhile), the login page says so, every failed and locked-out attempt is
audited with its address, and a Global Administrator unlocks in Tenant administration (audited too)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from console.models import AuditEvent
from tests.helpers import PASSWORD

pytestmark = pytest.mark.django_db

LOGIN = reverse("login")
ATTACKER = "203.0.113.7"
OFFICE = "198.51.100.20"


def _sign_in(username: str, password: str, ip: str = ATTACKER):
    return Client().post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=ip)


def _signed_in(response) -> bool:
    return response.status_code == 302 and response["Location"] == reverse("home")


def test_thirty_wrong_passwords_lock_the_account_and_the_right_one_is_refused(global_admin):
    answers = [_sign_in("ga", f"guess-{i}") for i in range(30)]

    right = _sign_in("ga", PASSWORD)

    assert not _signed_in(right) and right.status_code == 429
    page = right.content.decode()
    assert "Too many failed sign-ins" in page and "Global Administrator" in page
    assert [a.status_code for a in answers[:4]] == [200] * 4 and answers[-1].status_code == 429


def test_every_failed_and_locked_out_attempt_is_audited_with_its_address(global_admin):
    for i in range(7):
        _sign_in("ga", f"guess-{i}")

    events = list(AuditEvent.objects.filter(action__startswith="login.").order_by("pk"))
    assert [e.action for e in events] == ["login.failed"] * 4 + ["login.locked_out"] * 3
    assert {e.ip for e in events} == {ATTACKER}
    assert {e.object_repr for e in events} == {"ga"}


def test_the_account_is_locked_from_every_address(global_admin):
    for i in range(5):
        _sign_in("ga", f"guess-{i}")
    assert _sign_in("ga", PASSWORD, ip=OFFICE).status_code == 429


def test_the_address_is_locked_for_every_account(global_admin, reader):
    for i in range(5):
        _sign_in(f"user-{i}", "guess")  # five different accounts, one address
    assert _sign_in("reader", PASSWORD).status_code == 429
    assert _signed_in(_sign_in("reader", PASSWORD, ip=OFFICE))


def test_a_few_mistakes_do_not_lock_and_a_success_forgets_them(global_admin):
    for i in range(4):
        _sign_in("ga", f"typo-{i}")
    assert _signed_in(_sign_in("ga", PASSWORD))
    for i in range(4):
        _sign_in("ga", f"typo-again-{i}")
    assert _signed_in(_sign_in("ga", PASSWORD))


def test_the_username_an_attacker_types_reaches_the_audit_log_without_control_characters(db):
    _sign_in("admin\x1b[2J\u202e", "x")
    event = AuditEvent.objects.get(action="login.failed")
    assert event.object_repr == "admin [2J"


def test_a_global_administrator_unlocks_and_it_is_audited(global_admin, reader, ga_client):
    for i in range(5):
        _sign_in("reader", f"guess-{i}")
    assert _sign_in("reader", PASSWORD).status_code == 429
    from axes.models import AccessAttempt

    page = ga_client.get(reverse("lockouts")).content.decode()
    assert "reader" in page and "Locked until" in page
    attempt = AccessAttempt.objects.get(username="reader")

    response = ga_client.post(reverse("lockout_unlock", args=[attempt.pk]))

    assert response.status_code == 302
    assert _signed_in(_sign_in("reader", PASSWORD))
    unlock = AuditEvent.objects.get(action="login.unlock")
    assert unlock.actor_name == "ga" and unlock.object_repr == "reader"


def test_only_global_administrators_can_unlock(security_manager, reader, client):
    client.force_login(security_manager)
    assert client.get(reverse("lockouts")).status_code == 403
    assert client.post(reverse("lockout_unlock", args=[1])).status_code == 403


# ---------------------------------------------------------------------------------------------- API tokens


def test_repeated_bad_tokens_from_an_address_are_refused_for_a_while_and_audited(global_admin):
    from console.roles import GLOBAL_ADMIN
    from console.security import TOKEN_FAILURE_LIMIT
    from console.tokens import create_token

    good = create_token(name="real", owner=global_admin, role=GLOBAL_ADMIN)[1]
    prefix = good.split("_")[0]

    def call(token: str, ip: str = ATTACKER):
        return Client().get("/beta/groups", headers={"Authorization": f"Bearer {token}"}, REMOTE_ADDR=ip)

    answers = [call(f"{prefix}_guess{i:04d}_{'x' * 40}").status_code for i in range(TOKEN_FAILURE_LIMIT)]
    blocked = call(good)

    assert answers == [401] * TOKEN_FAILURE_LIMIT
    assert blocked.status_code == 429 and blocked.json()["error"]["code"] == "TooManyRequests"
    assert call(good, ip=OFFICE).status_code == 200
    events = AuditEvent.objects.filter(action__startswith="api.token_")
    assert events.filter(action="api.token_rejected").count() == TOKEN_FAILURE_LIMIT - 1
    assert events.filter(action="api.token_blocked").count() == 1
    assert set(events.values_list("ip", flat=True)) == {ATTACKER}


def test_behind_a_proxy_the_address_is_the_one_the_proxy_appended(settings, global_admin):
    settings.BEHIND_PROXY = True
    _sign_in_via_proxy = Client().post(
        LOGIN,
        {"username": "ga", "password": "wrong"},
        REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR=f"1.2.3.4, {ATTACKER}",
    )
    assert _sign_in_via_proxy.status_code == 200
    assert AuditEvent.objects.get(action="login.failed").ip == ATTACKER
