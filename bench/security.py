"""The cost of TLS and of auth on throughput: kvorum and real etcd, four ways, one run.

    .venv/bin/python bench/security.py [--size 1] [--max-seconds 4] [--rounds 1] [--json FILE]

For each server (``/usr/bin/etcd``, then ``.venv/bin/kvorum``) a cluster is started four
times by ``kvorum.testing.Cluster``:

* ``plain``: no TLS, auth off;
* ``tls``: TLS on the client link with client-certificate auth (``bench/tls.py``'s
  certificates, made at run time with trustme under /tmp; peers stay plain);
* ``auth``: auth enabled (simple tokens); the load runs as user ``bench`` holding a role
  with readwrite on the prefix ``bench/`` (every key the load touches), so every put is
  checked where it is applied and every get where it is served;
* ``tls+auth``: both.

The load is ``bench/server_client.py`` (as ``bench/server.py`` and ``bench/tls.py``), run in
its own process against the leader; its channels are made with TLS and/or carry the token
(gRPC metadata ``token``, fetched once by Authenticate before the clock starts) -- nothing else
differs. Workloads, each bounded in requests and seconds: puts at 1 client, puts at 100 in
flight over 10 connections, linearizable gets at 100 in flight (of the keys just put).

With ``--rounds`` > 1 every cluster runs that many times, the order of the four modes rotated
each round (so a drift in machine load favours none), and the medians are reported.

Prints a markdown table (ops/s per mode, and each mode's ratio to plain) and the command line.
Every process is started and ended by pid.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import tls as tls_bench  # the certificates and the figures' medians, shared

SERVERS = ("etcd", "kvorum")
MODES = ("plain", "tls", "auth", "tls+auth")
CLIENT_GRACE_S = 30.0
BENCH_USER, BENCH_PASSWORD = "bench", "bench-pw"
ROOT_PASSWORD = "root-pw"


@dataclass(frozen=True, slots=True)
class Workload:
    op: str
    clients: int
    conns: int
    max_ops: int

    @property
    def label(self) -> str:
        verb = "put" if self.op == "put" else "get"
        return f"{verb}, {self.clients} client{'s' if self.clients > 1 else ''}"


WORKLOADS = (
    Workload("put", clients=1, conns=1, max_ops=5_000),
    Workload("put", clients=100, conns=10, max_ops=100_000),
    Workload("get-linearizable", clients=100, conns=10, max_ops=100_000),
)


# -- the client process ------------------------------------------------------------------------


def client_main(argv: list[str]) -> int:
    """``security.py client [--ca C --cert P --key K] [--user U --password W] -- <args>``:
    server_client's load with its channels in TLS and/or carrying the user's token."""
    p = argparse.ArgumentParser()
    p.add_argument("--ca", default="")
    p.add_argument("--cert", default="")
    p.add_argument("--key", default="")
    p.add_argument("--user", default="")
    p.add_argument("--password", default="")
    p.add_argument("--endpoint", required=True)
    args, rest = p.parse_known_args(argv)
    import grpc
    import server_client

    from kvorum.api.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc

    credentials = None
    if args.ca:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=Path(args.ca).read_bytes(),
            private_key=Path(args.key).read_bytes(),
            certificate_chain=Path(args.cert).read_bytes(),
        )
    metadata: tuple[tuple[str, str], ...] = ()
    if args.user:
        sync = (
            grpc.secure_channel(args.endpoint, credentials)
            if credentials is not None
            else grpc.insecure_channel(args.endpoint)
        )
        with sync:
            login = rpc_pb2.AuthenticateRequest(name=args.user, password=args.password)
            auth = rpc_pb2_grpc.AuthStub(sync)  # type: ignore[no-untyped-call]
            metadata = (("token", auth.Authenticate(login, timeout=30).token),)

    class WithToken(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
        async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
            details = details._replace(metadata=(*(details.metadata or ()), *metadata))
            return await continuation(details, request)

    make_insecure = grpc.aio.insecure_channel

    def channel(target: str, options: Any = None) -> Any:
        interceptors = [WithToken()] if metadata else None
        if credentials is not None:
            return grpc.aio.secure_channel(
                target, credentials, options=options, interceptors=interceptors
            )
        return make_insecure(target, options=options, interceptors=interceptors)

    # server_client makes its channels with grpc.aio.insecure_channel: swapping that one
    # function keeps every other line of the load identical between the four modes.
    grpc.aio.insecure_channel = channel
    result: int = server_client.main(["--endpoint", args.endpoint, *(a for a in rest if a != "--")])
    return result


# -- the driver ----------------------------------------------------------------------------------


def run_client(
    endpoint: str,
    w: Workload,
    args: argparse.Namespace,
    certs: dict[str, str] | None,
    with_user: bool,
) -> dict[str, Any]:
    extra: list[str] = []
    if certs is not None:
        extra += ["--ca", certs["ca"], "--cert", certs["client"], "--key", certs["client-key"]]
    if with_user:
        extra += ["--user", BENCH_USER, "--password", BENCH_PASSWORD]
    command = [
        sys.executable, __file__, "client", *extra, "--endpoint", endpoint, "--",
        "--op", w.op, "--clients", str(w.clients), "--conns", str(w.conns),
        "--max-ops", str(w.max_ops), "--max-seconds", str(args.max_seconds),
    ]  # fmt: skip
    result = tls_bench.run_load_client(command, args.max_seconds)
    if result["errors"]:
        raise RuntimeError(f"{w.label}: {result['errors']} errors, first: {result['first_error']}")
    return result


def enable_auth(cluster: Any) -> None:
    """root, and user `bench` with readwrite on ``bench/`` only; then auth on."""
    steps: list[tuple[str, ...]] = [
        ("user", "add", "root", f"--new-user-password={ROOT_PASSWORD}"),
        ("user", "add", BENCH_USER, f"--new-user-password={BENCH_PASSWORD}"),
        ("role", "add", "bench-rw"),
        ("role", "grant-permission", "bench-rw", "readwrite", "bench/", "--prefix"),
        ("user", "grant-role", BENCH_USER, "bench-rw"),
        ("auth", "enable"),
    ]
    for step in steps:
        done = cluster.etcdctl(*step)
        if done.returncode != 0:
            raise RuntimeError(f"etcdctl {' '.join(step)}: {done.stderr.strip()}")


def measure(
    server: str, mode: str, base_dir: Path, args: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    from kvorum.testing import Cluster, ClusterTLS, binary_for

    certs = tls_bench.make_certs(base_dir / "certs") if "tls" in mode else None
    cluster_tls = (
        ClusterTLS(
            ca_file=certs["ca"],
            cert_file=certs["server"],
            key_file=certs["server-key"],
            client_cert_file=certs["client"],
            client_key_file=certs["client-key"],
            peer=False,
            peer_client_cert_auth=False,
        )
        if certs is not None
        else None
    )
    with_user = "auth" in mode
    results: dict[str, dict[str, Any]] = {}
    print(f"# {server}, {mode}, {args.size} member(s), data under {base_dir}", file=sys.stderr)
    with Cluster(binary_for(server), args.size, base_dir=base_dir, tls=cluster_tls) as cluster:
        if with_user:
            enable_auth(cluster)
        for w in WORKLOADS:
            leader = cluster.member(cluster.wait_for_leader())
            r = run_client(leader.spec.client_address, w, args, certs, with_user)
            results[w.label] = r
            print(
                f"  {w.label:16} {r['ops_per_s']:>9,.0f} ops/s  p50 {r['p50_ms']:7.2f} ms  "
                f"p99 {r['p99_ms']:7.2f} ms",
                file=sys.stderr,
            )
    return results


def table(figures: dict[tuple[str, str], dict[str, dict[str, Any]]], size: int) -> list[str]:
    head = " | ".join(f"{m} ops/s" for m in MODES)
    ratios = " | ".join(f"{m} / plain" for m in MODES[1:])
    lines = [
        f"| server ({size} member{'s' if size > 1 else ''}) | workload | {head} | {ratios} |",
        "|---|---|" + "---:|" * (2 * len(MODES) - 1),
    ]
    for server in SERVERS:
        for w in WORKLOADS:
            ops = [figures[(server, m)][w.label]["ops_per_s"] for m in MODES]
            cells = " | ".join(f"{o:,.0f}" for o in ops)
            rel = " | ".join(f"{o / ops[0]:.2f}" if ops[0] else "nan" for o in ops[1:])
            lines.append(f"| {server} | {w.label} | {cells} | {rel} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    raw_argv = sys.argv[1:] if argv is None else argv
    if raw_argv[:1] == ["client"]:
        return client_main(raw_argv[1:])
    return tls_bench.bench_main(
        raw_argv,
        script="bench/security.py",
        description=__doc__ or "",
        sizes=(1, 3),
        default_size=1,
        max_seconds=(4.0, 10.0),
        modes=MODES,
        measure=measure,
        table=table,
    )


if __name__ == "__main__":
    sys.exit(main())
