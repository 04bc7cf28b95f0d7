"""Simulated Microsoft Defender for Endpoint (MDE) client on one Windows device.

Pure module: no Django, no database, no I/O except the catalog (``policies.catalog``) which reads the
setting-catalog data file once.

What it models
--------------
* :class:`AgentState` - the device's local Defender configuration as ``Get-MpPreference`` would show it
  (``preferences``, keyed by the real MpPreference property names), whether Tamper Protection is on, settings
  that wait for a restart, the last value of settings that have no MpPreference property (firewall, EDR, ASR
  per-rule exclusions, ...), which setting ids the management channel currently manages and the fingerprint
  of the last desired state. It round-trips through a JSON-able dict (:meth:`AgentState.to_dict` /
  :meth:`AgentState.from_dict`).
* :func:`apply` - one policy sync: the device receives the full desired state (flat values, see the shared
  contract) and answers with one :class:`SettingReport` per desired setting.
* :func:`restart` - a device restart: settings that wait for a restart take effect.
* :func:`mp_preference` / :func:`format_mp_preference` - what ``Get-MpPreference`` prints on the device
  (the seed: "You can validate that settings have applied locally on the client by using the Get-MpPreference
  command utility").

Rules of :func:`apply`
----------------------
1. With Tamper Protection on, a desired value that would turn OFF a tamper-protected feature (real-time
   monitoring, behaviour monitoring, cloud protection, scanning of downloads (IOAV), on-access protection) is
   refused: status ``"error"``, error code :data:`TAMPER_PROTECTION_ERROR` and a message that Tamper Protection
   must be turned off first (seed: "If a device has Tamper Protection turned on, it will not be possible to edit
   its settings without turning off Tamper Protection"). The local value is left unchanged. A feature that is
   already off is not "turned off" by the write, so that write succeeds (nothing changes). Turning a protected
   feature ON is always allowed.
2. ``AllowOnAccessProtection`` and ``DisableLocalAdminMerge`` need a restart (reference section b, known
   issue): a value that differs from the local one is queued in ``pending_restart`` and reported ``"pending"``
   with the message :data:`RESTART_REQUIRED_MESSAGE`; :func:`restart` applies the queue, and the next sync
   reports them ``"succeeded"`` because the local value then matches.
3. A value the client can't parse (wrong type, not one of the catalog options, out of the catalog range) is
   refused with :data:`INVALID_VALUE_ERROR`; a setting id the catalog does not know with
   :data:`NOT_FOUND_ERROR`.
4. ``fault_rate`` (demo only, default 0) makes a random share of the settings that are not tamper-protected
   fail with :data:`GENERIC_ERROR` (one ``rng.random()`` draw per eligible setting, settings in sorted id order,
   so a seeded ``random.Random`` is reproducible). The local value is left unchanged.
5. Everything else is applied and reported ``"succeeded"``.
6. Removal: a setting that the channel managed in an earlier sync and that is no longer in the desired state
   (its policy was unassigned or the setting set back to "Not configured") reverts to the local default and gets
   no report. This is what a real MDM client does: Intune sends a Delete for the policy node, the Policy
   Manager removes the policy value and Defender falls back to its default; Intune stops reporting a setting
   that no assigned policy configures. The revert of a restart-bound setting is itself queued for a restart.
   Tamper Protection never blocks a revert: every tamper-protected feature defaults to ON.
7. The same desired state applied again gives the same reports and the same state (idempotent), as long as
   ``fault_rate`` is 0 (or the rng is seeded the same).

Report values
-------------
``SettingReport.value`` is, in flat-value form (the contract's canonical value of the setting): for
``"succeeded"`` the applied value, for ``"pending"`` the value waiting for the restart, for ``"error"`` the value
still in effect on the device (converted back from the MpPreference property, ``None`` when not configured).

Error codes
-----------
Error codes are HRESULT-style **signed 32-bit ints**, the convention Intune uses in device status reports and
Graph ``errorCode`` fields (e.g. -2016281112 for 0x87D1FDE8). :func:`hresult_hex` turns one into the
``0x87D1FDE8`` text form.

Mapping CSP -> MpPreference
---------------------------
:data:`MP_MAPPINGS` maps each settings-catalog id to ``(MpPreference property, transform)`` following reference
section d (whose mapping is by name and semantics, i.e. itself unverified; entries that the reference marks
unverified carry ``unverified=True``). ASR rule settings (the choice children of the ASR rules group, recognised
through their catalog CSP path) go to the parallel arrays ``AttackSurfaceReductionRules_Ids`` /
``AttackSurfaceReductionRules_Actions``. Every other catalog setting (firewall, EDR, ASR per-rule exclusions,
Defender CSP nodes without a Get-MpPreference property) is kept in ``AgentState.applied`` so it is still
reported faithfully.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from policies.catalog import get_catalog

from . import precedence

if TYPE_CHECKING:
    from policies.catalog import Catalog, SettingDef

__all__ = [
    "ASR_ACTIONS_PROPERTY",
    "ASR_IDS_PROPERTY",
    "GENERIC_ERROR",
    "INVALID_VALUE_ERROR",
    "MP_MAPPINGS",
    "NOT_FOUND_ERROR",
    "RESTART_REQUIRED",
    "RESTART_REQUIRED_MESSAGE",
    "TAMPER_PROTECTED",
    "TAMPER_PROTECTION_ERROR",
    "AgentState",
    "MpMapping",
    "SettingReport",
    "apply",
    "default_preferences",
    "desired_fingerprint",
    "effective_defaults",
    "effective_entries",
    "effective_preferences",
    "effective_value",
    "format_mp_preference",
    "hresult_hex",
    "mapping_for",
    "mp_preference",
    "restart",
    "set_tamper_protection",
]

Status = Literal["succeeded", "error", "pending"]

# --------------------------------------------------------------------------------------------------------------
# Error codes (signed 32-bit HRESULT-style ints, as Intune reports them)
# --------------------------------------------------------------------------------------------------------------

#: 0x87D1FDE8 - Intune's "Remediation failed": the client could not set the value (Tamper Protection).
TAMPER_PROTECTION_ERROR = -2016281112
#: 0x80004005 E_FAIL - "Unspecified error"; used for the simulated faults of ``fault_rate``.
GENERIC_ERROR = -2147467259
#: 0x8007000D ERROR_INVALID_DATA - "The data is invalid."
INVALID_VALUE_ERROR = -2147024883
#: 0x80070490 ERROR_NOT_FOUND - "Element not found." (setting id unknown to this client)
NOT_FOUND_ERROR = -2147023728

RESTART_REQUIRED_MESSAGE = "A restart is required to apply this setting"


def hresult_hex(code: int) -> str:
    """``-2016281112`` -> ``"0x87D1FDE8"`` (also accepts the unsigned form)."""
    return f"0x{code & 0xFFFFFFFF:08X}"


# --------------------------------------------------------------------------------------------------------------
# Mapping table: settings-catalog id -> (MpPreference property, transform)
# --------------------------------------------------------------------------------------------------------------

_P = "device_vendor_msft_policy_config_defender_"  # ./Device/Vendor/MSFT/Policy/Config/Defender/*
_C = "device_vendor_msft_defender_configuration_"  # ./Vendor/MSFT/Defender/Configuration/*

Transform = Literal["bool", "invert", "int", "maps", "threat", "list", "asr"]


@dataclass(frozen=True)
class MpMapping:
    """How one CSP setting lands in an MpPreference property.

    transform: ``bool`` 0/1 -> False/True; ``invert`` Allow* 1 -> Disable* False; ``int`` same number;
    ``maps`` AllowCloudProtection 0 -> MAPSReporting 0 (Disabled), 1 -> 2 (Advanced); ``threat`` "4=2" ->
    2 in the severity's *ThreatDefaultAction; ``list`` string list; ``asr`` "GUID=code" -> the
    AttackSurfaceReductionRules_Ids/_Actions parallel arrays.
    """

    property: str
    transform: Transform
    unverified: bool = False
    severity: int | None = None  # threat only: 1 Low, 2 Moderate, 4 High, 5 Severe


ASR_IDS_PROPERTY = "AttackSurfaceReductionRules_Ids"
ASR_ACTIONS_PROPERTY = "AttackSurfaceReductionRules_Actions"
_ASR_MAPPING = MpMapping(ASR_IDS_PROPERTY, "asr")
_ASR_CSP_NODE = "/Defender/AttackSurfaceReductionRules"

MP_MAPPINGS: dict[str, MpMapping] = {
    # Policy CSP Defender/* (reference section d)
    _P + "allowrealtimemonitoring": MpMapping("DisableRealtimeMonitoring", "invert"),
    _P + "allowbehaviormonitoring": MpMapping("DisableBehaviorMonitoring", "invert"),
    _P + "allowscriptscanning": MpMapping("DisableScriptScanning", "invert"),
    _P + "allowarchivescanning": MpMapping("DisableArchiveScanning", "invert"),
    _P + "allowemailscanning": MpMapping("DisableEmailScanning", "invert"),
    _P + "allowfullscanremovabledrivescanning": MpMapping("DisableRemovableDriveScanning", "invert"),
    _P + "allowfullscanonmappednetworkdrives": MpMapping(
        "DisableScanningMappedNetworkDrivesForFullScan", "invert"
    ),
    _P + "allowscanningnetworkfiles": MpMapping("DisableScanningNetworkFiles", "invert"),
    # unverified: DisableIOAVProtection is not in the Windows Server 2022 Set-MpPreference syntax list
    _P + "allowioavprotection": MpMapping("DisableIOAVProtection", "invert", unverified=True),
    # unverified property name; the setting itself is unsupported in the MDE channel (pending deprecation)
    _P + "allowintrusionpreventionsystem": MpMapping(
        "DisableIntrusionPreventionSystem", "invert", unverified=True
    ),
    _P + "allowuseruiaccess": MpMapping("UILockdown", "invert"),
    # unverified: 0 -> 0 (Disabled), 1 -> 2 (Advanced MAPS)
    _P + "allowcloudprotection": MpMapping("MAPSReporting", "maps", unverified=True),
    _P + "submitsamplesconsent": MpMapping("SubmitSamplesConsent", "int"),
    _P + "avgcpuloadfactor": MpMapping("ScanAvgCPULoadFactor", "int"),
    _P + "checkforsignaturesbeforerunningscan": MpMapping("CheckForSignaturesBeforeRunningScan", "bool"),
    _P + "cloudblocklevel": MpMapping("CloudBlockLevel", "int"),
    _P + "cloudextendedtimeout": MpMapping("CloudExtendedTimeout", "int"),
    _P + "daystoretaincleanedmalware": MpMapping("QuarantinePurgeItemsAfterDelay", "int"),
    _P + "disablecatchupfullscan": MpMapping("DisableCatchupFullScan", "bool"),
    _P + "disablecatchupquickscan": MpMapping("DisableCatchupQuickScan", "bool"),
    _P + "enablelowcpupriority": MpMapping("EnableLowCpuPriority", "bool"),
    _P + "enablenetworkprotection": MpMapping("EnableNetworkProtection", "int"),
    _P + "puaprotection": MpMapping("PUAProtection", "int"),
    _P + "realtimescandirection": MpMapping("RealTimeScanDirection", "int"),
    _P + "scanparameter": MpMapping("ScanParameters", "int"),
    _P + "schedulescanday": MpMapping("ScanScheduleDay", "int"),
    _P + "schedulescantime": MpMapping("ScanScheduleTime", "int"),  # minutes after midnight
    _P + "schedulequickscantime": MpMapping("ScanScheduleQuickScanTime", "int"),  # minutes after midnight
    _P + "signatureupdateinterval": MpMapping("SignatureUpdateInterval", "int"),  # hours
    _P + "excludedpaths": MpMapping("ExclusionPath", "list"),
    _P + "excludedextensions": MpMapping("ExclusionExtension", "list"),
    _P + "excludedprocesses": MpMapping("ExclusionProcess", "list"),
    _P + "attacksurfacereductiononlyexclusions": MpMapping("AttackSurfaceReductionOnlyExclusions", "list"),
    _P + "enablecontrolledfolderaccess": MpMapping("EnableControlledFolderAccess", "int"),
    _P + "controlledfolderaccessallowedapplications": MpMapping(
        "ControlledFolderAccessAllowedApplications", "list"
    ),
    _P + "controlledfolderaccessprotectedfolders": MpMapping(
        "ControlledFolderAccessProtectedFolders", "list"
    ),
    _P + "threatseveritydefaultaction_lowseveritythreats": MpMapping(
        "LowThreatDefaultAction", "threat", severity=1
    ),
    _P + "threatseveritydefaultaction_moderateseveritythreats": MpMapping(
        "ModerateThreatDefaultAction", "threat", severity=2
    ),
    _P + "threatseveritydefaultaction_highseveritythreats": MpMapping(
        "HighThreatDefaultAction", "threat", severity=4
    ),
    _P + "threatseveritydefaultaction_severethreats": MpMapping(
        "SevereThreatDefaultAction", "threat", severity=5
    ),
    # unverified: not in the 2022 Set-MpPreference syntax (reference section d); needs a restart (section b)
    _P + "allowonaccessprotection": MpMapping("AllowOnAccessProtection", "bool", unverified=True),
    # Defender CSP ./Vendor/MSFT/Defender/Configuration/* (same names, reference section d)
    _C + "disabletlsparsing": MpMapping("DisableTlsParsing", "bool"),
    _C + "disablehttpparsing": MpMapping("DisableHttpParsing", "bool"),
    _C + "disablednsovertcpparsing": MpMapping("DisableDnsOverTcpParsing", "bool"),
    _C + "disablesshparsing": MpMapping("DisableSshParsing", "bool"),
    _C + "allownetworkprotectiondownlevel": MpMapping("AllowNetworkProtectionDownLevel", "bool"),
    _C + "allowdatagramprocessingonwinserver": MpMapping("AllowDatagramProcessingOnWinServer", "bool"),
    _C + "enablednssinkhole": MpMapping("EnableDnsSinkhole", "bool"),
    _C + "disableinboundconnectionfiltering": MpMapping("DisableInboundConnectionFiltering", "bool"),
    _C + "meteredconnectionupdates": MpMapping("MeteredConnectionUpdates", "bool"),
    _C + "randomizescheduletasktimes": MpMapping("RandomizeScheduleTaskTimes", "bool"),
    _C + "schedulerrandomizationtime": MpMapping("SchedulerRandomizationTime", "int"),
    _C + "enablefilehashcomputation": MpMapping("EnableFileHashComputation", "bool"),
    _C + "platformupdateschannel": MpMapping("PlatformUpdatesChannel", "int"),
    _C + "engineupdateschannel": MpMapping("EngineUpdatesChannel", "int"),
    _C + "securityintelligenceupdateschannel": MpMapping("SignaturesUpdatesChannel", "int"),
    # unverified: not in the 2022 Set-MpPreference syntax (reference section d); DisableLocalAdminMerge also
    # needs a restart (section b)
    _C + "disablelocaladminmerge": MpMapping("DisableLocalAdminMerge", "bool", unverified=True),
    _C + "disablesmtpparsing": MpMapping("DisableSmtpParsing", "bool", unverified=True),
    _C + "disablequicparsing": MpMapping("DisableQuicParsing", "bool", unverified=True),
    _C + "hideexclusionsfromlocaladmins": MpMapping("HideExclusionsFromLocalAdmins", "bool", unverified=True),
}

#: Tamper-protected features: setting id -> what the refusal message calls the feature.
TAMPER_PROTECTED: dict[str, str] = {
    _P + "allowrealtimemonitoring": "Real-time protection",
    _P + "allowbehaviormonitoring": "Behavior monitoring",
    _P + "allowcloudprotection": "Cloud-delivered protection",
    _P + "allowioavprotection": "Scanning of all downloaded files and attachments (IOAV protection)",
    _P + "allowonaccessprotection": "On-access protection",
}

#: Settings that take effect only after a device restart (reference section b, known issue).
RESTART_REQUIRED: frozenset[str] = frozenset({_P + "allowonaccessprotection", _C + "disablelocaladminmerge"})

# MpPreference properties whose "not configured" value is not a catalog default.
_EMPTY_DEFAULTS: dict[str, Any] = {
    "ExclusionPath": [],
    "ExclusionExtension": [],
    "ExclusionProcess": [],
    "AttackSurfaceReductionOnlyExclusions": [],
    "ControlledFolderAccessAllowedApplications": [],
    "ControlledFolderAccessProtectedFolders": [],
    ASR_IDS_PROPERTY: [],
    ASR_ACTIONS_PROPERTY: [],
    "LowThreatDefaultAction": 0,  # 0 = apply the security intelligence default
    "ModerateThreatDefaultAction": 0,
    "HighThreatDefaultAction": 0,
    "SevereThreatDefaultAction": 0,
}


# Used only if the catalog lacks a mapped setting or its default.
def _clone(value: Any) -> Any:
    """A deep copy of JSON-shaped data (dicts, lists, scalars): what ``copy.deepcopy`` does for it, without its
    memo and dispatch. The state is copied on every policy sync; with deepcopy that was the load generator's largest
    cost in bench_channel."""
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_clone(v) for v in value)
    return value


_FALLBACK_BY_TRANSFORM: dict[str, Any] = {"bool": False, "invert": False, "int": 0, "maps": 0}

# Get-MpPreference prints these as TimeSpan (hh:mm:ss); the state keeps minutes after midnight.
_TIMESPAN_PROPERTIES = frozenset({"ScanScheduleTime", "ScanScheduleQuickScanTime"})


# --------------------------------------------------------------------------------------------------------------
# Reports and state
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SettingReport:
    status: Status
    value: Any
    error_code: int | None
    message: str

    @property
    def error_code_hex(self) -> str | None:
        return None if self.error_code is None else hresult_hex(self.error_code)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "value": _clone(self.value),
            "error_code": self.error_code,
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SettingReport:
        return cls(
            status=data["status"],
            value=_clone(data.get("value")),
            error_code=data.get("error_code"),
            message=data.get("message", ""),
        )


@dataclass(frozen=True)
class AgentState:
    """Local Defender state of one device. Treat as immutable: the functions return new states.

    preferences: MpPreference property -> value (bool / int / list[str]).
    tamper_protection: Tamper Protection on the device (on by default, as on current Windows).
    pending_restart: setting id -> flat value that takes effect at the next :func:`restart`.
    applied: setting id -> last applied flat value, for settings without an MpPreference property.
    managed: sorted setting ids that the management channel configures (to revert them when dropped).
    last_applied_fingerprint: :func:`desired_fingerprint` of the last desired state applied.
    local: macOS / Linux only - values set on the device with ``mdatp config`` (managed key path -> JSON
        literal); devices.mdatp decides with the managed values what is effective.
    """

    preferences: dict[str, Any]
    tamper_protection: bool = True
    pending_restart: dict[str, Any] = field(default_factory=dict)
    applied: dict[str, Any] = field(default_factory=dict)
    managed: tuple[str, ...] = ()
    last_applied_fingerprint: str | None = None
    local: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def initial(cls, *, tamper_protection: bool = True, catalog: Catalog | None = None) -> AgentState:
        """A freshly onboarded device: Windows defaults, nothing managed."""
        return cls(preferences=default_preferences(catalog), tamper_protection=tamper_protection)

    def to_dict(self) -> dict[str, Any]:
        return {
            "preferences": _clone(self.preferences),
            "tamper_protection": self.tamper_protection,
            "pending_restart": _clone(self.pending_restart),
            "applied": _clone(self.applied),
            "managed": list(self.managed),
            "last_applied_fingerprint": self.last_applied_fingerprint,
            "local": _clone(self.local),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, catalog: Catalog | None = None) -> AgentState:
        """Inverse of :meth:`to_dict`. Missing keys (older rows, ``{}``) are filled with the defaults."""
        preferences = default_preferences(catalog)
        preferences.update(_clone(dict(data.get("preferences") or {})))
        return cls(
            preferences=preferences,
            tamper_protection=bool(data.get("tamper_protection", True)),
            pending_restart=_clone(dict(data.get("pending_restart") or {})),
            applied=_clone(dict(data.get("applied") or {})),
            managed=tuple(sorted(data.get("managed") or ())),
            last_applied_fingerprint=data.get("last_applied_fingerprint"),
            local=_clone(dict(data.get("local") or {})),
        )


def set_tamper_protection(state: AgentState, on: bool) -> AgentState:
    """Turn Tamper Protection on or off on the device (done locally / from the Defender portal, not by policy)."""
    return replace(state, tamper_protection=bool(on))


def desired_fingerprint(desired: Mapping[str, Any]) -> str:
    """Stable sha256 of a desired state (key order does not matter)."""
    blob = json.dumps(dict(desired), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------------------------------------------
# Catalog helpers
# --------------------------------------------------------------------------------------------------------------


def _catalog(catalog: Catalog | None) -> Catalog:
    return catalog if catalog is not None else get_catalog()


def _setting(cat: Catalog, setting_id: str) -> SettingDef | None:
    try:
        return cat.setting(setting_id)
    except KeyError:
        return None


def _is_asr_rule(sd: SettingDef | None) -> bool:
    return sd is not None and sd.type == "choice" and sd.csp_path.endswith(_ASR_CSP_NODE)


def mapping_for(setting_id: str, catalog: Catalog | None = None) -> MpMapping | None:
    """The MpPreference mapping of a setting id, or ``None`` when it has no MpPreference property."""
    if setting_id in MP_MAPPINGS:
        return MP_MAPPINGS[setting_id]
    if _is_asr_rule(_setting(_catalog(catalog), setting_id)):
        return _ASR_MAPPING
    return None


def default_preferences(catalog: Catalog | None = None) -> dict[str, Any]:
    """Windows defaults of every modelled MpPreference property, from the catalog defaults where known.

    Note: a few real Windows defaults differ from the CSP defaults the catalog lists (e.g. Get-MpPreference shows
    QuarantinePurgeItemsAfterDelay 90 where the CSP default of DaysToRetainCleanedMalware is 0); the simulator
    follows the catalog so that "revert to default" and "Not configured" agree with the console.
    """
    cat = _catalog(catalog)
    prefs: dict[str, Any] = _clone(_EMPTY_DEFAULTS)
    for setting_id, mapping in MP_MAPPINGS.items():
        if mapping.property in prefs:
            continue
        sd = _setting(cat, setting_id)
        value = _FALLBACK_BY_TRANSFORM.get(mapping.transform)
        if sd is not None and sd.default is not None:
            with contextlib.suppress(TypeError, ValueError):
                value = _forward(mapping, sd.default)
        prefs[mapping.property] = value
    return prefs


# --------------------------------------------------------------------------------------------------------------
# Transforms
# --------------------------------------------------------------------------------------------------------------


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("boolean is not a CSP integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise ValueError(f"not an integer: {value!r}")


def _as_bool01(value: Any) -> int:
    number = _as_int(value)
    if number not in (0, 1):
        raise ValueError(f"not 0/1: {value!r}")
    return number


def _string_list(value: Any) -> list[str]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise TypeError(f"not a list of strings: {value!r}")
    if not all(isinstance(item, str) for item in value):
        raise TypeError(f"not a list of strings: {value!r}")
    return list(dict.fromkeys(value))  # keep order, drop duplicates


def _split_pair(value: Any) -> tuple[str, int]:
    if not isinstance(value, str) or "=" not in value:
        raise ValueError(f"expected 'key=code': {value!r}")
    key, _, code = value.rpartition("=")
    return key, _as_int(code)


def _forward(mapping: MpMapping, value: Any) -> Any:
    """Flat CSP value -> MpPreference property value (ASR handled separately)."""
    kind = mapping.transform
    if kind == "bool":
        return _as_bool01(value) == 1
    if kind == "invert":
        return _as_bool01(value) == 0
    if kind == "int":
        return _as_int(value)
    if kind == "maps":
        return {0: 0, 1: 2}[_as_bool01(value)]
    if kind == "threat":
        severity, action = _split_pair(value)
        if _as_int(severity) != mapping.severity:
            raise ValueError(f"severity {severity} does not belong to {mapping.property}")
        return action
    if kind == "list":
        return _string_list(value)
    raise ValueError(f"no forward transform for {kind}")


def _coerce_to_catalog(sd: SettingDef | None, value: Any) -> Any:
    """Give a reverse-mapped choice value the exact form of the catalog option (1 vs "1", GUID case)."""
    if sd is None or value is None:
        return value
    for option in sd.options:
        if str(option.value).lower() == str(value).lower():
            return option.value
    return value


def _asr_guid(sd: SettingDef) -> str:
    if getattr(sd, "asr_guid", None):
        return str(sd.asr_guid)
    for option in sd.options:
        return _split_pair(option.value)[0]
    raise ValueError(f"{sd.id} has no ASR rule GUID")


def _asr_index(prefs: Mapping[str, Any], guid: str) -> int | None:
    for index, rule_id in enumerate(prefs.get(ASR_IDS_PROPERTY) or []):
        if str(rule_id).lower() == guid.lower():
            return index
    return None


def _reverse(mapping: MpMapping, prefs: Mapping[str, Any], sd: SettingDef | None) -> Any:
    """MpPreference property value -> flat CSP value of the setting (``None`` = not configured)."""
    kind = mapping.transform
    if kind == "asr":
        if sd is None:
            return None
        index = _asr_index(prefs, _asr_guid(sd))
        if index is None:
            return None
        ids, actions = prefs[ASR_IDS_PROPERTY], prefs[ASR_ACTIONS_PROPERTY]
        return _coerce_to_catalog(sd, f"{ids[index]}={actions[index]}")
    current = prefs.get(mapping.property)
    if current is None:
        return None
    if kind == "bool":
        result: Any = 1 if current else 0
    elif kind == "invert":
        result = 0 if current else 1
    elif kind == "maps":
        result = 0 if current == 0 else 1
    elif kind == "threat":
        result = None if current == 0 else f"{mapping.severity}={current}"
    elif kind == "list":
        return list(current)
    else:
        result = current
    return _coerce_to_catalog(sd, result)


def _validate(sd: SettingDef, value: Any) -> None:
    """Reject what a real client would reject: wrong type, not a catalog option, out of range."""
    if sd.type == "choice" and sd.options:
        if not any(str(option.value).lower() == str(value).lower() for option in sd.options):
            raise ValueError(f"{value!r} is not an option of {sd.id}")
    elif sd.type == "integer":
        number = _as_int(value)
        if (sd.min is not None and number < sd.min) or (sd.max is not None and number > sd.max):
            raise ValueError(f"{number} is outside {sd.min}-{sd.max}")
    elif sd.type == "string":
        if not isinstance(value, str):
            raise TypeError(f"not a string: {value!r}")
    elif sd.type == "string_collection":
        _string_list(value)
    elif sd.type == "choice_collection":
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise TypeError(f"not a list: {value!r}")
        if sd.options:
            allowed = {str(option.value).lower() for option in sd.options}
            if any(str(item).lower() not in allowed for item in value):
                raise ValueError(f"{value!r} has values that are not options of {sd.id}")


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, list):
        return "{" + ", ".join(_format_value(item) for item in value) + "}"
    return "" if value is None else str(value)


# --------------------------------------------------------------------------------------------------------------
# Apply / restart
# --------------------------------------------------------------------------------------------------------------


class _Work:
    """Mutable working copy of an AgentState during one apply/restart."""

    def __init__(self, state: AgentState) -> None:
        self.preferences = _clone(state.preferences)
        self.pending_restart = _clone(state.pending_restart)
        self.applied = _clone(state.applied)
        self.tamper_protection = state.tamper_protection
        self.local = _clone(state.local)

    def write(self, mapping: MpMapping, sd: SettingDef | None, value: Any) -> None:
        """Write an already validated flat value into the MpPreference properties."""
        if mapping.transform == "asr":
            assert sd is not None
            guid, action = _split_pair(value)
            ids = self.preferences.setdefault(ASR_IDS_PROPERTY, [])
            actions = self.preferences.setdefault(ASR_ACTIONS_PROPERTY, [])
            index = _asr_index(self.preferences, guid)
            if index is None:
                ids.append(guid)
                actions.append(action)
            else:
                ids[index] = guid
                actions[index] = action
        else:
            self.preferences[mapping.property] = _forward(mapping, value)

    def reset(self, mapping: MpMapping, sd: SettingDef | None, defaults: Mapping[str, Any]) -> None:
        """Put a property back to its default (an ASR rule is removed from the arrays)."""
        if mapping.transform == "asr":
            index = None if sd is None else _asr_index(self.preferences, _asr_guid(sd))
            if index is not None:
                del self.preferences[ASR_IDS_PROPERTY][index]
                del self.preferences[ASR_ACTIONS_PROPERTY][index]
        else:
            self.preferences[mapping.property] = _clone(defaults.get(mapping.property))

    def matches(self, mapping: MpMapping, sd: SettingDef | None, value: Any) -> bool:
        """Does the local state already have this flat value?"""
        if mapping.transform == "asr":
            return str(_reverse(mapping, self.preferences, sd)).lower() == str(value).lower()
        return self.preferences.get(mapping.property) == _forward(mapping, value)

    def state(self, managed: set[str], fingerprint: str | None) -> AgentState:
        return AgentState(
            preferences=self.preferences,
            tamper_protection=self.tamper_protection,
            pending_restart=self.pending_restart,
            applied=self.applied,
            managed=tuple(sorted(managed)),
            last_applied_fingerprint=fingerprint,
            local=self.local,
        )


def _label(sd: SettingDef | None, setting_id: str) -> str:
    return sd.csp_path if sd is not None else setting_id


def effective_value(state: AgentState, setting_id: str, *, catalog: Catalog | None = None) -> Any:
    """The value a setting currently has on the device, in flat-value form (``None`` = not configured)."""
    cat = _catalog(catalog)
    mapping = mapping_for(setting_id, cat)
    if mapping is None:
        return _clone(state.applied.get(setting_id))
    return _reverse(mapping, state.preferences, _setting(cat, setting_id))


def _is_on(mapping: MpMapping, prefs: Mapping[str, Any], sd: SettingDef | None) -> bool:
    current = _reverse(mapping, prefs, sd)
    try:
        return current is not None and _as_int(current) != 0
    except (TypeError, ValueError):
        return False


def _apply_one(
    work: _Work,
    setting_id: str,
    value: Any,
    cat: Catalog,
    fault_rate: float,
    rng: random.Random | None,
) -> SettingReport:
    sd = _setting(cat, setting_id)
    mapping = mapping_for(setting_id, cat)
    if sd is None and mapping is None:
        return SettingReport(
            "error",
            None,
            NOT_FOUND_ERROR,
            f"The setting {setting_id} is not known to the Defender client ({hresult_hex(NOT_FOUND_ERROR)}).",
        )

    def current() -> Any:
        if mapping is None:
            return _clone(work.applied.get(setting_id))
        return _reverse(mapping, work.preferences, sd)

    # 1. parse / validate
    try:
        if sd is not None:
            _validate(sd, value)
        if mapping is not None and mapping.transform == "asr":
            _split_pair(value)
        elif mapping is not None:
            _forward(mapping, value)
    except (TypeError, ValueError, KeyError) as exc:
        return SettingReport(
            "error",
            current(),
            INVALID_VALUE_ERROR,
            f"The value {value!r} is not valid for {_label(sd, setting_id)}: {exc} "
            f"({hresult_hex(INVALID_VALUE_ERROR)}).",
        )

    # 2. Tamper Protection
    if setting_id in TAMPER_PROTECTED:
        assert mapping is not None
        turns_off = _as_int(value) == 0
        if work.tamper_protection and turns_off and _is_on(mapping, work.preferences, sd):
            work.pending_restart.pop(setting_id, None)  # the refused write supersedes anything queued
            feature = TAMPER_PROTECTED[setting_id]
            return SettingReport(
                "error",
                current(),
                TAMPER_PROTECTION_ERROR,
                f"Tamper Protection blocked this change: {feature} can't be turned off while Tamper Protection "
                f"is on. Turn off Tamper Protection on the device first, then sync again "
                f"({hresult_hex(TAMPER_PROTECTION_ERROR)}).",
            )

    # 3. simulated fault (demo only)
    if fault_rate > 0 and setting_id not in TAMPER_PROTECTED:
        assert rng is not None
        if rng.random() < fault_rate:
            return SettingReport(
                "error",
                current(),
                GENERIC_ERROR,
                f"Unspecified error ({hresult_hex(GENERIC_ERROR)}) while applying {_label(sd, setting_id)} "
                f"(simulated fault).",
            )

    # 4. restart-bound settings
    if setting_id in RESTART_REQUIRED:
        assert mapping is not None
        if work.matches(mapping, sd, value):
            work.pending_restart.pop(setting_id, None)
            return SettingReport("succeeded", _clone(value), None, f"Applied: {mapping.property}")
        work.pending_restart[setting_id] = _clone(value)
        return SettingReport("pending", _clone(value), None, RESTART_REQUIRED_MESSAGE)

    # 5. apply
    if mapping is None:
        work.applied[setting_id] = _clone(value)
        return SettingReport("succeeded", _clone(value), None, f"Applied: {_label(sd, setting_id)}")
    work.write(mapping, sd, value)
    if mapping.transform == "asr":
        message = f"Applied: {ASR_IDS_PROPERTY} / {ASR_ACTIONS_PROPERTY} {value}"
    else:
        message = f"Applied: {mapping.property} = {_format_value(work.preferences[mapping.property])}"
    return SettingReport("succeeded", _clone(value), None, message)


def _revert_one(work: _Work, setting_id: str, cat: Catalog, defaults: Mapping[str, Any]) -> None:
    """A managed setting left the desired state: back to the local default, silently."""
    sd = _setting(cat, setting_id)
    mapping = mapping_for(setting_id, cat)
    if mapping is None:
        work.applied.pop(setting_id, None)
        work.pending_restart.pop(setting_id, None)
        return
    if setting_id in RESTART_REQUIRED:
        default_value = sd.default if sd is not None else None
        if default_value is None or work.matches(mapping, sd, default_value):
            work.pending_restart.pop(setting_id, None)
        else:
            work.pending_restart[setting_id] = _clone(default_value)
        return
    work.reset(mapping, sd, defaults)


def apply(
    state: AgentState,
    desired: Mapping[str, object],
    *,
    fault_rate: float = 0.0,
    rng: random.Random | None = None,
    catalog: Catalog | None = None,
) -> tuple[AgentState, dict[str, SettingReport]]:
    """One policy sync: apply the full desired state (flat values), return the new state and one report per key.

    See the module docstring for the rules. ``state`` is not modified.
    """
    if not 0.0 <= fault_rate <= 1.0:
        raise ValueError("fault_rate must be between 0 and 1")
    if fault_rate > 0 and rng is None:
        rng = random.Random()
    cat = _catalog(catalog)
    work = _Work(state)
    reports: dict[str, SettingReport] = {}
    previously_managed = set(state.managed)
    managed: set[str] = set()
    for setting_id in sorted(desired):
        report = _apply_one(work, setting_id, desired[setting_id], cat, fault_rate, rng)
        reports[setting_id] = report
        if report.status != "error" or setting_id in previously_managed:
            managed.add(setting_id)
    dropped = previously_managed - set(desired)
    if dropped:
        defaults = default_preferences(cat)
        for setting_id in sorted(dropped):
            _revert_one(work, setting_id, cat, defaults)
    return work.state(managed, desired_fingerprint(desired)), reports


def restart(state: AgentState, *, catalog: Catalog | None = None) -> AgentState:
    """Restart the device: every value in ``pending_restart`` takes effect.

    Tamper Protection is not re-checked here: the values were accepted when they were written (a write that
    Tamper Protection refuses also drops any value queued for that setting).
    """
    cat = _catalog(catalog)
    work = _Work(state)
    for setting_id, value in sorted(state.pending_restart.items()):
        mapping = mapping_for(setting_id, cat)
        if mapping is None:
            work.applied[setting_id] = _clone(value)
        else:
            work.write(mapping, _setting(cat, setting_id), value)
    work.pending_restart = {}
    return work.state(set(state.managed), state.last_applied_fingerprint)


# --------------------------------------------------------------------------------------------------------------
# Get-MpPreference
# --------------------------------------------------------------------------------------------------------------


def mp_preference(
    state: AgentState, effective: list[precedence.EffectiveEntry] | None = None
) -> list[tuple[str, object]]:
    """``(property, value)`` pairs sorted by name (case-insensitive), like ``Get-MpPreference`` lists them.

    ``effective``: the device's effective entries (:func:`effective_entries`) when other management sources
    exist: the values shown are then the effective ones, from the same precedence function as the report.
    """
    prefs = state.preferences if effective is None else effective_preferences(state, effective)
    return [(name, _clone(prefs[name])) for name in sorted(prefs, key=str.lower)]


def _format_timespan(minutes: Any) -> str:
    if isinstance(minutes, bool) or not isinstance(minutes, int):
        return _format_value(minutes)
    hours, mins = divmod(minutes, 60)
    return f"{hours:02d}:{mins:02d}:00"


def format_mp_preference(
    state: AgentState,
    *,
    enumeration_limit: int = 4,
    effective: list[precedence.EffectiveEntry] | None = None,
) -> str:
    """The ``Name : Value`` block PowerShell prints for ``Get-MpPreference`` (Format-List).

    Names are padded to the longest name; booleans print True/False; arrays print ``{a, b}`` and, like
    PowerShell's ``$FormatEnumerationLimit`` (default 4), are cut to ``enumeration_limit`` items followed by
    ``...`` (use a negative limit for no cut); an empty array (PowerShell ``$null``) prints nothing;
    ScanScheduleTime / ScanScheduleQuickScanTime print as TimeSpan ``hh:mm:ss``.
    """
    rows = mp_preference(state, effective)
    if not rows:
        return ""
    width = max(len(name) for name, _ in rows)
    lines = []
    for name, value in rows:
        if name in _TIMESPAN_PROPERTIES:
            text = _format_timespan(value)
        elif isinstance(value, list):
            if not value:
                text = ""
            elif 0 <= enumeration_limit < len(value):
                text = _format_value(value[:enumeration_limit])[:-1] + "...}"
            else:
                text = _format_value(value)
        else:
            text = _format_value(value)
        lines.append(f"{name.ljust(width)} : {text}".rstrip())
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------------
# Effective settings (other management sources): the hook into devices.precedence
# --------------------------------------------------------------------------------------------------------------


def is_effective_setting(setting_id: str, catalog: Catalog | None = None) -> bool:
    """Settings Defender's Effective settings view covers: AV settings with an MpPreference property, ASR rules,
    exclusions."""
    return mapping_for(setting_id, catalog) is not None


def effective_defaults(catalog: Catalog | None = None) -> dict[str, Any]:
    """Every setting Defender's Effective settings view lists even when nothing configures it, with its Windows
    default (flat value, ``None`` where the catalog gives none): each Microsoft Defender Antivirus setting with an
    MpPreference property and each ASR rule. Exclusion lists are left out: they are shown entry by entry, and a
    list nothing configures has no entry. A row "Configured by Default" is what this gives for a setting the
    device reports no entry for (no source configures it, so :func:`devices.precedence.resolve` gives none)."""
    cat = _catalog(catalog)
    out: dict[str, Any] = {}
    for setting_id in MP_MAPPINGS:
        if setting_id in precedence.EXCLUSION_SETTINGS:
            continue
        sd = _setting(cat, setting_id)
        out[setting_id] = _clone(sd.default) if sd is not None else None
    for sd in cat.all_settings():
        if _is_asr_rule(sd):
            out[sd.id] = _clone(sd.default)
    return out


def effective_entries(
    state: AgentState,
    others: list[precedence.Attempt] | tuple[precedence.Attempt, ...] = (),
    *,
    local_overrides: frozenset[str] | tuple[str, ...] = (),
    ours: str = "mde",
    catalog: Catalog | None = None,
) -> list[precedence.EffectiveEntry]:
    """Every effective entry of the device: what this console's channel applied (``ours``: "mde" for security
    settings management, "mdm" for Intune) against the ``others`` (GPO, ConfigMgr, local admin), by
    :func:`devices.precedence.resolve`."""
    cat = _catalog(catalog)
    attempts = [
        precedence.Attempt(setting_id, ours, effective_value(state, setting_id, catalog=cat))
        for setting_id in state.managed
        if is_effective_setting(setting_id, cat)
    ]
    attempts.extend(a for a in others if is_effective_setting(a.setting_id, cat))
    return precedence.resolve(
        attempts,
        tamper_protection=state.tamper_protection,
        tamper_protected=TAMPER_PROTECTED,
        local_overrides=local_overrides,
    )


def effective_preferences(
    state: AgentState, effective: list[precedence.EffectiveEntry], *, catalog: Catalog | None = None
) -> dict[str, Any]:
    """The MpPreference properties with the effective values written over the channel's local state."""
    cat = _catalog(catalog)
    work = _Work(state)
    lists: dict[str, list[str]] = {}
    for item in effective:
        mapping = mapping_for(item.setting_id, cat)
        if mapping is None:
            continue
        if item.setting_id in precedence.EXCLUSION_SETTINGS:
            entries = lists.setdefault(item.setting_id, [])
            if item.value is not None:
                entries.append(str(item.value))
            continue
        try:
            work.write(mapping, _setting(cat, item.setting_id), item.value)
        except (TypeError, ValueError, KeyError):
            continue  # a value the client can't parse is not written (apply refuses it the same way)
    for setting_id, entries in lists.items():
        work.write(MP_MAPPINGS[setting_id], None, entries)
    return work.preferences
