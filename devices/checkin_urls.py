"""Check-in URLs: the device page's check-in panel and Policy sync actions, and the device channel.

The device channel paths are a fixed protocol (a device is configured with the service's base URL), called by
devices with their own bearer credential rather than by signed-in people, so they are deliberately unnamed: the
console's access table (tests/console/test_access.py) walks named console pages only. Their access rules are
tested in tests/checkins/test_channel_http.py.
"""

from django.urls import path

from . import channel, checkins

app_name = "checkins"

urlpatterns = [
    path("checkins/devices/<int:pk>/panel/", checkins.device_panel, name="device_panel"),
    path("checkins/devices/<int:pk>/sync/", checkins.device_sync, name="device_sync"),
    path("checkins/devices/sync/", checkins.bulk_sync, name="bulk_sync"),
    path("checkins/groups/<int:pk>/sync/", checkins.group_sync, name="group_sync"),
    # The device channel (the *.dm.microsoft.com role)
    path("devicechannel/v1/checkin", channel.checkin_view),
    path("devicechannel/v1/report", channel.report_view),
    path("devicechannel/v1/policies/<uuid:policy_id>", channel.policy_view),
]
