"""A client for the kubelet PodResources v1 API (gRPC over the kubelet's unix socket).

`PodResourcesClient(path).list()` returns the `ListPodResourcesResponse` message (every pod on the
node with its containers' devices and DRA claims); `.get(pod, namespace)` one pod. Every failure
becomes a `KubeletError` whose `reason` is one short word the health metric carries:

    missing        no file at the socket path (kubelet not there, or the hostPath not mounted)
    not_socket     the path exists but is not a unix socket
    refused        nothing accepts on the socket (kubelet restarting)
    timeout        the kubelet did not answer within the deadline
    garbage        the answer does not decode as PodResources v1
    unimplemented  the kubelet lacks the method (Get before 1.27, or the feature gate off)
    denied         permission denied on the socket
    error          any other gRPC status

Why a channel per client and not per call: a gRPC channel reconnects by itself with backoff, so a
kubelet restart heals without our help; `wait_for_ready=False` makes a down kubelet fail fast
(UNAVAILABLE) instead of queueing the call until the deadline.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

import grpc

from aiinfra.telemetry.attribution import podresources_pb2 as pb
from aiinfra.telemetry.attribution import podresources_pb2_grpc as pb_grpc

DEFAULT_SOCKET = "/var/lib/kubelet/pod-resources/kubelet.sock"  # kubelet's and dcgm-exporter's default
REASONS = ("ok", "missing", "not_socket", "refused", "timeout", "garbage", "unimplemented", "denied", "error")
# The kubelet caps List answers at 16 MiB by default (podresources max message size); allow as much.
MAX_MESSAGE = 16 * 1024 * 1024


class KubeletError(Exception):
    """A PodResources call failed; `reason` is one of REASONS, the message is one sentence."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class PodResourcesClient:
    path: str = DEFAULT_SOCKET
    timeout_s: float = 2.0

    def __post_init__(self) -> None:
        self._channel: grpc.Channel | None = None
        self._stub: pb_grpc.PodResourcesListerStub | None = None

    def _check_path(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise KubeletError("missing", f"no kubelet pod-resources socket at {self.path}") from None
        except PermissionError:
            raise KubeletError("denied", f"permission denied on {self.path}") from None
        if not stat.S_ISSOCK(st.st_mode):
            raise KubeletError("not_socket", f"{self.path} is not a unix socket")

    def _connect(self) -> pb_grpc.PodResourcesListerStub:
        if self._stub is None:
            self._channel = grpc.insecure_channel(
                f"unix://{os.path.abspath(self.path)}",
                options=[("grpc.max_receive_message_length", MAX_MESSAGE), ("grpc.enable_http_proxy", 0)],
            )
            self._stub = pb_grpc.PodResourcesListerStub(self._channel)
        return self._stub

    def _call(self, method: str, request: object) -> object:
        self._check_path()
        stub = self._connect()
        try:
            return getattr(stub, method)(request, timeout=self.timeout_s, wait_for_ready=False)
        except grpc.RpcError as e:
            raise _classify(e, self.path, self.timeout_s) from None

    def list(self) -> pb.ListPodResourcesResponse:
        return self._call("List", pb.ListPodResourcesRequest())  # type: ignore[return-value]

    def get(self, pod: str, namespace: str) -> pb.PodResources:
        resp = self._call("Get", pb.GetPodResourcesRequest(pod_name=pod, pod_namespace=namespace))
        return resp.pod_resources  # type: ignore[attr-defined]

    def allocatable(self) -> pb.AllocatableResourcesResponse:
        return self._call("GetAllocatableResources", pb.AllocatableResourcesRequest())  # type: ignore[return-value]

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
        self._channel = self._stub = None


def _classify(e: grpc.RpcError, path: str, timeout_s: float) -> KubeletError:
    code = e.code() if hasattr(e, "code") else None
    detail = (e.details() if hasattr(e, "details") else "") or ""
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return KubeletError("timeout", f"the kubelet at {path} did not answer within {timeout_s:g} s")
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return KubeletError("unimplemented", f"the kubelet at {path} does not implement this PodResources method")
    if code == grpc.StatusCode.INTERNAL and ("deserializ" in detail.lower() or "parse" in detail.lower()):
        return KubeletError("garbage", f"the answer from {path} is not a PodResources v1 message")
    if code == grpc.StatusCode.UNAVAILABLE:
        low = detail.lower()
        if "refused" in low or "no such file" in low or "connect" in low and "failed" in low:
            return KubeletError("refused", f"nothing accepts connections on {path}")
        if "permission" in low:
            return KubeletError("denied", f"permission denied on {path}")
        return KubeletError("garbage", f"the peer on {path} does not speak gRPC ({' '.join(detail.split())[:80]})")
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return KubeletError("denied", f"the kubelet at {path} denied the call")
    return KubeletError("error", f"PodResources call on {path} failed: {code.name if code else 'unknown'} {' '.join(detail.split())[:80]}")
