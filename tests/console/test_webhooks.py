"""The outgoing webhook: signed, persisted, retried with exponential backoff, delivered end to end to a real
HTTP server on loopback (and by a real Celery worker over Redis)."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from console import webhooks
from console.models import AuditEvent, WebhookDelivery, WebhookEndpoint
from tests.helpers import child_env, child_process, wait_for, worker_command

SECRET = "s3cret-for-the-soc-receiver"


class Receiver:
    """A real HTTP server on 127.0.0.1 that answers the given status codes in turn (then 200)."""

    def __init__(self, answers: list[int]):
        self.answers = list(answers)
        self.requests: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"headers": dict(self.headers), "body": body, "at": timezone.now()})
                code = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(code)
                self.end_headers()
                self.wfile.write(b"ok" if code == 200 else b"try later")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _configure(url: str) -> WebhookEndpoint:
    return webhooks.configure(url=url, secret=SECRET, enabled=True, events="protected", extra_protected=[])


def _verified(request: dict) -> bool:
    headers = request["headers"]
    return webhooks.verify(
        SECRET, headers[webhooks.TIMESTAMP_HEADER], request["body"], headers[webhooks.SIGNATURE_HEADER]
    )


def test_the_signature_is_hmac_sha256_over_timestamp_and_body_and_refuses_tampering_and_replay():
    import time

    body = b'{"a":1}'
    now = str(int(time.time()))
    signature = webhooks.sign(SECRET, now, body)
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert webhooks.verify(SECRET, now, body, signature)
    assert not webhooks.verify(SECRET, now, b'{"a":2}', signature)
    assert not webhooks.verify("another-secret-entirely", now, body, signature)
    old = str(int(time.time()) - 3600)
    assert not webhooks.verify(SECRET, old, body, webhooks.sign(SECRET, old, body))


def test_backoff_doubles_after_each_failed_attempt(settings):
    settings.WEBHOOK_BACKOFF_SECONDS = 30
    assert [webhooks.delay_after(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://soc.contoso.com/hook", "http:// or https://"),
        ("not a url", "http:// or https://"),
        ("https://user:pw@soc.contoso.com/hook", "no user name or password"),
    ],
)
def test_a_bad_url_is_refused_with_a_reason_and_nothing_changes(url, message):
    with pytest.raises(webhooks.WebhookError, match=message):
        webhooks.configure(url=url, secret=SECRET, enabled=True, events="protected", extra_protected=[])
    assert WebhookEndpoint.load().url == ""


@pytest.mark.django_db
def test_a_short_secret_is_refused():
    with pytest.raises(webhooks.WebhookError, match="16 characters"):
        webhooks.configure(url="https://soc.contoso.com/h", secret="short", enabled=True, events="all",
                           extra_protected=[])  # fmt: skip


@pytest.mark.django_db
def test_saving_is_audited_without_the_secret():
    _configure("https://soc.contoso.com/hook")
    event = AuditEvent.objects.get(action="webhook.update")
    assert event.after["url"] == "https://soc.contoso.com/hook"
    assert SECRET not in json.dumps(event.after) + json.dumps(event.before)


@pytest.mark.django_db
def test_nothing_is_queued_while_the_webhook_is_off():
    assert webhooks.enqueue(webhooks.EVENT_TEST, {"x": 1}) is None
    assert not WebhookDelivery.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_failing_receiver_gets_retried_with_backoff_until_it_accepts(settings):
    """Two 503s then 200: three signed attempts of the same delivery, the waits doubling, then Delivered."""
    settings.WEBHOOK_BACKOFF_SECONDS = 60
    with Receiver([503, 500]) as receiver:
        _configure(receiver.url)
        delivery = WebhookDelivery.objects.create(
            event_type=webhooks.EVENT_TEST,
            url=receiver.url,
            payload={"id": "x"},
            next_attempt_at=timezone.now(),
        )
        first = webhooks.attempt(delivery.pk)
        assert first.status == "pending" and first.attempts == 1 and first.last_status_code == 503
        assert first.next_attempt_at - timezone.now() > timedelta(seconds=55)
        assert webhooks.attempt(delivery.pk) is None  # not due yet: nothing is sent
        WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
        second = webhooks.attempt(delivery.pk)
        assert second.attempts == 2 and second.last_status_code == 500
        assert second.next_attempt_at - timezone.now() > timedelta(seconds=115)  # 2 × 60 s
        WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
        third = webhooks.attempt(delivery.pk)
        assert third.status == "succeeded" and third.attempts == 3 and third.delivered_at
        assert [h["status_code"] for h in third.history] == [503, 500, 200]
        assert len(receiver.requests) == 3
        assert all(_verified(r) for r in receiver.requests)
        assert {r["headers"][webhooks.DELIVERY_HEADER] for r in receiver.requests} == {str(delivery.event_id)}


@pytest.mark.django_db(transaction=True)
def test_it_gives_up_after_the_last_attempt(settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    with Receiver([500, 500, 500]) as receiver:
        _configure(receiver.url)
        delivery = WebhookDelivery.objects.create(
            event_type=webhooks.EVENT_TEST, url=receiver.url, payload={}, next_attempt_at=timezone.now()
        )
        webhooks.attempt(delivery.pk)
        WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
        assert webhooks.attempt(delivery.pk).status == "failed"


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_receiver_is_an_attempt_with_the_reason():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again at once: nobody listens there
    _configure(f"http://127.0.0.1:{port}/hook")
    delivery = WebhookDelivery.objects.create(
        event_type=webhooks.EVENT_TEST,
        url=f"http://127.0.0.1:{port}/hook",
        payload={},
        next_attempt_at=timezone.now(),
    )
    after = webhooks.attempt(delivery.pk)
    assert (
        after.status == "pending" and after.last_status_code is None and "refused" in after.last_error.lower()
    )


@pytest.mark.django_db(transaction=True)
def test_a_delivery_whose_task_was_lost_is_sent_by_the_sweep(eager_celery):
    """A worker killed mid-attempt leaves a leased, pending row: the sweep sends it once the lease lapses."""
    with Receiver([]) as receiver:
        _configure(receiver.url)
        past = timezone.now() - timedelta(minutes=1)
        delivery = WebhookDelivery.objects.create(
            event_type=webhooks.EVENT_TEST, url=receiver.url, payload={"id": "lost"}, next_attempt_at=past,
            lease_until=past,
        )  # fmt: skip
        assert webhooks.retry_due_webhooks() == 1
        delivery.refresh_from_db()
        assert delivery.status == "succeeded" and len(receiver.requests) == 1


@pytest.mark.django_db(transaction=True)
def test_send_test_event_from_the_page_reaches_the_receiver_signed(ga_client, eager_celery):
    with Receiver([]) as receiver:
        response = ga_client.post(
            "/tenant-admin/webhook/",
            {"enabled": "on", "url": receiver.url, "secret": SECRET, "events": "protected"},
        )
        assert response.status_code == 302
        response = ga_client.post("/tenant-admin/webhook/test/")
        assert response.status_code == 302 and response["Location"].endswith(
            "/tenant-admin/webhook/deliveries/"
        )
        wait_for(lambda: receiver.requests, timeout=10)
        request = receiver.requests[0]
        assert _verified(request)
        body = json.loads(request["body"])
        assert body["type"] == "webhook.test" and request["headers"][webhooks.EVENT_HEADER] == "webhook.test"
        log = ga_client.get("/tenant-admin/webhook/deliveries/")
        assert "webhook.test" in log.content.decode() and "Delivered" in log.content.decode()


@pytest.mark.django_db
def test_a_bad_form_is_answered_with_the_reason_and_keeps_the_saved_settings(ga_client):
    _configure("https://soc.contoso.com/hook")
    response = ga_client.post(
        "/tenant-admin/webhook/", {"enabled": "on", "url": "javascript:alert(1)", "events": "protected"}
    )
    assert response.status_code == 400
    assert "http:// or https://" in response.content.decode()
    assert WebhookEndpoint.load().url == "https://soc.contoso.com/hook"


@pytest.mark.django_db
def test_a_generated_secret_is_shown_once(ga_client):
    response = ga_client.post(
        "/tenant-admin/webhook/",
        {"enabled": "on", "url": "https://soc.contoso.com/hook", "generate_secret": "on", "events": "all"},
    )
    secret = WebhookEndpoint.load().secret
    assert len(secret) >= 32 and secret in response.content.decode()
    assert secret not in ga_client.get("/tenant-admin/webhook/").content.decode()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_delivers_after_two_failures_with_growing_waits(tmp_path):
    """End to end: a real Celery worker over Redis, a real receiver on loopback that fails twice."""
    with Receiver([500, 502]) as receiver:
        _configure(receiver.url)
        env = child_env(WEBHOOK_BACKOFF_SECONDS="1")
        with child_process(worker_command("webhook"), env, tmp_path / "worker.log"):
            delivery = webhooks.send_test_event()
            done = wait_for(
                lambda: WebhookDelivery.objects.filter(pk=delivery.pk, status="succeeded").first(), timeout=90
            )
    assert done.attempts == 3 and [h["status_code"] for h in done.history] == [500, 502, 200]
    assert all(_verified(r) for r in receiver.requests)
    times = [r["at"] for r in receiver.requests]
    first_wait, second_wait = (times[1] - times[0]).total_seconds(), (times[2] - times[1]).total_seconds()
    assert first_wait >= 0.9 and second_wait >= 1.9  # 1 s then 2 s: exponential
