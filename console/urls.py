from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import preferences, signin, views

urlpatterns = [
    path("", views.home, name="home"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("login/", signin.LoginView.as_view(), name="login"),
    path("login/sso/", signin.sso_start, name="sso_start"),
    path("login/sso/callback/", signin.sso_callback, name="sso_callback"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/password/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("account/password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("account/preferences/", preferences.preferences, name="preferences"),
    path("tenant-admin/", views.tenant_admin, name="tenant_admin"),
    path("tenant-admin/roles/", views.roles, name="roles"),
    path("tenant-admin/audit-logs/", views.AuditLogView.as_view(), name="audit_logs"),
    path("tenant-admin/api-tokens/", views.api_tokens, name="api_tokens"),
    path("tenant-admin/api-tokens/new/", views.api_token_create, name="api_token_create"),
    path("tenant-admin/api-tokens/<int:pk>/revoke/", views.api_token_revoke, name="api_token_revoke"),
    path("tenant-admin/sign-in-lockouts/", views.lockouts, name="lockouts"),
    path("tenant-admin/sign-in-lockouts/<int:pk>/unlock/", views.lockout_unlock, name="lockout_unlock"),
    path("jobs/<int:pk>/", views.job_status, name="job_status"),
    path("service-health/", views.health_panel, name="health_panel"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
    path("", include("devices.urls")),
    path("", include("policies.urls")),
    path("", include("reports.urls")),
    path("", include("devices.checkin_urls")),
    # The Graph API at beta/ and v1.0/ (its catch-all last) and its OpenAPI schema at api/schema/
    path("", include("console.api.urls")),
]

handler400 = "console.views.bad_request"
handler403 = "console.views.permission_denied"
handler404 = "console.views.page_not_found"
handler500 = "console.views.server_error"
