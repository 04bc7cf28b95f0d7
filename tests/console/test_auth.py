from __future__ import annotations

import pytest
from django.test import Client

from tests.helpers import PASSWORD


@pytest.mark.django_db
def test_every_page_needs_login(client):
    response = client.get("/dashboard/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=/dashboard/")


def test_login_page_is_public(client, db):
    response = client.get("/login/")
    assert response.status_code == 200
    assert b"Sign in" in response.content


def test_a_wrong_password_gets_a_clear_message(client, global_admin):
    response = client.post("/login/", {"username": "ga", "password": "wrong"})
    assert response.status_code == 200
    assert b"Your account or password is incorrect" in response.content


def test_the_right_password_signs_in(client, global_admin):
    response = client.post("/login/", {"username": "ga", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/").status_code == 200


def test_a_tampered_csrf_token_gets_a_clear_403_page(global_admin):
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(global_admin)
    csrf_client.get("/")
    response = csrf_client.post("/logout/", {"csrfmiddlewaretoken": "tampered" * 4})
    assert response.status_code == 403
    assert b"Nothing was changed" in response.content


def test_an_unknown_url_gets_a_404_page(ga_client):
    response = ga_client.get("/no/such/page/")
    assert response.status_code == 404
    assert b"doesn&#x27;t exist" in response.content or b"doesn't exist" in response.content


def test_a_forbidden_page_explains_the_missing_permission(esm_client):
    response = esm_client.get("/tenant-admin/roles/")
    assert response.status_code == 403
    assert b"Access denied" in response.content


def test_logout_needs_post_and_ends_the_session(ga_client):
    assert ga_client.post("/logout/").status_code == 302
    assert ga_client.get("/").status_code == 302


def test_password_change_works(ga_client):
    response = ga_client.post(
        "/account/password/",
        {
            "old_password": PASSWORD,
            "new_password1": "a-much-longer-passphrase-9",
            "new_password2": "a-much-longer-passphrase-9",
        },
    )
    assert response.status_code == 302


def test_security_headers_are_set(ga_client):
    response = ga_client.get("/")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'self'" in response["Content-Security-Policy"]
