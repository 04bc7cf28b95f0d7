from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import people, preferences, signin, views

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
    path("tenant-admin/users/", people.UserListView.as_view(), name="users"),
    path("tenant-admin/users/new/", people.user_create, name="user_create"),
    path("tenant-admin/users/<int:pk>/", people.user_detail, name="user_detail"),
    path("tenant-admin/users/<int:pk>/enable/", people.user_enable, name="user_enable"),
    path(
        "tenant-admin/users/<int:pk>/reset-password/", people.user_reset_password, name="user_reset_password"
    ),
    path("tenant-admin/users/<int:pk>/delete/", people.user_delete, name="user_delete"),
    path("invite/<uidb64>/<token>/", people.InviteAcceptView.as_view(), name="invite_accept"),
    path("invite/done/", people.InviteDoneView.as_view(), name="invite_done"),
    path("tenant-admin/admin-groups/", people.admin_group_list, name="admin_groups"),
    path("tenant-admin/admin-groups/new/", people.admin_group_create, name="admin_group_create"),
    path("tenant-admin/admin-groups/<int:pk>/", people.admin_group_detail, name="admin_group_detail"),
    path("tenant-admin/admin-groups/<int:pk>/delete/", people.admin_group_delete, name="admin_group_delete"),
    path("tenant-admin/scope-tags/", people.scope_tag_list, name="scope_tags"),
    path("tenant-admin/scope-tags/new/", people.scope_tag_create, name="scope_tag_create"),
    path("tenant-admin/scope-tags/<int:pk>/", people.scope_tag_detail, name="scope_tag_detail"),
    path("tenant-admin/scope-tags/<int:pk>/delete/", people.scope_tag_delete, name="scope_tag_delete"),
    path("tenant-admin/roles/", people.role_list, name="roles"),
    path("tenant-admin/roles/new/", people.role_create, name="role_create"),
    path("tenant-admin/roles/<int:pk>/", people.role_detail, name="role_detail"),
    path("tenant-admin/roles/<int:pk>/delete/", people.role_delete, name="role_delete"),
    path("tenant-admin/roles/<int:pk>/assignments/new/", people.assignment_create, name="assignment_create"),
    path(
        "tenant-admin/role-assignments/<int:pk>/delete/", people.assignment_delete, name="assignment_delete"
    ),
    path("tenant-admin/audit-logs/", views.AuditLogView.as_view(), name="audit_logs"),
    path("tenant-admin/api-tokens/", views.api_tokens, name="api_tokens"),
    path("tenant-admin/api-tokens/new/", views.api_token_create, name="api_token_create"),
    path("tenant-admin/api-tokens/<int:pk>/revoke/", views.api_token_revoke, name="api_token_revoke"),
    path("tenant-admin/webhook/", views.webhook_settings, name="webhook_settings"),
    path("tenant-admin/webhook/test/", views.webhook_test, name="webhook_test"),
    path(
        "tenant-admin/webhook/deliveries/", views.WebhookDeliveryListView.as_view(), name="webhook_deliveries"
    ),
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
