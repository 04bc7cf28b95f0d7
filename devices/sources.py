"""The other management sources of simulated Windows devices, read from the database for the agent.

For each device: the Group Policy objects that apply to it (explicit links, its AD domain, its OU or a parent
OU), the Configuration Manager baselines of a ConfigMgr client and the local admin's changes, turned into
:class:`devices.precedence.Attempt` values. A handful of queries per batch of devices, whatever its size.

GPO processing order follows Active Directory's LSDOU: a GPO linked to the device's OU (or explicitly to the
device) is stronger than one linked to the domain; within a level the lower link order wins.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from .models import ConfigMgrBaseline, Device, GroupPolicyObject, LocalAdminChange
from .precedence import Attempt, replay_local_changes

__all__ = ["NO_SOURCES", "DeviceSources", "gpo_applies", "load_sources", "sources_for"]

_CONFIGMGR_KIND = {
    ConfigMgrBaseline.Mode.CO_MANAGEMENT: "configmgr_co",
    ConfigMgrBaseline.Mode.STANDALONE: "configmgr",
    ConfigMgrBaseline.Mode.TENANT_ATTACH: "configmgr_attach",
}


@dataclass(frozen=True)
class DeviceSources:
    attempts: tuple[Attempt, ...] = ()
    local_overrides: frozenset[str] = frozenset()

    @property
    def key(self) -> str:
        """Identifies the sources (devices with the same sources and state share the agent's work)."""
        if not self.attempts and not self.local_overrides:
            return ""
        blob = json.dumps(
            [
                [[a.setting_id, a.kind, a.value, a.name, a.order] for a in self.attempts],
                sorted(self.local_overrides),
            ],
            sort_keys=True,
            default=str,
        )
        return hashlib.sha1(blob.encode()).hexdigest()


NO_SOURCES = DeviceSources()


def _ou_matches(device_ou: str, link_ou: str) -> bool:
    device_ou, link_ou = device_ou.strip().lower(), link_ou.strip().lower()
    return bool(device_ou and link_ou) and (device_ou == link_ou or device_ou.endswith("," + link_ou))


def gpo_applies(gpo: GroupPolicyObject, device: Device, explicit: bool) -> int | None:
    """The GPO's processing level for the device (0 OU or explicit link, 1 domain), ``None`` if it doesn't apply."""
    if not gpo.enabled:
        return None
    if explicit or _ou_matches(device.ad_ou, gpo.link_ou):
        return 0
    if gpo.link_domain and device.ad_domain and gpo.link_domain.strip().lower() == device.ad_domain.lower():
        return 1
    return None


def load_sources(devices: Sequence[Device]) -> dict[int, DeviceSources]:
    """The other sources of each device (devices without any are left out)."""
    if not devices:
        return {}
    ids = [d.pk for d in devices]
    gpos = list(GroupPolicyObject.objects.filter(enabled=True).order_by("link_order", "name"))
    baselines = list(ConfigMgrBaseline.objects.filter(enabled=True).order_by("name"))
    explicit_gpo: dict[int, set[int]] = defaultdict(set)
    explicit_baseline: dict[int, set[int]] = defaultdict(set)
    if gpos:
        links = GroupPolicyObject.devices.through.objects.filter(device_id__any=ids)
        for device_id, gpo_id in links.values_list("device_id", "grouppolicyobject_id"):
            explicit_gpo[device_id].add(gpo_id)
    if baselines and any(not b.all_clients for b in baselines):
        links = ConfigMgrBaseline.devices.through.objects.filter(device_id__any=ids)
        for device_id, baseline_id in links.values_list("device_id", "configmgrbaseline_id"):
            explicit_baseline[device_id].add(baseline_id)
    local_changes: dict[int, list[tuple[str, str, object]]] = defaultdict(list)
    for device_id, setting_id, operation, value in (
        LocalAdminChange.objects.filter(device_id__any=ids)
        .order_by("device_id", "at", "id")
        .values_list("device_id", "setting_id", "operation", "value")
    ):
        local_changes[device_id].append((setting_id, operation, value))
    out: dict[int, DeviceSources] = {}
    for device in devices:
        attempts: list[Attempt] = []
        overrides: set[str] = set()
        for gpo in gpos:
            level = gpo_applies(gpo, device, gpo.pk in explicit_gpo.get(device.pk, ()))
            if level is None:
                continue
            overrides.update(str(s) for s in (gpo.local_overrides or []))
            order = level * 100_000 + gpo.link_order
            for setting_id, value in sorted((gpo.settings or {}).items()):
                attempts.append(Attempt(setting_id, "gpo", value, gpo.name, order))
        if device.configmgr_client:
            for baseline in baselines:
                if baseline.all_clients or baseline.pk in explicit_baseline.get(device.pk, ()):
                    kind = _CONFIGMGR_KIND.get(baseline.mode, "configmgr")
                    for setting_id, value in sorted((baseline.settings or {}).items()):
                        attempts.append(Attempt(setting_id, kind, value, baseline.name))
        if device.pk in local_changes:
            for setting_id, value in sorted(replay_local_changes(local_changes[device.pk]).items()):
                attempts.append(Attempt(setting_id, "local", value))
        if attempts or overrides:
            out[device.pk] = DeviceSources(tuple(attempts), frozenset(overrides))
    return out


def sources_for(device: Device) -> DeviceSources:
    return load_sources([device]).get(device.pk, NO_SOURCES)
