"""Status pages. A policy's Monitor pages nest under the policy page (policies:detail is
endpoint-security/policies/<policy_id>/); the tenant-wide overview and its lists live under
endpoint-security/reports/ (a one-segment endpoint-security/<slug>/ path is a policy-type list of the policies app).
"""

from django.urls import path

from . import drift_pages, views

app_name = "reports"

POLICY = "endpoint-security/policies/<uuid:policy_id>/monitor/"

urlpatterns = [
    path("endpoint-security/reports/overview/", views.overview, name="overview"),
    path("endpoint-security/reports/overview/live/", views.overview_live, name="overview_live"),
    path(
        "endpoint-security/reports/devices-with-errors-or-conflicts/",
        views.IssueDeviceListView.as_view(),
        name="issue_devices",
    ),
    path("endpoint-security/reports/drift/", drift_pages.DriftListView.as_view(), name="drift"),
    path(
        "endpoint-security/reports/devices-not-checking-in/",
        views.LateDeviceListView.as_view(),
        name="late_devices",
    ),
    path(
        "endpoint-security/reports/devices/<int:pk>/panel/live/",
        views.device_panel_live,
        name="device_panel_live",
    ),
    path(
        "endpoint-security/reports/effective-settings/", views.effective_settings, name="effective_settings"
    ),
    path(
        "endpoint-security/reports/effective-settings/live/",
        views.effective_settings_live,
        name="effective_settings_live",
    ),
    path(
        "endpoint-security/reports/effective-settings/devices/",
        views.effective_devices,
        name="effective_devices",
    ),
    path(POLICY, views.policy_monitor, name="policy_monitor"),
    path(f"{POLICY}live/", views.policy_monitor_live, name="policy_monitor_live"),
    path(f"{POLICY}devices/", views.PolicyDeviceListView.as_view(), name="policy_devices"),
    path(f"{POLICY}devices/<int:device_pk>/", views.policy_device_settings, name="policy_device_settings"),
    path(
        f"{POLICY}devices/<int:device_pk>/live/",
        views.policy_device_settings_live,
        name="policy_device_settings_live",
    ),
    path(
        f"{POLICY}devices/<int:device_pk>/settings/<str:setting_key>/",
        views.policy_device_setting,
        name="policy_device_setting",
    ),
    path(f"{POLICY}settings/", views.policy_settings, name="policy_settings"),
]
