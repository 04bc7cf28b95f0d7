from django.urls import path

from . import views

app_name = "policies"
urlpatterns = [
    path("endpoint-security/", views.overview, name="overview"),
    path("tenant-admin/filters/", views.filter_list, name="filter_list"),
    path("tenant-admin/filters/new/", views.filter_create, name="filter_create"),
    path("tenant-admin/filters/<int:pk>/", views.filter_detail, name="filter_detail"),
    path("tenant-admin/filters/<int:pk>/edit/", views.filter_edit, name="filter_edit"),
    path("tenant-admin/filters/<int:pk>/delete/", views.filter_delete, name="filter_delete"),
    path("endpoint-security/import/", views.import_policy, name="import"),
    path("endpoint-security/drafts/<uuid:draft_id>/impact/", views.wizard_impact, name="wizard_impact"),
    path("endpoint-security/drafts/<uuid:draft_id>/autosave/", views.wizard_autosave, name="wizard_autosave"),
    path(
        "endpoint-security/drafts/<uuid:draft_id>/rules/<str:index>/", views.wizard_rule, name="wizard_rule"
    ),
    path("endpoint-security/drafts/<uuid:draft_id>/<slug:step>/", views.wizard_step, name="wizard"),
    path("endpoint-security/policies/<uuid:policy_id>/", views.detail, name="detail"),
    path("endpoint-security/policies/<uuid:policy_id>/edit/<slug:section>/", views.edit, name="edit"),
    path("endpoint-security/policies/<uuid:policy_id>/duplicate/", views.duplicate, name="duplicate"),
    path("endpoint-security/policies/<uuid:policy_id>/delete/", views.delete, name="delete"),
    path("endpoint-security/policies/<uuid:policy_id>/versions/", views.versions, name="versions"),
    path(
        "endpoint-security/policies/<uuid:policy_id>/versions/compare/",
        views.version_diff,
        name="version_diff",
    ),
    path(
        "endpoint-security/policies/<uuid:policy_id>/versions/<int:number>/restore/",
        views.restore,
        name="restore",
    ),
    path("endpoint-security/policies/<uuid:policy_id>/export/", views.export, name="export"),
    path("endpoint-security/<slug:policy_type>/", views.PolicyListView.as_view(), name="list"),
    path("endpoint-security/<slug:policy_type>/create/", views.create, name="create"),
]
