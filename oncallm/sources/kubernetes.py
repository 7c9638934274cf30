"""The live cluster: a :class:`~oncallm.sources.base.ClusterSource` over the Kubernetes API.

Reads go through lightkube's ``AsyncClient``, which also owns what is hard to get right
about reaching a cluster: kubeconfig files and contexts, the in-cluster service account,
client certificates, exec credential plugins. Objects are read as lightkube *generic*
resources, so they come back as the API's own JSON (every field, CRDs included) and are
handed out as ``kubectl get -o json`` prints them: ``apiVersion`` and ``kind`` on every
list item, no ``managedFields``, Secret values emptied.

Every HTTP request — a page of a list, a log read, an auth retry — passes one transport
that bounds the requests in flight per cluster, spaces them to the configured QPS, and
puts a deadline on each. Failures become :class:`SourceError` with the API's own words
("403 Forbidden: pods is forbidden: User ..."); a missing object is ``None``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx2
import msgspec
import yaml
from aiolimiter import AsyncLimiter
from lightkube import (
    ALL_NS,
    ApiError,
    AsyncClient,
    ConfigError,
    KubeConfig,
    SingleConfig,
    operators,
)
from lightkube.config.client_adapter import AsyncClient as adapter_client
from lightkube.config.client_adapter import ConnectionParams, verify_cluster
from lightkube.core.resource import ApiInfo, ResourceDef
from lightkube.generic_resource import GenericGlobalResource, GenericNamespacedResource

from oncallm.config import ClusterSettings
from oncallm.errors import BadRequest
from oncallm.sources.base import KubeObject, ObjectRef, SourceError, redact_secret
from oncallm.sources.kinds import KindInfo, kind_info
from oncallm.sources.selectors import parse_field_selector, parse_label_selector

__all__ = ["KubernetesSource", "load_kubeconfig"]

LIST_PAGE_SIZE = 500  # kubectl's default chunk size: big lists never arrive as one body
LOG_SHRINK_ATTEMPTS = 3
_NO_LOG_MESSAGES = ("not found", "is waiting to start", "is not valid for pod")

Resource = type[GenericNamespacedResource] | type[GenericGlobalResource]


@cache
def resource_for(kind: str) -> Resource:
    """A lightkube generic resource for a kind of ``kinds.py``, built once.

    Built outside lightkube's registry on purpose: the registry already knows the typed
    models of the core kinds and would hand those back, and their ``to_dict`` drops the
    fields their schema does not know.
    """
    info = kind_info(kind)
    base: type = GenericNamespacedResource if info.namespaced else GenericGlobalResource
    api = ApiInfo(
        resource=ResourceDef(info.group, info.version, info.kind),
        plural=info.plural,
        verbs=["get", "list", "global_list"],
    )
    return cast(Resource, type(info.kind, (base,), {"_api_info": api}))


# --- reaching the cluster -------------------------------------------------------------


def load_kubeconfig(settings: ClusterSettings) -> SingleConfig:
    """The kubeconfig context (or in-cluster account) ``settings`` point at.

    Raises :class:`SourceError` naming what is missing: no kubeconfig, no such context,
    a context without a user.
    """
    where = str(settings.kubeconfig) if settings.kubeconfig else "the default kubeconfig"
    try:
        if settings.in_cluster:
            config = KubeConfig.from_service_account()
        elif settings.kubeconfig is not None:
            config = KubeConfig.from_file(settings.kubeconfig)
        else:
            # lightkube's discovery: the pod's service account when there is one, else
            # $KUBECONFIG, else ~/.kube/config — the order kubectl users expect.
            config = KubeConfig.from_env()
    except ConfigError as exc:
        if settings.in_cluster:
            raise SourceError(f"not running in a cluster (in_cluster is set): {exc}") from None
        raise SourceError(
            f"no Kubernetes configuration found: {exc}; set kubernetes.clusters.<name>."
            "kubeconfig, $KUBECONFIG, or run OncallM inside the cluster"
        ) from None
    except KeyError as exc:
        # A service account token is mounted but the API server's address is not set.
        raise SourceError(f"in-cluster configuration incomplete: {exc} is not set") from None
    except (OSError, yaml.YAMLError, msgspec.ValidationError, TypeError) as exc:
        raise SourceError(f"cannot read kubeconfig {where}: {exc}") from None
    if settings.context is not None and settings.context not in config.contexts:
        known = ", ".join(sorted(config.contexts)) or "none"
        raise SourceError(
            f"kubeconfig {where} has no context {settings.context!r} (contexts: {known})"
        )
    try:
        single = config.get(settings.context)
    except ConfigError as exc:
        raise SourceError(f"kubeconfig {where}: {exc}") from None
    except KeyError as exc:
        raise SourceError(
            f"kubeconfig {where}: context {config.current_context or settings.context!r} "
            f"names {exc}, which the kubeconfig does not define"
        ) from None
    if single is None:
        raise SourceError(f"kubeconfig {where} has no current context; pass a context")
    if single.user is None:
        raise SourceError(
            f"kubeconfig {where}: context {single.context_name!r} has no user to authenticate as"
        )
    return single


class _ReleasingStream(httpx2.AsyncByteStream):
    """A response body that frees its request's slot once read or closed."""

    def __init__(self, inner: httpx2.AsyncByteStream, release: Callable[[], None]) -> None:
        self._inner = inner
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()


class PacedTransport(httpx2.AsyncBaseTransport):
    """Bounded concurrency, a QPS limit and a deadline for every request to one cluster."""

    def __init__(
        self,
        inner: httpx2.AsyncBaseTransport,
        *,
        qps: float,
        burst: int,
        concurrency: int,
        timeout: float,
    ) -> None:
        self._inner = inner
        self._slots = asyncio.Semaphore(concurrency)
        # A leaky bucket: up to `burst` requests start at once (a triage's fan-out), after
        # that one every 1/qps seconds — client-go's QPS/Burst model.
        self._rate = AsyncLimiter(burst, burst / qps)
        self._timeout = timeout
        self._closed = False

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        await self._slots.acquire()
        try:
            await self._rate.acquire()
            # httpx's own timeouts bound each phase; this bounds the whole exchange up to
            # the response headers, however slowly a server trickles them.
            async with asyncio.timeout(self._timeout):
                response = await self._inner.handle_async_request(request)
        except TimeoutError:
            self._slots.release()
            raise httpx2.ReadTimeout(
                f"no answer within {self._timeout:g}s", request=request
            ) from None
        except BaseException:
            self._slots.release()
            raise
        stream = cast(httpx2.AsyncByteStream, response.stream)
        return httpx2.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_ReleasingStream(stream, self._slots.release),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._inner.aclose()


# --- errors ---------------------------------------------------------------------------


def _status_line(code: int) -> str:
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return str(code)


def _api_code(exc: ApiError) -> int:
    return int(exc.status.code or exc.response.status_code)


# --- the source -----------------------------------------------------------------------


class KubernetesSource:
    """:class:`~oncallm.sources.base.ClusterSource` reading a live API server."""

    def __init__(self, settings: ClusterSettings, *, name: str | None = None) -> None:
        config = load_kubeconfig(settings)
        self._name = name or config.context_name
        self._server = config.cluster.server
        self._timeout = settings.timeout_seconds
        timeout = httpx2.Timeout(settings.timeout_seconds)
        assert config.user is not None  # load_kubeconfig refuses a context without a user
        try:
            tls = verify_cluster(config.cluster, config.user, config.abs_file)
        except (OSError, ValueError, ConfigError) as exc:
            raise SourceError(f"cannot load the cluster's TLS certificates: {exc}") from None
        self._transport = PacedTransport(
            httpx2.AsyncHTTPTransport(verify=tls),
            qps=settings.qps,
            burst=settings.burst,
            concurrency=settings.concurrency,
            timeout=settings.timeout_seconds,
        )
        self._client = AsyncClient(config, timeout=timeout, transport=self._transport)
        # lightkube's log() cannot ask for the previous instance or a byte limit, so logs
        # go through a plain client that lightkube builds the same way (address, auth,
        # TLS) on the same transport — one connection pool, one set of limits.
        # (lightkube annotates ConnectionParams.transport as sync; it is handed to an
        # httpx AsyncClient, which needs the async transport this is.)
        params = ConnectionParams(timeout=timeout, transport=cast(Any, self._transport))
        self._http = adapter_client(config, params)

    @property
    def cluster(self) -> str | None:
        return self._name

    async def now(self) -> datetime:
        return datetime.now(UTC)

    # --- objects -----------------------------------------------------------------------

    async def get(self, kind: str, name: str, namespace: str | None = None) -> KubeObject | None:
        info = self._info(kind)
        what = f"get {info.plural} {namespace + '/' if namespace else ''}{name}"
        resource = resource_for(kind)
        with self._failures(what):
            try:
                if info.namespaced:
                    if not namespace:
                        raise SourceError(f"{what}: {kind} is namespaced, name its namespace")
                    found: Mapping[str, Any] = await self._client.get(
                        cast(type[GenericNamespacedResource], resource), name, namespace=namespace
                    )
                else:
                    found = await self._client.get(
                        cast(type[GenericGlobalResource], resource), name
                    )
            except ApiError as exc:
                if _api_code(exc) == 404:
                    return None
                raise
        return _as_kubectl_prints(info, found)

    async def list_objects(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[KubeObject]:
        info = self._info(kind)
        where = f" in {namespace}" if namespace and info.namespaced else ""
        what = f"list {info.plural}{where}"
        try:
            labels = _label_operators(label_selector)
            fields = _field_operators(field_selector)
        except BadRequest as exc:
            raise SourceError(f"{what}: {exc.detail}") from None
        resource = resource_for(kind)
        with self._failures(what):
            if info.namespaced:
                listing: Any = self._client.list(
                    cast(type[GenericNamespacedResource], resource),
                    namespace=namespace or ALL_NS,
                    chunk_size=LIST_PAGE_SIZE,
                    labels=labels,
                    fields=fields,
                )
            else:
                listing = self._client.list(
                    cast(type[GenericGlobalResource], resource),
                    chunk_size=LIST_PAGE_SIZE,
                    labels=labels,
                    fields=fields,
                )
            return [_as_kubectl_prints(info, item) async for item in listing]

    async def events_for(self, ref: ObjectRef) -> list[KubeObject]:
        # The API server filters on the involved object, so only that object's events
        # travel; cluster-scoped objects (Nodes) have theirs in any namespace.
        selector = f"involvedObject.kind={ref.kind},involvedObject.name={ref.name}"
        if ref.namespace:
            selector += f",involvedObject.namespace={ref.namespace}"
        return await self.list_objects("Event", ref.namespace, field_selector=selector)

    # --- logs --------------------------------------------------------------------------

    async def logs(
        self,
        namespace: str,
        pod: str,
        container: str,
        *,
        previous: bool = False,
        tail_lines: int = 200,
        limit_bytes: int = 256 * 1024,
    ) -> str | None:
        tail = max(tail_lines, 0)
        data = await self._read_log(namespace, pod, container, previous, tail, limit_bytes)
        for _ in range(LOG_SHRINK_ATTEMPTS):
            if data is None or len(data) < limit_bytes or tail <= 1:
                break
            # The kubelet starts at the tail and stops after limitBytes, so an overlong
            # tail loses its newest lines — the ones with the crash. Ask for as many lines
            # as did fit, until the end fits too.
            tail = max(1, min(tail - 1, data.count(b"\n")))
            data = await self._read_log(namespace, pod, container, previous, tail, limit_bytes)
        if data is None:
            return None
        return data.decode("utf-8", errors="replace")

    async def _read_log(
        self, namespace: str, pod: str, container: str, previous: bool, tail: int, limit: int
    ) -> bytes | None:
        path = f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(pod)}/log"
        params = {"container": container, "tailLines": str(tail), "limitBytes": str(limit)}
        if previous:
            params["previous"] = "true"
        what = f"read {'previous ' if previous else ''}log of {namespace}/{pod}/{container}"
        with self._failures(what):
            async with self._http.stream("GET", path, params=params) as response:
                if response.is_error:
                    await response.aread()
                    if _is_missing_log(response):
                        return None
                    response.raise_for_status()
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) >= limit:
                        break  # a server ignoring limitBytes cannot flood the worker
                return bytes(body[:limit])

    async def close(self) -> None:
        await self._client.close()
        await self._http.aclose()

    # --- helpers -----------------------------------------------------------------------

    def _info(self, kind: str) -> KindInfo:
        try:
            return kind_info(kind)
        except KeyError as exc:
            raise SourceError(str(exc.args[0])) from None

    @contextmanager
    def _failures(self, what: str) -> Iterator[None]:
        """Every way a read can fail, as one SourceError in the API's own words."""
        try:
            yield
        except ApiError as exc:
            message = exc.status.message or exc.response.reason_phrase
            raise SourceError(f"{_status_line(_api_code(exc))}: {message}") from None
        except httpx2.HTTPStatusError as exc:
            body = _status_message(exc.response) or exc.response.text[:200].strip()
            raise SourceError(f"{_status_line(exc.response.status_code)}: {body}") from None
        except httpx2.TimeoutException:
            raise SourceError(
                f"cluster {self._name}: timed out after {self._timeout:g}s: {what}"
            ) from None
        except httpx2.TransportError as exc:
            detail = str(exc) or type(exc).__name__
            raise SourceError(
                f"cluster {self._name}: cannot reach the API server {self._server}: {detail}"
            ) from None
        except ConfigError as exc:  # an exec credential plugin or token file failed
            raise SourceError(f"cluster {self._name}: cannot authenticate: {exc}") from None
        except (msgspec.DecodeError, json.JSONDecodeError) as exc:
            raise SourceError(f"cluster {self._name}: unreadable answer to {what}: {exc}") from None


def _status_message(response: httpx2.Response) -> str | None:
    """The ``message`` of a ``Status`` body, whatever content type it came with."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if isinstance(body, dict) and body.get("kind") == "Status":
        return str(body.get("message") or "") or None
    return None


def _is_missing_log(response: httpx2.Response) -> bool:
    """404, or the 400 the kubelet gives when there is no such log (no previous instance,
    a container still waiting to start): "no log", not a failure."""
    if response.status_code == 404:
        return True
    message = _status_message(response) or ""
    return response.status_code == 400 and any(m in message for m in _NO_LOG_MESSAGES)


def _as_kubectl_prints(info: KindInfo, obj: Mapping[str, Any]) -> KubeObject:
    """An API object as ``kubectl get -o json`` prints it."""
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    meta = body.get("metadata")
    if isinstance(meta, Mapping) and "managedFields" in meta:
        body["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    # List responses leave apiVersion and kind off their items.
    printed = {
        "apiVersion": obj.get("apiVersion") or info.api_version,
        "kind": obj.get("kind") or info.kind,
        **body,
    }
    return redact_secret(printed)


def _label_operators(selector: str | None) -> Any:
    """A label selector string as lightkube's selector pairs (validated on the way).

    Pairs, not a dict, so a key may repeat (``app!=a,app!=b``): lightkube's selector
    builder takes either, though ``AsyncClient.list`` is annotated with dict only.
    """
    pairs: list[tuple[str, Any]] = []
    for req in parse_label_selector(selector):
        values = sorted(req.values)
        if req.operator == "=":
            pairs.append((req.key, operators.equal(values[0])))
        elif req.operator == "!=":
            pairs.append((req.key, operators.not_equal(values[0])))
        elif req.operator == "in":
            pairs.append((req.key, operators.in_(values)))
        elif req.operator == "notin":
            pairs.append((req.key, operators.not_in(values)))
        elif req.operator == "exists":
            pairs.append((req.key, operators.exists()))
        else:
            pairs.append((req.key, operators.not_exists()))
    return pairs or None


def _field_operators(selector: str | None) -> Any:
    pairs: list[tuple[str, Any]] = [
        (
            ".".join(req.path),
            operators.equal(req.value) if req.equal else operators.not_equal(req.value),
        )
        for req in parse_field_selector(selector)
    ]
    return pairs or None
