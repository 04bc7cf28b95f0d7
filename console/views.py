from __future__ import annotations

import hmac

from django.conf import settings
from django.contrib.auth.decorators import login_not_required, permission_required
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from policies.catalog import get_catalog

from . import health
from .filtersets import AuditEventFilterSet, WebhookDeliveryFilterSet
from .listing import CsvColumn, ObjectListView
from .models import AuditEvent, Job, TenantSettings, WebhookDelivery
from .tables import AuditEventTable, WebhookDeliveryTable


def _service_health() -> dict:
    return health.panel()


@require_GET
def health_panel(request):
    """The service-health card alone: Home and Dashboard poll it, so it stays true while the page is open."""
    return render(request, "console/partials/service_health.html", {"health": _service_health()})


@login_not_required
@never_cache
@require_GET
def healthz(request):
    """For load balancers and supervisors: 200 when every check passes, 503 with the reasons otherwise.

    ``?check=database,broker`` (or repeated ``check=``) runs a subset; an unknown name is a 400 naming the valid
    ones. No login: it reveals states and counts, never data.
    """
    asked = [name for value in request.GET.getlist("check") for name in value.split(",") if name.strip()]
    try:
        names = health.resolve(asked)
    except ValueError as exc:
        return JsonResponse({"status": "error", "error": str(exc)}, status=400)
    checks = health.run_checks(names)
    ok = all(check.ok for check in checks.values())
    body = {
        "status": "ok" if ok else "down",
        "checks": {
            name: {"status": "ok" if c.ok else "down", "detail": c.detail, "value": c.value}
            for name, c in checks.items()
        },
    }
    return JsonResponse(body, status=200 if ok else 503)


@login_not_required
@never_cache
@require_GET
def metrics(request):
    """Prometheus text format. With METRICS_TOKEN set, a scrape must send 'Authorization: Bearer <token>'."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    from .metrics import registry

    token = settings.METRICS_TOKEN
    if token:
        scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(sent.strip().encode(), token.encode()):
            response = HttpResponse(
                "Send the metrics token as 'Authorization: Bearer <METRICS_TOKEN>'.\n",
                status=401,
                content_type="text/plain; charset=utf-8",
            )
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


@require_GET
def home(request):
    tenant = TenantSettings.load()
    return render(
        request,
        "console/home.html",
        {"tenant": tenant, "health": _service_health(), "summary": dashboard_summary(request.user)},
    )


def dashboard_summary(user=None) -> dict:
    """Counts for Home and Dashboard, each from an indexed count; apps add theirs as they grow. Device counts
    are within ``user``'s role-assignment scope."""
    from django.apps import apps

    summary: dict[str, object] = {}
    if apps.is_installed("devices") and hasattr(apps.get_app_config("devices"), "dashboard_counts"):
        summary.update(apps.get_app_config("devices").dashboard_counts(user))
    if apps.is_installed("policies") and hasattr(apps.get_app_config("policies"), "dashboard_counts"):
        summary.update(apps.get_app_config("policies").dashboard_counts(user))
    return summary


@require_GET
def dashboard(request):
    return render(
        request,
        "console/dashboard.html",
        {
            "tenant": TenantSettings.load(),
            "health": _service_health(),
            "summary": dashboard_summary(request.user),
            "recent": AuditEvent.objects.select_related("actor")[:10],
        },
    )


@require_GET
def tenant_admin(request):
    return render(request, "console/tenant_admin.html", {"tenant": TenantSettings.load()})


class AuditLogView(ObjectListView):
    permission_required = "console.view_auditevent"
    queryset = AuditEvent.objects.all()
    filterset_class = AuditEventFilterSet
    table_class = AuditEventTable
    title = "Audit logs"
    breadcrumbs = [("Tenant administration", "tenant_admin")]
    per_page = 50
    keyset = True
    export_filename = "audit-logs.csv"
    export_values = [
        CsvColumn("Date", "at", "iso"),
        CsvColumn("Initiated by", "actor_name"),
        CsvColumn("Source", "source", "choice", tuple(AuditEvent.Source.choices)),
        CsvColumn("Activity", "action"),
        CsvColumn("Object type", "object_type"),
        CsvColumn("Object id", "object_id"),
        CsvColumn("Target", "object_repr"),
        CsvColumn("IP address", "ip", "str"),
        CsvColumn("Before", "before", "json"),
        CsvColumn("After", "after", "json"),
    ]

    def get(self, request, *args, **kwargs):
        if request.GET.get("export") == "csv" and not request.user.has_perm("console.export_auditevent"):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied("Exporting audit logs needs the export permission.")
        return super().get(request, *args, **kwargs)


@require_GET
def job_status(request, pk: int):
    """The progress partial a page polls while a background job runs (stops polling when it ends)."""
    job = get_object_or_404(Job, pk=pk)
    return render(request, "console/partials/job.html", {"job": job})


def csrf_failure(request, reason: str = ""):
    return render(
        request,
        "403_csrf.html",
        {"reason": "The form was stale or was not sent by this console. Reload the page and try again."},
        status=403,
    )


def permission_denied(request, exception=None):
    message = str(exception) if exception and str(exception) else ""
    return render(request, "403.html", {"message": message}, status=403)


def page_not_found(request, exception=None):
    return render(request, "404.html", status=404)


def server_error(request):
    return render(request, "500.html", status=500)


def bad_request(request, exception=None):
    return render(request, "400.html", status=400)


@require_GET
@permission_required("console.view_apitoken", raise_exception=True)
def api_tokens(request):
    from .forms import ApiTokenForm
    from .models import ApiToken

    return render(
        request,
        "console/api_tokens.html",
        {"tokens": ApiToken.objects.select_related("owner", "role"), "form": ApiTokenForm()},
    )


@permission_required("console.manage_apitoken", raise_exception=True)
def api_token_create(request):
    from django.shortcuts import redirect

    from .forms import ApiTokenForm
    from .models import ApiToken
    from .tokens import create_token

    if request.method != "POST":
        return redirect("api_tokens")
    form = ApiTokenForm(request.POST)
    if form.is_valid():
        token, secret = create_token(
            name=form.cleaned_data["name"],
            owner=request.user,
            role=form.cleaned_data["role"],
            days=form.cleaned_data["days"],
        )
        return render(request, "console/api_token_created.html", {"token": token, "secret": secret})
    return render(
        request,
        "console/api_tokens.html",
        {"tokens": ApiToken.objects.select_related("owner", "role"), "form": form},
        status=400,
    )


@permission_required("console.manage_apitoken", raise_exception=True)
def api_token_revoke(request, pk: int):
    from django.contrib import messages
    from django.shortcuts import redirect

    from .models import ApiToken
    from .tokens import revoke_token

    if request.method != "POST":
        return redirect("api_tokens")
    token = get_object_or_404(ApiToken, pk=pk)
    revoke_token(token)
    messages.success(request, f"Token {token.name} was revoked; requests that use it now get 401.")
    return redirect("api_tokens")


@require_GET
@permission_required("axes.view_accessattempt", raise_exception=True)
def lockouts(request):
    """Tenant administration › Sign-in lockouts: accounts and addresses with failed sign-ins, locked or not."""
    from axes.models import AccessAttempt
    from django.conf import settings
    from django.utils import timezone

    now = timezone.now()
    rows = []
    for attempt in AccessAttempt.objects.order_by("-attempt_time")[:500]:
        until = attempt.attempt_time + settings.AXES_COOLOFF_TIME
        locked = attempt.failures_since_start >= settings.AXES_FAILURE_LIMIT and until > now
        rows.append({"attempt": attempt, "locked": locked, "until": until})
    return render(
        request,
        "console/lockouts.html",
        {"rows": rows, "limit": settings.AXES_FAILURE_LIMIT, "cooloff": settings.AXES_COOLOFF_TIME},
    )


@permission_required("axes.delete_accessattempt", raise_exception=True)
def lockout_unlock(request, pk: int):
    """Unlock: forget the failures of that row's account and address (audited)."""
    from axes.models import AccessAttempt
    from axes.utils import reset
    from django.contrib import messages
    from django.shortcuts import redirect

    from . import audit

    if request.method != "POST":
        return redirect("lockouts")
    attempt = get_object_or_404(AccessAttempt, pk=pk)
    removed = reset(username=attempt.username) + reset(ip=attempt.ip_address)
    audit.record(
        "login.unlock",
        object_type="User",
        object_id=attempt.username or "",
        object_repr=attempt.username or attempt.ip_address or "",
        before={
            "username": attempt.username,
            "ip": attempt.ip_address,
            "failures": attempt.failures_since_start,
        },
        after={"removed_attempts": removed},
        actor=audit.actor_from_request(request),
    )
    messages.success(
        request, f"Sign-in for {attempt.username or '(no username)'} from {attempt.ip_address} is unlocked."
    )
    return redirect("lockouts")


# ---- Tenant administration › Webhook ----------------------------------------------------------------------

WEBHOOK_PERM = "console.change_webhookendpoint"


def _protectable_settings() -> list[tuple[str, str]]:
    """Antivirus settings a tenant may add to its protected set (the catalog's, never invented ids)."""
    catalog = get_catalog()
    profile = catalog.profile("microsoft-defender-antivirus")
    return sorted(
        ((s.id, s.display_name) for s in profile.settings if s.is_value_key and not s.hidden),
        key=lambda pair: pair[1].lower(),
    )


@permission_required(WEBHOOK_PERM, raise_exception=True)
def webhook_settings(request):
    from django.contrib import messages

    from . import audit, webhooks
    from .forms import WebhookForm
    from .models import WebhookDelivery, WebhookEndpoint

    endpoint = WebhookEndpoint.load()
    choices = _protectable_settings()
    shown_secret = None
    status = 200
    if request.method == "POST":
        form = WebhookForm(request.POST, setting_choices=choices)
        if form.is_valid():
            data = form.cleaned_data
            secret = data["secret"] or None
            if data["generate_secret"]:
                secret = shown_secret = webhooks.generate_secret()
            try:
                with audit.acting_as(audit.actor_from_request(request)):
                    endpoint = webhooks.configure(
                        url=data["url"],
                        secret=secret,
                        enabled=data["enabled"],
                        events=data["events"],
                        extra_protected=data["extra_protected"],
                    )
            except webhooks.WebhookError as exc:
                form.add_error(None, str(exc))
                shown_secret = None
                status = 400
            else:
                if shown_secret is None:
                    messages.success(request, "The webhook settings were saved.")
                    from django.shortcuts import redirect

                    return redirect("webhook_settings")
                form = WebhookForm(initial=_webhook_initial(endpoint), setting_choices=choices)
        else:
            status = 400
    else:
        form = WebhookForm(initial=_webhook_initial(endpoint), setting_choices=choices)
    return render(
        request,
        "console/webhook.html",
        {
            "form": form,
            "endpoint": endpoint,
            "shown_secret": shown_secret,
            "recent": WebhookDelivery.objects.all()[:5],
        },
        status=status,
    )


def _webhook_initial(endpoint) -> dict:
    return {
        "enabled": endpoint.enabled,
        "url": endpoint.url,
        "events": endpoint.events,
        "extra_protected": endpoint.extra_protected,
    }


@permission_required(WEBHOOK_PERM, raise_exception=True)
def webhook_test(request):
    from django.contrib import messages
    from django.shortcuts import redirect

    from . import audit, webhooks

    if request.method != "POST":
        return redirect("webhook_settings")
    try:
        delivery = webhooks.send_test_event(actor=audit.actor_from_request(request))
    except webhooks.WebhookError as exc:
        messages.error(request, str(exc))
        return redirect("webhook_settings")
    messages.success(request, f"A test event was queued ({delivery.event_id}); its attempts show in the log.")
    return redirect("webhook_deliveries")


class WebhookDeliveryListView(ObjectListView):
    permission_required = WEBHOOK_PERM
    queryset = WebhookDelivery.objects.all()
    filterset_class = WebhookDeliveryFilterSet
    table_class = WebhookDeliveryTable
    title = "Webhook delivery log"
    breadcrumbs = [("Tenant administration", "tenant_admin"), ("Webhook", "webhook_settings")]
    per_page = 50
    export_filename = "webhook-deliveries.csv"
    export_columns = [
        ("Created", lambda d: d.created_at.isoformat()),
        ("Event id", lambda d: str(d.event_id)),
        ("Event", lambda d: d.event_type),
        ("URL", lambda d: d.url),
        ("Status", lambda d: d.get_status_display()),
        ("Attempts", lambda d: d.attempts),
        ("Last response", lambda d: d.last_status_code or ""),
        ("Last error", lambda d: d.last_error),
        ("Delivered", lambda d: d.delivered_at.isoformat() if d.delivered_at else ""),
    ]
