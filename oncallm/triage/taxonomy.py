"""The root-cause taxonomy of DESIGN.md §4.3 — the only categories a triage may name."""

from __future__ import annotations

from enum import StrEnum


class Category(StrEnum):
    OOMKilled = "OOMKilled"
    CrashLoop = "CrashLoop"
    ConfigError = "ConfigError"
    ImagePull = "ImagePull"
    Unschedulable = "Unschedulable"
    ProbeFailure = "ProbeFailure"
    NodeFailure = "NodeFailure"
    VolumeFailure = "VolumeFailure"
    ServiceNoEndpoints = "ServiceNoEndpoints"
    RolloutStuck = "RolloutStuck"
    QuotaExceeded = "QuotaExceeded"
    JobFailed = "JobFailed"
    ScalingLimit = "ScalingLimit"
    CPUThrottling = "CPUThrottling"
    NetworkBlocked = "NetworkBlocked"
    PermissionDenied = "PermissionDenied"
    CertificateError = "CertificateError"
    DependencyFailure = "DependencyFailure"
    Unknown = "Unknown"


# Categories that describe where the pain shows rather than why: they rank as the root
# cause only when nothing deeper explains them.
SYMPTOMS = frozenset(
    {
        Category.ServiceNoEndpoints,
        Category.RolloutStuck,
        Category.DependencyFailure,
        Category.ProbeFailure,
    }
)
