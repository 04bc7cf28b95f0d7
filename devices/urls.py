from django.urls import path

from . import lab_views, views

app_name = "devices"
urlpatterns = [
    # Intune admin center › Devices
    path("devices/", views.DeviceListView.as_view(), name="list"),
    path("devices/bulk/", views.device_bulk, name="bulk"),
    path("devices/bulk/jobs/<int:pk>/", views.bulk_job, name="bulk_job"),
    path("devices/<int:pk>/", views.device_detail, name="detail"),
    path("devices/<int:pk>/status/", views.device_status, name="status"),
    path("devices/<int:pk>/effective-settings/", views.device_effective, name="effective"),
    path("devices/<int:pk>/tags/", views.device_tags, name="tags"),
    path("devices/<int:pk>/delete/", views.device_delete, name="delete"),
    # Device lab (simulation, Global Administrator only): devices, facts, local admin changes, GPOs
    path("lab/", lab_views.lab_home, name="lab"),
    path("lab/devices/new/", lab_views.lab_device_create, name="lab_device_create"),
    path("lab/devices/<int:pk>/", lab_views.lab_device, name="lab_device"),
    path("lab/devices/<int:pk>/local-changes/", lab_views.lab_local_change_add, name="lab_local_change_add"),
    path(
        "lab/devices/<int:pk>/local-changes/<int:change_pk>/remove/",
        lab_views.lab_local_change_remove,
        name="lab_local_change_remove",
    ),
    path("lab/gpos/new/", lab_views.lab_gpo_create, name="lab_gpo_create"),
    path("lab/gpos/<int:pk>/", lab_views.lab_gpo, name="lab_gpo"),
    path("lab/gpos/<int:pk>/settings/", lab_views.lab_gpo_setting, name="lab_gpo_setting"),
    path("lab/gpos/<int:pk>/delete/", lab_views.lab_gpo_delete, name="lab_gpo_delete"),
    # Intune admin center › Groups (Microsoft Entra groups)
    path("groups/", views.GroupListView.as_view(), name="group_list"),
    path("groups/new/", views.group_create, name="group_create"),
    path("groups/validate/", views.group_validate, name="group_validate"),
    path("groups/<int:pk>/", views.group_detail, name="group_detail"),
    path("groups/<int:pk>/edit/", views.group_edit, name="group_edit"),
    path("groups/<int:pk>/delete/", views.group_delete, name="group_delete"),
    path("groups/<int:pk>/members/search/", views.group_member_search, name="group_member_search"),
    path("groups/<int:pk>/members/add/", views.group_member_add, name="group_member_add"),
    path("groups/<int:pk>/members/remove/", views.group_member_remove, name="group_member_remove"),
    # Intune admin center › Endpoint security › Microsoft Defender for Endpoint (the connector switch)
    path("endpoint-security/microsoft-defender-for-endpoint/", views.mde_connector, name="mde_connector"),
    # Microsoft 365 Defender › Settings › Endpoints › Configuration Management › Enforcement Scope
    path(
        "defender/settings/endpoints/configuration-management/",
        views.enforcement_scope,
        name="enforcement_scope",
    ),
    path(
        "defender/settings/endpoints/configuration-management/status/",
        views.scope_status,
        name="scope_status",
    ),
    path(
        "defender/settings/endpoints/configuration-management/reevaluate/",
        views.reevaluate,
        name="reevaluate",
    ),
]
