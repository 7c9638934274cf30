"""Which cluster an alert is about, and the one source that reads each cluster.

An alert names its cluster with the ``cluster`` label; ``kubernetes.clusters`` maps those
names to a kubeconfig context, the in-cluster account, or a snapshot directory. Sources
are built on first use and kept: a live source holds a connection pool and the cluster's
rate limit, a snapshot source its index, and both must be shared by every triage that
reads that cluster.
"""

from __future__ import annotations

import contextlib

from oncallm.config import ClusterSettings, KubernetesSettings
from oncallm.errors import SnapshotError
from oncallm.sources.base import ClusterSource, SourceError
from oncallm.sources.kubernetes import KubernetesSource
from oncallm.sources.snapshot import SnapshotSource

__all__ = ["ClusterSources"]

# The key of the single cluster found by standard discovery when none is configured.
_DISCOVERED = ""


class ClusterSources:
    """Cluster sources by name, chosen by an alert's ``cluster`` label."""

    def __init__(self, settings: KubernetesSettings) -> None:
        self._settings = settings
        self._sources: dict[str, ClusterSource] = {}

    def cluster_for(self, cluster_label: str | None) -> str | None:
        """The configured cluster an alert with this label is triaged against (None: the
        one cluster of standard discovery). Raises SourceError when none fits."""
        clusters = self._settings.clusters
        if not clusters:
            return None
        if cluster_label and cluster_label in clusters:
            return cluster_label
        if self._settings.default_cluster is not None:
            return self._settings.default_cluster
        if len(clusters) == 1:
            return next(iter(clusters))
        known = ", ".join(sorted(clusters))
        if cluster_label:
            raise SourceError(
                f"the alert's cluster {cluster_label!r} is not configured (clusters: {known}) "
                "and kubernetes.default_cluster is unset"
            )
        raise SourceError(
            f"the alert has no cluster label and kubernetes.default_cluster is unset "
            f"(clusters: {known})"
        )

    def source_for(self, cluster_label: str | None) -> ClusterSource:
        """The source of the alert's cluster, built on first use and then reused.

        Raises SourceError when the cluster cannot be chosen or its source cannot be built
        (no kubeconfig, unknown context, missing snapshot); nothing is cached then, so a
        later alert tries again.
        """
        name = self.cluster_for(cluster_label)
        key = name if name is not None else _DISCOVERED
        source = self._sources.get(key)
        if source is None:
            source = self._build(name)
            self._sources[key] = source
        return source

    def _build(self, name: str | None) -> ClusterSource:
        if name is None:
            return KubernetesSource(ClusterSettings())
        settings = self._settings.clusters[name]
        if settings.snapshot is None:
            try:
                return KubernetesSource(settings, name=name)
            except SourceError as exc:
                raise SourceError(f"cluster {name}: {exc.detail}") from None
        try:
            # Indexed once here; every later triage of this cluster reuses the index.
            return SnapshotSource(settings.snapshot)
        except SnapshotError as exc:
            raise SourceError(f"cluster {name}: {exc.detail}") from None

    async def aclose(self) -> None:
        """Close every source built so far (their connection pools)."""
        sources, self._sources = list(self._sources.values()), {}
        for source in sources:
            # One source failing to close must not leave the others open.
            with contextlib.suppress(Exception):
                await source.close()
