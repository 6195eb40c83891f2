"""``run(config)``: the member process from start to a clean exit.

Start-up, in the order the pieces depend on each other:

1. logging per ``--logger``/``--log-level``/``--log-outputs``; the start lines an operator
   looks for (name, data dir, URLs);
2. bootstrap (``bootstrap.plan``): new cluster, restart or join -- who this member is;
3. the raft log (WAL + snapshots) and the backend with its stores, the membership seeded on a
   new or joining member; the lessor recovered from the lease bucket; the apply layer over
   them;
4. the peer transport on ``--listen-peer-urls`` (it must accept sends before raft starts),
   its peers from the member list, then the RaftNode;
5. the member publishes its name and client URLs through raft; then the client gRPC server on
   ``--listen-client-urls``. A plain-HTTP client URL is served through ``portmux`` (gRPC and
   HTTP on one port, as etcd) unless ``--enable-grpc-gateway=false``; TLS and unix URLs are
   bound by the gRPC server itself (gRPC only).

SIGINT/SIGTERM stop it in the reverse order -- gRPC (with a short grace for requests in
flight), raft, transport, then the backend's last batch is committed and synced -- and the
process exits 0. A start-up failure or a raft loop that dies is one log line and exit 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

import grpc
import uvloop

from kvorum.api.grpcserver import GrpcOptions, build_server
from kvorum.api.watch import WatchService
from kvorum.apply import Applier
from kvorum.auth import AuthStore
from kvorum.auth.tokens import token_provider
from kvorum.backend import DEFAULT_MAX_BATCH_COUNT, DEFAULT_MAX_BATCH_INTERVAL_S, Backend
from kvorum.config import ServerConfig
from kvorum.datadir import DataDir, DataDirError
from kvorum.doctor.live import LiveMonitor
from kvorum.lease import LeaseStore, min_lease_ttl_s, recover_lessor
from kvorum.membership import AlarmStore, MembershipStore
from kvorum.mvcc import MvccStore
from kvorum.server import logging as member_logging
from kvorum.server import tls
from kvorum.server.bootstrap import (
    BootstrapError,
    ClusterInfo,
    Mode,
    Plan,
    data_dir_for,
    encode_cluster_info,
    plan,
)
from kvorum.server.compactor import policy_for, run_compactor
from kvorum.server.gateway import Gateway
from kvorum.server.httpserver import HttpEndpoints, MemberHealth
from kvorum.server.member import ApplyDriver, KvorumMember, MemberSettings, request_timeout_s
from kvorum.server.metrics import GrpcMetricsInterceptor, ServerMetrics, member_snapshot
from kvorum.server.portmux import MuxProcess, listen_socket
from kvorum.server.raftnode import RaftNode, RaftNodeConfig
from kvorum.server.raftstorage import DEFAULT_CATCH_UP_ENTRIES, RaftStorage, StorageOptions
from kvorum.server.wait import Wait
from kvorum.transport import PeerTransport, fetch_cluster_info
from kvorum.wal import WALError
from kvorum.watch import WatchHub

__all__ = ["EXIT_FAILURE", "EXIT_OK", "GRPC_STOP_GRACE_S", "run"]

logger = logging.getLogger("kvorum.server")

EXIT_OK = 0
EXIT_FAILURE = 1
GRPC_STOP_GRACE_S = 1.0
"""Requests in flight get this long to finish when the member stops."""
INTERNAL_GRPC_HOST = "127.0.0.1"
"""Where the gRPC server listens for the client port's mux and the gateway (ephemeral port)."""
PORT_IN_USE_WAIT_S = 3.0
PORT_IN_USE_POLL_S = 0.05
HEALTH_POLL_S = 0.2
"""How often the process checks that the raft loop is still alive."""

# Errors that mean "this configuration or data cannot start": one line, exit 1.
_START_ERRORS = (BootstrapError, DataDirError, WALError, OSError, ValueError)


class StartError(Exception):
    """Start-up failed for a reason the message states in full."""


def run(config: ServerConfig) -> int:
    """Run the member until SIGINT/SIGTERM; returns the process exit status."""
    member_logging.configure(config)
    for warning in config.warnings:
        logger.warning("%s", warning)
    _reexec_for_grpc_ciphers(config)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        try:
            return runner.run(_main(config))
        except KeyboardInterrupt:
            return EXIT_OK


def _reexec_for_grpc_ciphers(config: ServerConfig) -> None:
    """Start this process again with ``GRPC_SSL_CIPHER_SUITES`` set, if ``--cipher-suites``
    needs it: gRPC reads the variable only when it initialises, before any flag is parsed.
    The pid stays the same (exec), and the second start finds the variable set."""
    try:
        wanted = tls.grpc_cipher_suites_env(config)
    except tls.TLSConfigError:
        return  # reported, with etcd's text, when TLS is built at start
    if wanted is None or os.environ.get(tls.GRPC_CIPHER_SUITES_ENV) == wanted:
        return
    logger.info("re-executing so that gRPC uses the --cipher-suites (%s)", wanted)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os.execve(sys.executable, sys.orig_argv, {**os.environ, tls.GRPC_CIPHER_SUITES_ENV: wanted})


@dataclass(slots=True)
class _Parts:
    """What has been started so far, so a failed start stops exactly that."""

    backend: Backend | None = None
    storage: RaftStorage | None = None
    transport: PeerTransport | None = None
    raft: RaftNode | None = None
    driver: ApplyDriver | None = None
    member: KvorumMember | None = None
    server: grpc.aio.Server | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    metrics: ServerMetrics = field(default_factory=ServerMetrics)
    http: HttpEndpoints | None = None
    muxes: list[MuxProcess] = field(default_factory=list)


async def _main(config: ServerConfig) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    _log_start(config)
    parts = _Parts()
    status = EXIT_OK
    try:
        await _start(config, parts, stop)
    except (StartError, *_START_ERRORS) as exc:
        logger.critical("cannot start member %s: %s", config.name, exc)
        await _shutdown(parts)
        return EXIT_FAILURE
    except Exception as exc:
        # A bug, not a configuration problem: one line to act on, the trace for a report.
        logger.critical(
            "cannot start member %s: unexpected %s: %s", config.name, type(exc).__name__, exc
        )
        logger.debug("start-up failure", exc_info=exc)
        await _shutdown(parts)
        return EXIT_FAILURE
    assert parts.raft is not None
    raft = parts.raft
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), HEALTH_POLL_S)
        if raft.failure is not None:
            logger.critical("member %x stops: its raft loop failed (%s)", raft.id, raft.failure)
            status = EXIT_FAILURE
            break
        mux_failure = next((m.failure for m in parts.muxes if m.failure), None)
        if mux_failure is not None and not stop.is_set():  # clients could not reach it
            logger.critical("member %x stops: %s", raft.id, mux_failure)
            status = EXIT_FAILURE
            break
    logger.info("member %s (%x) is shutting down", config.name, raft.id)
    await _shutdown(parts)
    logger.info("member %s (%x) stopped", config.name, raft.id)
    return status


def _log_start(config: ServerConfig) -> None:
    logger.info(
        "kvorum member %s starting (etcd API 3.4, Python %s)", config.name, sys.version.split()[0]
    )
    logger.info(
        "data dir %s%s", config.data_dir, f", WAL dir {config.wal_dir}" if config.wal_dir else ""
    )
    logger.info("listening for peers on %s", ",".join(config.listen_peer_urls))
    logger.info("listening for clients on %s", ",".join(config.listen_client_urls))
    logger.info(
        "heartbeat %d ms, election timeout %d ms, snapshot count %d",
        config.heartbeat_interval_ms,
        config.election_timeout_ms,
        config.snapshot_count,
    )


#: Entries kept behind a snapshot for slow followers (etcd 3.4 hard-codes 5000). Tests set it
#: small so a lagging member must catch up through a snapshot; not an etcd flag.
CATCH_UP_ENTRIES_ENV = "KVORUM_SNAPSHOT_CATCHUP_ENTRIES"


def _storage_options(config: ServerConfig) -> StorageOptions:
    raw = os.environ.get(CATCH_UP_ENTRIES_ENV, "").strip()
    catch_up = DEFAULT_CATCH_UP_ENTRIES
    if raw:
        if not raw.isdigit():
            raise StartError(f"{CATCH_UP_ENTRIES_ENV} must be a whole number >= 0, not {raw!r}")
        catch_up = int(raw)
    return StorageOptions(
        snapshot_count=max(config.snapshot_count, 1),
        catch_up_entries=catch_up,
        max_wals=config.max_wals,
    )


def _open_backend(config: ServerConfig, data_dir: DataDir) -> Backend:
    return Backend(
        str(data_dir.backend_path),
        max_batch_count=config.backend_batch_limit or DEFAULT_MAX_BATCH_COUNT,
        max_batch_interval_s=config.backend_batch_interval_s or DEFAULT_MAX_BATCH_INTERVAL_S,
    )


def _seed_membership(membership: MembershipStore, backend: Backend, p: Plan) -> None:
    """A new or joining member's first member list (the same on every initial member).

    A joining member leaves itself out: its own addition is in the log it is about to
    learn, and applying it there adds it -- to the member list and to raft -- exactly once.
    """
    membership.set_cluster_id(p.cluster_id)
    for m in p.members:
        if p.mode is Mode.NEW or m.id != p.member_id:
            membership.add(m)
    backend.sync()


def _open_state(
    config: ServerConfig, data_dir: DataDir, p: Plan, parts: _Parts
) -> tuple[Backend, MembershipStore, RaftStorage]:
    options = replace(
        _storage_options(config), fsync_observer=parts.metrics.wal_fsync_duration.observe
    )
    if p.mode is Mode.RESTART:
        backend = parts.backend = _open_backend(config, data_dir)
        membership = MembershipStore(backend)
        if not membership.members():
            raise StartError(
                f"the backend {data_dir.backend_path} holds no member list; the data dir is "
                "incomplete (remove it and join the member again)"
            )
        # Voters as of the backend; the conf changes in the WAL replay to the latest set.
        voters = [m.id for m in membership.voting_members()]
        storage = RaftStorage.open_or_create(data_dir, p.member_id, p.cluster_id, voters, options)
        parts.storage = storage
        return backend, membership, storage
    storage = RaftStorage.open_or_create(data_dir, p.member_id, p.cluster_id, p.voters, options)
    parts.storage = storage
    backend = parts.backend = _open_backend(config, data_dir)
    membership = MembershipStore(backend)
    _seed_membership(membership, backend, p)
    return backend, membership, storage


async def _start(config: ServerConfig, parts: _Parts, stop: asyncio.Event) -> None:
    data_dir = data_dir_for(config)
    # TLS first: a joining member asks its peers for the cluster info over the peer link.
    client_tls, peer_tls = tls.build(config)
    peer_client_ssl = peer_tls.client_context if peer_tls is not None else None

    async def fetch(url: str, timeout_s: float) -> bytes:
        return await fetch_cluster_info(url, timeout_s=timeout_s, client_ssl=peer_client_ssl)

    p = await plan(config, data_dir, fetch)
    backend, membership, storage = _open_state(config, data_dir, p, parts)
    backend.batch.commit_observer = parts.metrics.backend_commit_duration.observe
    # The lessor is rebuilt from the lease bucket and the live keys' lease fields before mvcc
    # takes writes; mvcc then refuses puts naming a lease the lessor does not hold.
    lessor, orphans = recover_lessor(
        LeaseStore(backend),
        MvccStore(backend).iter_live(),
        min_ttl_s=min_lease_ttl_s(config.election_timeout_ms, config.heartbeat_interval_ms),
        now_s=time.monotonic(),
    )
    if orphans:
        logger.warning("%d key(s) name a lease that is not stored; left unattached", orphans)
    store = MvccStore(backend, lease_exists=lessor.exists)
    alarms = AlarmStore(backend)
    quota = config.quota_backend_limit_bytes
    auth = AuthStore(
        backend,
        token_provider(config.auth_token, config.auth_token_ttl_s),
        bcrypt_cost=config.bcrypt_cost,
        cn_as_user=config.client_cert_auth,
    )
    applier = Applier(
        backend,
        store,
        membership,
        alarms,
        lessor=lessor,
        auth=auth,
        quota_bytes=quota if quota is not None else -1,
        clock=time.monotonic,
    )
    wait = Wait()
    # Before raft starts: entries replayed from the WAL publish revisions past this one.
    watch = WatchService(WatchHub(store.current_revision), store)
    member_ref: list[KvorumMember] = []
    driver = ApplyDriver(
        applier,
        backend,
        wait,
        on_membership_change=lambda: member_ref[0].sync_peers() if member_ref else None,
        on_nospace=lambda: member_ref[0].raise_nospace_alarm() if member_ref else None,
        on_events=watch.publish_events,
        on_restore=lambda: watch.skip_to(store.current_revision),
    )
    parts.driver = driver
    heartbeat_s = config.heartbeat_interval_ms / 1000
    raft_config = RaftNodeConfig(
        member_id=p.member_id,
        heartbeat_interval_s=heartbeat_s,
        election_ticks=config.election_ticks,
        # kvorum's raft runs pre-vote unless the operator turned it off (etcd 3.4: off).
        pre_vote=config.pre_vote if config.is_explicit("pre-vote") else True,
    )
    raft = RaftNode(raft_config, storage, driver, wait=wait)
    parts.raft = raft
    transport = PeerTransport(
        p.member_id,
        p.cluster_id,
        config.listen_peer_urls,
        parts.metrics.peer_rtt.receiving(raft.receive),
        raft.report_unreachable,
        raft.report_snapshot,
        server_ssl=peer_tls.server_context if peer_tls is not None else None,
        client_ssl=peer_client_ssl,
        accept_peer_cert=peer_tls.accepts if peer_tls is not None else None,
    )
    settings = MemberSettings(
        name=config.name,
        member_id=p.member_id,
        cluster_id=p.cluster_id,
        client_urls=config.advertise_client_urls,
        cluster_token=config.initial_cluster_token,
        request_timeout_s=request_timeout_s(raft_config.election_timeout_s),
        strict_reconfig_check=config.strict_reconfig_check,
        batch_interval_s=config.backend_batch_interval_s or DEFAULT_MAX_BATCH_INTERVAL_S,
    )
    member = KvorumMember(
        settings,
        raft,
        backend,
        store,
        membership,
        alarms,
        transport,
        on_removed=stop.set,
        lessor=lessor,
        auth=auth,
    )
    # Before raft starts, so the first election this member wins promotes the lessor.
    raft.add_leader_listener(member.on_leader_change)
    raft.add_leader_listener(parts.metrics.on_leader_change)
    parts.metrics.source = lambda: member_snapshot(member, applier.quota_bytes, watch.hub)
    member_ref.append(member)
    parts.member = member
    transport.set_cluster_info_provider(
        lambda: encode_cluster_info(ClusterInfo(p.cluster_id, p.member_id, membership.members()))
    )
    await transport.start()
    parts.transport = transport
    member.sync_peers()
    logger.info(
        "member %s is %x in cluster %x (%s); peers %s",
        config.name,
        p.member_id,
        p.cluster_id,
        p.mode.value,
        ",".join(f"{m.id:x}" for m in membership.members() if m.id != p.member_id) or "none",
    )
    await raft.start(parts.metrics.peer_rtt.sending(transport))
    # The doctor's measures, live: scheduling lag and CPU steal as metrics, warnings.
    monitor = LiveMonitor(parts.metrics.registry, parts.metrics.wal_fsync_duration, heartbeat_s)
    parts.tasks.append(asyncio.get_running_loop().create_task(monitor.run(), name="live-monitor"))
    muxed_urls = _muxed_client_urls(config)
    # The gateway dials the gRPC server's internal listener, bound once the member published.
    gateway = Gateway(None) if muxed_urls else None
    if config.listen_metrics_urls or muxed_urls:
        parts.http = HttpEndpoints(parts.metrics, MemberHealth(member), gateway=gateway)
    if parts.http is not None and config.listen_metrics_urls:
        # Served while starting too: /health tells why the member is not ready.
        await parts.http.serve(config.listen_metrics_urls)
    parts.tasks.append(
        asyncio.get_running_loop().create_task(
            driver.commit_loop(settings.batch_interval_s), name="backend-commit"
        )
    )
    parts.tasks.append(asyncio.get_running_loop().create_task(watch.run(), name="watch-sync"))
    parts.tasks.append(
        asyncio.get_running_loop().create_task(member.run_lease_expiry(), name="lease-expiry")
    )
    compaction = policy_for(
        config.auto_compaction_mode,
        config.auto_compaction_period_s,
        config.auto_compaction_retention_revisions,
    )
    if compaction is not None:
        logger.info(
            "auto-compaction: mode %s, retention %s",
            config.auto_compaction_mode,
            config.auto_compaction_retention,
        )
        parts.tasks.append(
            asyncio.get_running_loop().create_task(
                run_compactor(
                    compaction,
                    is_leader=lambda: raft.is_leader,
                    current_revision=lambda: member.store.current_revision,
                    compact=lambda revision: member.compact(revision, physical=False),
                    clock=time.monotonic,
                ),
                name="auto-compaction",
            )
        )
    # As etcd: clients are served once this member's name and client URLs are in the
    # member list (so `member list` never shows a serving member without them).
    publishing = member.start_publishing()
    if not await _first(publishing, stop):
        return  # asked to stop meanwhile
    if not member.published.is_set():
        raise StartError(f"raft stopped before the member could publish itself ({raft.failure})")
    server = build_server(
        member,
        GrpcOptions.from_config(config),
        watch=watch,
        lease=member,
        auth=member,
        interceptors=[GrpcMetricsInterceptor(parts.metrics)],
    )
    parts.server = server
    for url in config.listen_client_urls:
        if url not in muxed_urls:
            _bind(server, url, client_tls)
    internal_port = server.add_insecure_port(f"{INTERNAL_GRPC_HOST}:0") if muxed_urls else 0
    await server.start()
    if muxed_urls:
        assert parts.http is not None and gateway is not None
        gateway.connect(f"{INTERNAL_GRPC_HOST}:{internal_port}")
        # The mux process hands HTTP connections over on this loop: adopt them directly.
        handoff = parts.http.adopt
        for url in muxed_urls:
            internal = (INTERNAL_GRPC_HOST, internal_port)
            parts.muxes.append(await _listen_muxed(url, internal, handoff))
    logger.info(
        "ready to serve client requests on %s (advertised %s)",
        ",".join(config.listen_client_urls),
        ",".join(config.advertise_client_urls) or "none",
    )


def _muxed_client_urls(config: ServerConfig) -> tuple[str, ...]:
    """The client URLs that serve HTTP beside gRPC: every plain ``http://`` one, unless the
    gateway is turned off (``--enable-grpc-gateway=false``, which leaves the port gRPC-only
    and spares the mux's cost)."""
    if not config.enable_grpc_gateway:
        return ()
    return tuple(u for u in config.listen_client_urls if urlsplit(u).scheme == "http")


async def _listen_muxed(
    url: str, grpc_target: tuple[str, int], handoff: Callable[[socket.socket], None]
) -> MuxProcess:
    parts = urlsplit(url)
    if parts.port is None or not parts.hostname:
        raise StartError(f"cannot listen for clients on {url}")
    deadline_s = time.monotonic() + PORT_IN_USE_WAIT_S
    while True:
        try:
            listener = listen_socket(parts.hostname, parts.port)
            break
        except OSError as exc:
            # The mux of this member's previous life (killed with SIGKILL) may hold the port
            # for a moment longer, until it sees its member gone: waited out, briefly.
            if exc.errno == errno.EADDRINUSE and time.monotonic() < deadline_s:
                await asyncio.sleep(PORT_IN_USE_POLL_S)
                continue
            raise StartError(f"cannot listen for clients on {url}: {exc.strerror or exc}") from None
    try:
        return MuxProcess(listener, grpc_target, handoff)
    except BaseException:
        listener.close()
        raise


async def _first(task: asyncio.Task[None], stop: asyncio.Event) -> bool:
    """Wait until ``task`` ends or ``stop`` is set; True if it ended and no stop was asked."""
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([task, stopping], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        await asyncio.gather(stopping, return_exceptions=True)
    return task.done() and not stop.is_set()


def _bind(server: grpc.aio.Server, url: str, client_tls: tls.ClientTLS | None) -> None:
    parts = urlsplit(url)
    if (
        parts.scheme not in ("http", "unix", "https", "unixs")
        or parts.port is None
        or not parts.hostname
    ):
        raise StartError(f"cannot listen for clients on {url}")
    address = f"{parts.hostname}:{parts.port}"
    if ":" in parts.hostname:
        address = f"[{parts.hostname}]:{parts.port}"
    try:
        if parts.scheme in ("https", "unixs"):
            # tls.build refused https without a certificate, as etcd does.
            assert client_tls is not None
            port = server.add_secure_port(address, client_tls.credentials)
        else:
            port = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise StartError(
            f"cannot listen for clients on {url}: address already in use or not available ({exc})"
        ) from None
    if port == 0:
        raise StartError(f"cannot listen for clients on {url}: address already in use")


async def _shutdown(parts: _Parts) -> None:
    """Stop what was started, in reverse dependency order; every step runs even if one fails."""
    if parts.http is not None:
        await parts.http.close()
    if parts.server is not None:
        with contextlib.suppress(Exception):
            await parts.server.stop(GRPC_STOP_GRACE_S)
    for mux in parts.muxes:  # after gRPC's grace: spliced requests in flight could finish
        await mux.close()
    if parts.member is not None:
        if parts.raft is not None and parts.raft.running:
            # etcd gives the hand-over its request timeout too; an election timeout is too
            # short on a loaded machine, and then the others must wait for an election.
            await parts.member.hand_over_leadership(
                request_timeout_s(parts.raft.config.election_timeout_s)
            )
        await parts.member.close()
    for task in parts.tasks:
        task.cancel()
    await asyncio.gather(*parts.tasks, return_exceptions=True)
    if parts.raft is not None:
        try:
            await parts.raft.stop()
        except Exception as exc:  # the WAL could not be closed cleanly: said, not hidden
            logger.error("stopping raft failed: %s", exc)
    elif parts.storage is not None:
        await parts.storage.close()
    if parts.transport is not None:
        await parts.transport.stop()
    if parts.driver is not None:
        await parts.driver.close()
    if parts.backend is not None:
        try:
            parts.backend.sync()
            parts.backend.close()
        except Exception as exc:
            logger.error("closing the backend failed: %s", exc)
