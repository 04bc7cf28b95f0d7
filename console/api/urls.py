"""The Microsoft Graph-shaped API under /beta/ and /v1.0/ (where Graph has the same resource), and its OpenAPI
schema at /api/schema/ (JSON by default; ?format=yaml or Accept: application/yaml for YAML).

URL patterns here are unnamed on purpose: tests/console/test_access.py walks every *named* URL as a signed-in
console page, and these answer bearer tokens, not sessions. tests/api covers their access decisions instead.
"""

from __future__ import annotations

from django.urls import path, re_path
from drf_spectacular.renderers import (
    OpenApiJsonRenderer,
    OpenApiJsonRenderer2,
    OpenApiYamlRenderer,
    OpenApiYamlRenderer2,
)
from drf_spectacular.views import SpectacularAPIView
from rest_framework.permissions import AllowAny

from devices.api import views as devices
from policies.api import definitions
from policies.api import filters as assignment_filters
from policies.api import views as policies
from reports.api import views as reports

from . import people
from .common import GraphSchemaGenerator
from .metadata import metadata
from .views import not_found

POLICY = "deviceManagement/configurationPolicies/<str:policy_id>"
DEVICE = "deviceManagement/managedDevices/<str:device_id>"


def _both(version: str) -> list:
    """Resources Graph has in v1.0 and beta."""
    kw = {"api_version": version}
    return [
        path(f"{version}/deviceManagement/managedDevices", devices.ManagedDeviceList.as_view(**kw)),
        path(f"{version}/{DEVICE}", devices.ManagedDeviceDetail.as_view(**kw)),
        path(f"{version}/{DEVICE}/syncDevice", devices.SyncDevice.as_view(**kw)),
        path(f"{version}/devices", devices.DeviceList.as_view(**kw)),
        path(f"{version}/users", people.UserList.as_view(**kw)),
        path(f"{version}/devices/<str:object_id>", devices.DeviceDetail.as_view(**kw)),
        path(f"{version}/groups", devices.GroupList.as_view(**kw)),
        path(f"{version}/groups/$count", devices.GroupCount.as_view(**kw)),
        path(f"{version}/groups/<str:group_id>", devices.GroupDetail.as_view(**kw)),
        path(f"{version}/groups/<str:group_id>/members", devices.GroupMembers.as_view(**kw)),
        path(f"{version}/groups/<str:group_id>/members/$ref", devices.GroupMemberAdd.as_view(**kw)),
        path(
            f"{version}/groups/<str:group_id>/members/<str:member_id>/$ref",
            devices.GroupMemberRemove.as_view(**kw),
        ),
    ]


def _beta_only() -> list:
    patterns = [
        path(f"beta/{DEVICE}/effectiveSettings", devices.ManagedDeviceEffectiveSettings.as_view()),
        path("beta/deviceManagement/configurationPolicies", policies.PolicyList.as_view()),
        path(f"beta/{POLICY}", policies.PolicyDetail.as_view()),
        path(f"beta/{POLICY}/settings", policies.PolicySettings.as_view()),
        path(f"beta/{POLICY}/settings/<str:setting_id>", policies.PolicySettingDetail.as_view()),
        path(f"beta/{POLICY}/assign", policies.PolicyAssign.as_view()),
        path(f"beta/{POLICY}/assignments", policies.PolicyAssignments.as_view()),
        path(f"beta/{POLICY}/assignments/<str:assignment_id>", policies.PolicyAssignmentDetail.as_view()),
    ]
    templates = "beta/deviceManagement/configurationPolicyTemplates"
    patterns += [
        path(templates, definitions.PolicyTemplateList.as_view()),
        path(f"{templates}/<str:template_id>", definitions.PolicyTemplateDetail.as_view()),
        path(f"{templates}/<str:template_id>/settingTemplates", definitions.SettingTemplateList.as_view()),
        path(
            f"{templates}/<str:template_id>/settingTemplates/$count",
            definitions.SettingTemplateCount.as_view(),
        ),
        path(
            f"{templates}/<str:template_id>/settingTemplates/<str:setting_template_id>",
            definitions.SettingTemplateDetail.as_view(),
        ),
        path("beta/deviceManagement/configurationSettings", definitions.ConfigurationSettingList.as_view()),
        path(
            "beta/deviceManagement/configurationSettings/<str:setting_id>",
            definitions.ConfigurationSettingDetail.as_view(),
        ),
        path("beta/deviceManagement/assignmentFilters", assignment_filters.FilterList.as_view()),
        path(
            "beta/deviceManagement/assignmentFilters/<str:filter_id>",
            assignment_filters.FilterDetail.as_view(),
        ),
        path("beta/deviceManagement/roleDefinitions", people.RoleDefinitionList.as_view()),
        path("beta/deviceManagement/roleAssignments", people.RoleAssignmentList.as_view()),
        path(
            "beta/deviceManagement/roleAssignments/<str:assignment_id>", people.RoleAssignmentDetail.as_view()
        ),
        path("beta/deviceManagement/roleScopeTags", people.RoleScopeTagList.as_view()),
        path("beta/deviceManagement/roleScopeTags/<str:tag_id>", people.RoleScopeTagDetail.as_view()),
    ]
    for name, view in reports.VIEWS.items():
        patterns.append(path(f"beta/deviceManagement/reports/{name}", view.as_view()))
    cached = "beta/deviceManagement/reports/cachedReportConfigurations"
    patterns += [
        path(cached, reports.CachedReportConfigurations.as_view()),
        path(f"{cached}/<str:config_id>", reports.CachedReportConfigurationDetail.as_view()),
        path("beta/deviceManagement/reports/getCachedReport", reports.GetCachedReport.as_view()),
    ]
    return patterns


class SchemaView(SpectacularAPIView):
    """The OpenAPI description of the API, public like Graph's $metadata."""

    generator_class = GraphSchemaGenerator
    renderer_classes = [OpenApiJsonRenderer, OpenApiJsonRenderer2, OpenApiYamlRenderer, OpenApiYamlRenderer2]
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @classmethod
    def as_view(cls, **initkwargs):
        view = super().as_view(**initkwargs)
        view.login_required = False
        return view


urlpatterns = [
    path("api/schema/", SchemaView.as_view()),
    path("beta/$metadata", metadata, {"version": "beta"}),
    path("v1.0/$metadata", metadata, {"version": "v1.0"}),
    *_beta_only(),
    *_both("beta"),
    *_both("v1.0"),
    # Last: anything else under a Graph version gets Graph's error envelope, not the console's HTML 404.
    re_path(r"^(?:beta|v1\.0)/(?P<path>.*)$", not_found),
]
