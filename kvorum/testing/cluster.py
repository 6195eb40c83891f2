"""Launch a real multi-process etcd-compatible cluster on loopback, for end-to-end tests.

``Cluster`` starts 1, 3 or 5 member processes of any binary that takes etcd's server flags --
the real ``/usr/bin/etcd`` or kvorum's own ``kvorum`` entry point -- with exactly the static
bootstrap command lines of etcd's clustering guide (single-dash flag form), waits until every
member serves a linearizable read, and gives tests the handles they need for fault injection:
per-member pids, signals (``SIGKILL``, ``SIGSTOP``/``SIGCONT``), restarts on the same data dir,
the current leader, and the real ``etcdctl`` pointed at the cluster.

Every process it starts is tracked by pid and ended by pid (``SIGTERM``, then ``SIGKILL`` after
a bounded wait) in ``stop()``, on ``__exit__``, and -- as a last resort -- at interpreter exit,
so a failing test never leaves members behind.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

import grpc

from kvorum.api.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvorum.testing.ports import LOOPBACK, free_ports

__all__ = [
    "CLUSTER_TOKEN",
    "ETCD",
    "ETCDCTL",
    "SIZES",
    "Cluster",
    "ClusterStartError",
    "ClusterTLS",
    "CtlResult",
    "Member",
    "MemberHost",
    "MemberSpec",
    "binary_for",
]

ETCD = "/usr/bin/etcd"
ETCDCTL = "/usr/bin/etcdctl"
# Both the guide's token and the member names are fixed, so that member and cluster ids depend
# on nothing but the port layout (etcd derives them from peer URLs, name and token).
CLUSTER_TOKEN = "etcd-cluster-1"
SIZES = (1, 3, 5)

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
ETCDCTL_TIMEOUT_S = 30.0
RPC_TIMEOUT_S = 1.0
POLL_INTERVAL_S = 0.05
# A member may lose the race for a port we picked (see ports.py); the whole cluster is then
# bootstrapped again on fresh ports, at most this many times in all.
BIND_ATTEMPTS = 3
LOG_TAIL_LINES = 40
LOG_TAIL_BYTES = 64 * 1024
# gRPC backs off up to two minutes between reconnects by default; a member that was down for
# a moment must be seen again within a poll or two.
_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 250),
]
_BIND_FAILURE_MARKERS = ("address already in use",)


def binary_for(target: str) -> list[str]:
    """The member command for a target name: ``etcd`` (the reference), ``kvorum`` (the entry
    point installed next to the running Python, i.e. ``.venv/bin/kvorum``), or a command line.
    """
    if target == "etcd":
        return [ETCD]
    if target == "kvorum":
        return [str(Path(sys.executable).parent / "kvorum")]
    return shlex.split(target)


class ClusterStartError(RuntimeError):
    """The cluster (or a restarted member) did not become healthy; the message has the logs."""


class CtlResult(NamedTuple):
    """What one ``etcdctl`` run produced; unpacks as ``(returncode, stdout, stderr)``."""

    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True, slots=True)
class MemberSpec:
    """Everything that identifies one member across restarts: name, ports and paths.

    By default a member listens on loopback in the caller's network namespace; a fault test
    may instead run it inside ``netns`` (via ``ip netns exec``) on addresses of its own.
    """

    index: int
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path
    client_host: str = LOOPBACK
    peer_host: str = LOOPBACK
    netns: str | None = None
    client_scheme: str = "http"
    peer_scheme: str = "http"

    @property
    def client_url(self) -> str:
        return f"{self.client_scheme}://{self.client_host}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"{self.peer_scheme}://{self.peer_host}:{self.peer_port}"

    @property
    def client_address(self) -> str:
        """``host:port`` as gRPC dials it."""
        return f"{self.client_host}:{self.client_port}"


class MemberHost(NamedTuple):
    """Where one member runs: a network namespace (None: the caller's) and the addresses its
    client and peer URLs listen on, which must be reachable from the caller's namespace
    (clients) and from the other members (peers)."""

    netns: str | None
    client_host: str
    peer_host: str


@dataclass(frozen=True, slots=True)
class ClusterTLS:
    """TLS for a cluster's members, as etcd's security guide sets it up: one CA, one server
    certificate (valid for the members' addresses) used on the links chosen, and a client
    certificate for ``etcdctl`` and the launcher's own health checks.

    ``client``/``peer`` switch TLS on for that link (``https://`` URLs); ``client_cert_auth``
    and ``peer_client_cert_auth`` add etcd's ``--client-cert-auth`` / ``--peer-client-cert-auth``.
    """

    ca_file: str
    cert_file: str
    key_file: str
    client_cert_file: str
    client_key_file: str
    client: bool = True
    peer: bool = True
    client_cert_auth: bool = True
    peer_client_cert_auth: bool = True

    def member_flags(self) -> list[str]:
        flags: list[str] = []
        if self.client:
            flags += ["-cert-file", self.cert_file, "-key-file", self.key_file]
            flags += ["-trusted-ca-file", self.ca_file]
            if self.client_cert_auth:
                flags.append("-client-cert-auth")
        if self.peer:
            flags += ["-peer-cert-file", self.cert_file, "-peer-key-file", self.key_file]
            flags += ["-peer-trusted-ca-file", self.ca_file]
            if self.peer_client_cert_auth:
                flags.append("-peer-client-cert-auth")
        return flags

    def etcdctl_flags(self) -> list[str]:
        if not self.client:
            return []
        return [
            f"--cacert={self.ca_file}",
            f"--cert={self.client_cert_file}",
            f"--key={self.client_key_file}",
        ]

    def channel_credentials(self) -> Any:
        return grpc.ssl_channel_credentials(
            root_certificates=Path(self.ca_file).read_bytes(),
            private_key=Path(self.client_key_file).read_bytes(),
            certificate_chain=Path(self.client_cert_file).read_bytes(),
        )


class Member:
    """One member process of a ``Cluster``: its spec, command line and current process."""

    def __init__(
        self, spec: MemberSpec, command: Sequence[str], tls: ClusterTLS | None = None
    ) -> None:
        self.spec = spec
        self.command: tuple[str, ...] = tuple(command)
        self._tls = tls
        self._proc: subprocess.Popen[bytes] | None = None
        self._paused = False
        self._channel: Any = None

    @property
    def index(self) -> int:
        return self.spec.index

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def client_url(self) -> str:
        return self.spec.client_url

    @property
    def pid(self) -> int:
        """Pid of the current process (the last one started, even if it has exited since)."""
        if self._proc is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._proc.pid

    @property
    def running(self) -> bool:
        """The process exists (possibly paused by SIGSTOP)."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def paused(self) -> bool:
        return self._paused and self.running

    @property
    def live(self) -> bool:
        """Running and not paused: it can answer requests."""
        return self.running and not self._paused

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of this member's log, for error messages."""
        try:
            with self.spec.log_path.open("rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - LOG_TAIL_BYTES))
                data = log.read()
        except FileNotFoundError:
            return "<no log file>"
        text = data.decode("utf-8", errors="backslashreplace")
        return "\n".join(text.splitlines()[-lines:])

    # The generated gRPC stubs carry no annotations (grpcio-tools writes none), hence Any.
    def maintenance_stub(self) -> Any:
        """A Maintenance stub on this member's client URL."""
        return rpc_pb2_grpc.MaintenanceStub(self._get_channel())  # type: ignore[no-untyped-call]

    def kv_stub(self) -> Any:
        """A KV stub on this member's client URL."""
        return rpc_pb2_grpc.KVStub(self._get_channel())  # type: ignore[no-untyped-call]

    def _get_channel(self) -> Any:
        if self._channel is None and self._tls is not None and self._tls.client:
            self._channel = grpc.secure_channel(
                self.spec.client_address, self._tls.channel_credentials(), options=_CHANNEL_OPTIONS
            )
        if self._channel is None:
            self._channel = grpc.insecure_channel(
                self.spec.client_address, options=_CHANNEL_OPTIONS
            )
        return self._channel

    def _close_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def _spawn(self, env: Mapping[str, str]) -> None:
        assert not self.running, f"{self.name} is already running"
        self._close_channel()
        self.spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.spec.log_path.open("ab") as log:
            log.write(f"==== kvorum.testing: starting {' '.join(self.command)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env),
                start_new_session=True,
            )
        self._paused = False

    def _signal(self, sig: int) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        # By pid, never by name: only the process this Member started is touched.
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._proc.pid, sig)
        if sig == signal.SIGSTOP:
            self._paused = True
        elif sig == signal.SIGCONT:
            self._paused = False

    def _wait(self, timeout_s: float) -> bool:
        """Reap the process; True once it has exited."""
        if self._proc is None:
            return True
        try:
            self._proc.wait(timeout=max(timeout_s, 0.0))
        except subprocess.TimeoutExpired:
            return False
        self._paused = False
        return True


# Clusters started and not yet stopped; stopped at interpreter exit if a test forgot to.
_live_clusters: set[Cluster] = set()
_live_lock = threading.Lock()


@atexit.register
def _stop_leftover_clusters() -> None:
    with _live_lock:
        leftovers = list(_live_clusters)
    for cluster in leftovers:
        cluster.stop()


def _member_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    # ETCD_* variables in the caller's environment would silently change the members'
    # configuration (etcd reads every flag from them); only the caller's explicit env counts.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD_")}
    env.update(extra or {})
    return env


class Cluster:
    """A 1-, 3- or 5-member cluster of ``binary`` on loopback, bootstrapped statically.

    ``binary`` is one path (``"/usr/bin/etcd"``) or an argv prefix (``[".venv/bin/kvorum"]``);
    the etcd flags follow it. Members are named ``infra0``..``infraN-1`` with data dirs
    ``<base_dir>/infraI.etcd`` and logs ``<base_dir>/infraI.log``. ``extra_flags`` are appended to
    every member's command line, ``env`` is added to every member's environment. ``tls``
    (a :class:`ClusterTLS`) starts the members with TLS on the links it names; the health
    checks and ``etcdctl()`` then use its CA and client certificate.
    """

    def __init__(
        self,
        binary: str | Sequence[str],
        size: int = 1,
        *,
        base_dir: Path,
        extra_flags: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        start_timeout_s: float = START_TIMEOUT_S,
        stop_timeout_s: float = STOP_TIMEOUT_S,
        etcdctl_path: str = ETCDCTL,
        member_hosts: Sequence[MemberHost] | None = None,
        tls: ClusterTLS | None = None,
    ) -> None:
        if size not in SIZES:
            raise ValueError(f"size must be one of {SIZES}, got {size}")
        self.binary: tuple[str, ...] = (binary,) if isinstance(binary, str) else tuple(binary)
        if not self.binary:
            raise ValueError("binary must not be empty")
        self.size = size
        self.base_dir = Path(base_dir)
        self.extra_flags: tuple[str, ...] = tuple(extra_flags)
        self.env = _member_env(env)
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.etcdctl_path = etcdctl_path
        if member_hosts is not None and len(member_hosts) != size:
            raise ValueError(f"member_hosts names {len(member_hosts)} members, size is {size}")
        self.member_hosts: tuple[MemberHost, ...] | None = (
            None if member_hosts is None else tuple(member_hosts)
        )
        self.tls = tls
        self._members: list[Member] = []
        self._allocate()

    # -- layout ---------------------------------------------------------------------------

    def _allocate(self) -> None:
        ports = free_ports(2 * self.size)
        specs = [
            MemberSpec(
                index=i,
                name=f"infra{i}",
                client_port=ports[2 * i],
                peer_port=ports[2 * i + 1],
                data_dir=self.base_dir / f"infra{i}.etcd",
                log_path=self.base_dir / f"infra{i}.log",
                **self._host_fields(i),
                **self._scheme_fields(),
            )
            for i in range(self.size)
        ]
        self._members = [Member(spec, self._command_line(spec, specs), self.tls) for spec in specs]

    def _scheme_fields(self) -> dict[str, str]:
        tls = self.tls
        return {
            "client_scheme": "https" if tls is not None and tls.client else "http",
            "peer_scheme": "https" if tls is not None and tls.peer else "http",
        }

    def _host_fields(self, index: int) -> dict[str, Any]:
        if self.member_hosts is None:
            return {}
        host = self.member_hosts[index]
        return {"netns": host.netns, "client_host": host.client_host, "peer_host": host.peer_host}

    def _command_line(self, spec: MemberSpec, specs: Sequence[MemberSpec]) -> list[str]:
        """etcd's clustering guide, static bootstrap, single-dash form, plus ``-data-dir``."""
        initial_cluster = ",".join(f"{s.name}={s.peer_url}" for s in specs)
        # `ip netns exec` execs the member in place: the pid it is given is the member's own.
        in_netns = ["ip", "netns", "exec", spec.netns] if spec.netns is not None else []
        return [
            *in_netns,
            *self.binary,
            "-name", spec.name,
            "-initial-advertise-peer-urls", spec.peer_url,
            "-listen-peer-urls", spec.peer_url,
            "-listen-client-urls", spec.client_url,
            "-advertise-client-urls", spec.client_url,
            "-initial-cluster-token", CLUSTER_TOKEN,
            "-initial-cluster", initial_cluster,
            "-initial-cluster-state", "new",
            "-data-dir", str(spec.data_dir),
            *(self.tls.member_flags() if self.tls is not None else []),
            *self.extra_flags,
        ]  # fmt: skip

    @property
    def members(self) -> tuple[Member, ...]:
        return tuple(self._members)

    def member(self, index: int) -> Member:
        return self._members[index]

    @property
    def endpoints(self) -> list[str]:
        """Client URLs of every member, in member order."""
        return [m.client_url for m in self._members]

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> Cluster:
        """Start every member and wait until each serves a linearizable read."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        with _live_lock:
            _live_clusters.add(self)
        try:
            for attempt in range(1, BIND_ATTEMPTS + 1):
                for m in self._members:
                    m._spawn(self.env)
                failed = self._wait_healthy(range(self.size), self.start_timeout_s)
                if failed is None:
                    return self
                if attempt < BIND_ATTEMPTS and self._lost_port_race(failed):
                    # A fresh bootstrap on fresh ports: the old data dirs name the old peers.
                    self._stop_processes()
                    for m in self._members:
                        shutil.rmtree(m.spec.data_dir, ignore_errors=True)
                    self._allocate()
                    continue
                raise ClusterStartError(self._describe_failure(failed, "start"))
            raise AssertionError("unreachable")  # pragma: no cover
        except BaseException:
            self.stop()
            raise

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """End every process this cluster started, by pid, and reap them. Idempotent."""
        self._stop_processes()
        with _live_lock:
            _live_clusters.discard(self)

    def _stop_processes(self) -> None:
        # Followers first, the leader last: an etcd leader told to stop hands leadership to a
        # connected follower and, if those are stopping too, waits out the transfer timeout
        # (about 7 s); with no follower left connected it skips the transfer and exits at once.
        leader = self.leader_index() if sum(m.live for m in self._members) > 1 else None
        followers = [m for m in self._members if m.index != leader]
        for group in (followers, [self._members[leader]] if leader is not None else []):
            for m in group:
                m._signal(signal.SIGTERM)
                # A SIGSTOPped member only acts on SIGTERM once it runs again.
                m._signal(signal.SIGCONT)
            deadline = time.monotonic() + self.stop_timeout_s
            for m in group:
                if not m._wait(deadline - time.monotonic()):
                    m._signal(signal.SIGKILL)
                    m._wait(self.stop_timeout_s)
                m._close_channel()

    def kill(self, index: int, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to member ``index``; for SIGKILL also reap it, so its pid is gone."""
        m = self._members[index]
        m._signal(sig)
        if sig == signal.SIGKILL:
            m._wait(self.stop_timeout_s)
            m._close_channel()

    def restart(
        self, index: int, *, wait: bool = True, env: Mapping[str, str] | None = None
    ) -> Member:
        """Start member ``index`` again with the same command line and data dir.

        A running member is stopped first (SIGTERM, then SIGKILL). With ``wait``, returns once
        the member serves a linearizable read again. ``env`` is added to the cluster's
        environment for this start only (a fault test arms one member's failpoints so).
        """
        m = self._members[index]
        if m.running:
            m._signal(signal.SIGTERM)
            m._signal(signal.SIGCONT)
            if not m._wait(self.stop_timeout_s):
                m._signal(signal.SIGKILL)
                m._wait(self.stop_timeout_s)
        m._spawn({**self.env, **(env or {})})
        if wait:
            failed = self._wait_healthy([index], self.start_timeout_s)
            if failed is not None:
                raise ClusterStartError(self._describe_failure(failed, "restart"))
        return m

    # -- health and leadership ------------------------------------------------------------

    def _healthy(self, m: Member) -> bool:
        """The member knows a leader and serves a linearizable read (as ``endpoint health``)."""
        try:
            status = m.maintenance_stub().Status(rpc_pb2.StatusRequest(), timeout=RPC_TIMEOUT_S)
            if status.leader == 0:
                return False
            m.kv_stub().Range(rpc_pb2.RangeRequest(key=b"health"), timeout=RPC_TIMEOUT_S)
        except grpc.RpcError:
            return False
        return True

    def _wait_healthy(self, indices: Sequence[int] | range, timeout_s: float) -> Member | None:
        """Wait for the given members; return the first that exited or timed out, else None."""
        pending = [self._members[i] for i in indices]
        deadline = time.monotonic() + timeout_s
        while pending:
            for m in list(pending):
                if not m.running:
                    return m
                if self._healthy(m):
                    pending.remove(m)
            if pending and time.monotonic() > deadline:
                return pending[0]
            if pending:
                time.sleep(POLL_INTERVAL_S)
        return None

    def wait_healthy(self, timeout_s: float | None = None) -> None:
        """Wait until every live member serves a linearizable read; raise with logs if not."""
        live = [m.index for m in self._members if m.live]
        failed = self._wait_healthy(live, self.start_timeout_s if timeout_s is None else timeout_s)
        if failed is not None:
            raise ClusterStartError(self._describe_failure(failed, "health check"))

    def _lost_port_race(self, m: Member) -> bool:
        tail = m.log_tail().lower()
        return not m.running and any(marker in tail for marker in _BIND_FAILURE_MARKERS)

    def _describe_failure(self, m: Member, what: str) -> str:
        if m.running:
            state = f"still not healthy after {self.start_timeout_s:g}s"
        else:
            state = f"exited with status {m.returncode}"
        return (
            f"cluster {what} failed: member {m.name} (pid {m.pid}) {state}\n"
            f"command: {' '.join(m.command)}\n"
            f"last lines of {m.spec.log_path}:\n{m.log_tail()}"
        )

    def status(self, index: int, timeout_s: float = RPC_TIMEOUT_S) -> rpc_pb2.StatusResponse:
        """Maintenance.Status of member ``index`` (raises ``grpc.RpcError`` if unreachable)."""
        response: rpc_pb2.StatusResponse = (
            self._members[index]
            .maintenance_stub()
            .Status(rpc_pb2.StatusRequest(), timeout=timeout_s)
        )
        return response

    def leader_index(self) -> int | None:
        """Index of the member that reports itself leader, or None while there is none.

        Only live members are asked (a paused one would only time out). Should two members
        both claim leadership -- an old leader cut off and not yet stepped down -- the one with
        the higher raft term is the real one.
        """
        best: tuple[int, int] | None = None  # (raft term, member index)
        for m in self._members:
            if not m.live:
                continue
            try:
                status = self.status(m.index)
            except grpc.RpcError:
                continue
            if status.leader != 0 and status.leader == status.header.member_id:
                candidate = (status.raftTerm, m.index)
                if best is None or candidate > best:
                    best = candidate
        return None if best is None else best[1]

    def wait_for_leader(
        self, timeout_s: float | None = None, *, exclude: Sequence[int] = ()
    ) -> int:
        """Wait until some member other than those in ``exclude`` leads; return its index."""
        deadline = time.monotonic() + (self.start_timeout_s if timeout_s is None else timeout_s)
        while True:
            leader = self.leader_index()
            if leader is not None and leader not in exclude:
                return leader
            if time.monotonic() > deadline:
                raise ClusterStartError(
                    f"no leader outside {list(exclude)} in time; logs:\n"
                    + "\n".join(f"--- {m.name}\n{m.log_tail(10)}" for m in self._members)
                )
            time.sleep(POLL_INTERVAL_S)

    # -- the real etcdctl -----------------------------------------------------------------

    def etcdctl(
        self,
        *args: str,
        endpoint: int | str | Sequence[int] | None = None,
        env: Mapping[str, str] | None = None,
        stdin: str | bytes | None = None,
        timeout_s: float = ETCDCTL_TIMEOUT_S,
    ) -> CtlResult:
        """Run ``etcdctl --endpoints=... <args>`` (API v3) and return what it printed.

        ``endpoint`` picks the members to talk to: an index, several indices, or a URL;
        by default every live member. The caller's ``ETCDCTL_*`` variables are dropped so that
        only ``env`` shapes the run. Raises ``subprocess.TimeoutExpired`` (after killing
        etcdctl) if it runs longer than ``timeout_s``.
        """
        if endpoint is None:
            urls = [m.client_url for m in self._members if m.live] or self.endpoints
        elif isinstance(endpoint, int):
            urls = [self._members[endpoint].client_url]
        elif isinstance(endpoint, str):
            urls = [endpoint]
        else:
            urls = [self._members[i].client_url for i in endpoint]
        run_env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
        run_env["ETCDCTL_API"] = "3"
        run_env.update(env or {})
        data = stdin.encode() if isinstance(stdin, str) else stdin
        done = subprocess.run(
            [
                self.etcdctl_path,
                f"--endpoints={','.join(urls)}",
                *(self.tls.etcdctl_flags() if self.tls is not None else []),
                *args,
            ],
            input=data if data is not None else b"",
            capture_output=True,
            env=run_env,
            timeout=timeout_s,
            check=False,
        )
        return CtlResult(
            done.returncode,
            done.stdout.decode("utf-8", errors="backslashreplace"),
            done.stderr.decode("utf-8", errors="backslashreplace"),
        )
