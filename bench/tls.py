"""The cost of TLS on put throughput: kvorum and real etcd, plain and TLS, one client, one run.

    .venv/bin/python bench/tls.py [--size 3] [--max-seconds 5] [--rounds 1] [--json FILE]

For each server (``/usr/bin/etcd``, then ``.venv/bin/kvorum``) a cluster is started plain, then
with TLS on both links and client-certificate auth (certificates made at run time with trustme,
under a temporary directory in /tmp), by ``kvorum.testing.Cluster``. The load is the very
generator of ``bench/server.py`` (``bench/server_client.py``), run in its own process against
the leader; for the TLS runs its gRPC channels are made with the cluster CA and a client
certificate instead of in plain text -- nothing else differs. Workloads: puts of 256-byte
values at 1 client (sequential) and at 100 in flight over 10 connections, each bounded in
requests and seconds. With ``--rounds`` > 1 every cluster runs that many times (the order of
plain and TLS alternating between rounds, so a drift in machine load favours neither) and the
medians are reported.

Prints a markdown table (ops/s and p50/p99 latency, plain and TLS, and the TLS/plain ratio per
server) and the command line. Every process is started and ended by pid.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLIENT = Path(__file__).with_name("server_client.py")
SERVERS = ("etcd", "kvorum")
MODES = ("plain", "tls")
CLIENT_GRACE_S = 30.0


@dataclass(frozen=True, slots=True)
class Workload:
    clients: int
    conns: int
    max_ops: int

    @property
    def label(self) -> str:
        return f"put, {self.clients} client{'s' if self.clients > 1 else ''}"


WORKLOADS = (
    Workload(clients=1, conns=1, max_ops=5_000),
    Workload(clients=100, conns=10, max_ops=100_000),
)


# -- the client process ------------------------------------------------------------------------


def client_main(argv: list[str]) -> int:
    """``tls.py client --ca C --cert P --key K -- <server_client args>``: the same load
    generator, its channels wrapped in TLS (``--ca ''``: plain, unchanged)."""
    p = argparse.ArgumentParser()
    p.add_argument("--ca", default="")
    p.add_argument("--cert", default="")
    p.add_argument("--key", default="")
    args, rest = p.parse_known_args(argv)
    sys.path.insert(0, str(CLIENT.parent))
    import grpc
    import server_client

    if args.ca:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=Path(args.ca).read_bytes(),
            private_key=Path(args.key).read_bytes(),
            certificate_chain=Path(args.cert).read_bytes(),
        )

        def secure_channel(target: str, options: Any = None) -> Any:
            return grpc.aio.secure_channel(target, credentials, options=options)

        # server_client makes its channels with grpc.aio.insecure_channel: swapping that one
        # function keeps every other line of the load identical between plain and TLS runs.
        grpc.aio.insecure_channel = secure_channel
    result: int = server_client.main([a for a in rest if a != "--"])
    return result


# -- the driver ----------------------------------------------------------------------------------


def make_certs(directory: Path) -> dict[str, str]:
    import trustme

    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    paths = {"ca": str(directory / "ca.pem")}
    for stem, leaf in (
        ("server", ca.issue_cert("127.0.0.1", "localhost", common_name="infra")),
        ("client", ca.issue_cert("client", common_name="root")),
    ):
        leaf.private_key_pem.write_to_path(str(directory / f"{stem}-key.pem"))
        leaf.cert_chain_pems[0].write_to_path(str(directory / f"{stem}.pem"))
        paths[stem], paths[f"{stem}-key"] = (
            str(directory / f"{stem}.pem"),
            str(directory / f"{stem}-key.pem"),
        )
    return paths


def run_client(
    endpoint: str, w: Workload, args: argparse.Namespace, certs: dict[str, str] | None
) -> dict[str, Any]:
    tls_args = (
        ["--ca", certs["ca"], "--cert", certs["client"], "--key", certs["client-key"]]
        if certs is not None
        else []
    )
    command = [
        sys.executable, __file__, "client", *tls_args, "--",
        "--endpoint", endpoint, "--op", "put",
        "--clients", str(w.clients), "--conns", str(w.conns),
        "--max-ops", str(w.max_ops), "--max-seconds", str(args.max_seconds),
    ]  # fmt: skip
    return run_load_client(command, args.max_seconds)


def run_load_client(command: list[str], max_seconds: float) -> dict[str, Any]:
    """Run one load-client process (bounded: its own time plus a grace, then killed by pid)
    and return the JSON figures it prints last."""
    with tempfile.TemporaryFile(mode="w+") as err_file:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err_file, text=True)
        try:
            out, _ = proc.communicate(timeout=max_seconds + CLIENT_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()  # by pid: only the client this run started
            out, _ = proc.communicate()
        err_file.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"client failed ({proc.returncode}): {err_file.read()[-2000:]}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def measure(
    server: str, mode: str, base_dir: Path, args: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    from kvorum.testing import Cluster, ClusterTLS, binary_for

    certs = make_certs(base_dir / "certs") if mode == "tls" else None
    tls = (
        ClusterTLS(
            ca_file=certs["ca"],
            cert_file=certs["server"],
            key_file=certs["server-key"],
            client_cert_file=certs["client"],
            client_key_file=certs["client-key"],
        )
        if certs is not None
        else None
    )
    results: dict[str, dict[str, Any]] = {}
    print(f"# {server}, {mode}, {args.size} member(s), data under {base_dir}", file=sys.stderr)
    with Cluster(binary_for(server), args.size, base_dir=base_dir, tls=tls) as cluster:
        for w in WORKLOADS:
            leader = cluster.member(cluster.wait_for_leader())
            r = run_client(leader.spec.client_address, w, args, certs)
            results[w.label] = r
            print(
                f"  {w.label:16} {r['ops_per_s']:>9,.0f} ops/s  p50 {r['p50_ms']:7.2f} ms  "
                f"p99 {r['p99_ms']:7.2f} ms  errors {r['errors']}",
                file=sys.stderr,
            )
    return results


def medians(results: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per workload, the median of each figure over the rounds."""
    return {
        label: {
            figure: statistics.median(r[label][figure] for r in results)
            for figure in ("ops_per_s", "p50_ms", "p99_ms", "errors")
        }
        for label in results[0]
    }


def table(figures: dict[tuple[str, str], dict[str, dict[str, Any]]], size: int) -> list[str]:
    lines = [
        f"| server ({size} members) | workload | plain ops/s | TLS ops/s | TLS / plain "
        "| plain p50 / p99 ms | TLS p50 / p99 ms |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for server in SERVERS:
        for w in WORKLOADS:
            plain, tls = figures[(server, "plain")][w.label], figures[(server, "tls")][w.label]
            ratio = tls["ops_per_s"] / plain["ops_per_s"] if plain["ops_per_s"] else float("nan")
            lines.append(
                f"| {server} | {w.label} | {plain['ops_per_s']:,.0f} | {tls['ops_per_s']:,.0f} "
                f"| {ratio:.2f} | {plain['p50_ms']:.1f} / {plain['p99_ms']:.1f} "
                f"| {tls['p50_ms']:.1f} / {tls['p99_ms']:.1f} |"
            )
    return lines


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through `with Cluster`, which ends members by pid


Figures = dict[tuple[str, str], dict[str, dict[str, Any]]]


def bench_main(
    raw_argv: list[str],
    *,
    script: str,
    description: str,
    sizes: tuple[int, ...],
    default_size: int,
    max_seconds: tuple[float, float],
    modes: tuple[str, ...],
    measure: Callable[[str, str, Path, argparse.Namespace], dict[str, dict[str, Any]]],
    table: Callable[[Figures, int], list[str]],
) -> int:
    """The driver both security benchmarks share: parse the bounds, run every (server, mode)
    cluster ``--rounds`` times (the order of the modes rotating between rounds, so a drift in
    machine load favours none), print the command, the load and the table of medians."""
    default_s, bound_s = max_seconds
    p = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--size", type=int, default=default_size, choices=sizes)
    p.add_argument("--max-seconds", type=float, default=default_s, help="time bound per workload")
    p.add_argument("--rounds", type=int, default=1, help="every cluster this many times (medians)")
    p.add_argument("--json", help="also write every figure to this file")
    args = p.parse_args(raw_argv)
    if not 0 < args.max_seconds <= bound_s:
        p.error(f"--max-seconds must be in (0, {bound_s:g}]")
    if not 1 <= args.rounds <= 5:
        p.error("--rounds must be in [1, 5]")
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    base_dir = Path(tempfile.mkdtemp(prefix=f"kvorum-bench-{Path(script).stem}-", dir="/tmp"))
    load_before = os.getloadavg()[0]
    runs: dict[tuple[str, str], list[dict[str, dict[str, Any]]]] = {}
    try:
        for round_ in range(args.rounds):
            for server in SERVERS:
                for i in range(len(modes)):
                    mode = modes[(i + round_) % len(modes)]
                    run_dir = base_dir / f"{server}-{mode.replace('+', '-')}-{round_}"
                    runs.setdefault((server, mode), []).append(measure(server, mode, run_dir, args))
                    shutil.rmtree(run_dir, ignore_errors=True)
    finally:
        shutil.rmtree(base_dir, ignore_errors=True)
    figures = {key: medians(results) for key, results in runs.items()}
    command = shlex.join([".venv/bin/python", script, *raw_argv])
    print(
        f"Command: `{command}` (load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after; {os.cpu_count()} cores)\n"
    )
    print("\n".join(table(figures, args.size)))
    if args.json:
        Path(args.json).write_text(
            json.dumps({f"{s}/{m}": f for (s, m), f in figures.items()}, indent=1)
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    raw_argv = sys.argv[1:] if argv is None else argv
    if raw_argv[:1] == ["client"]:
        return client_main(raw_argv[1:])
    return bench_main(
        raw_argv,
        script="bench/tls.py",
        description=__doc__ or "",
        sizes=(1, 3, 5),
        default_size=3,
        max_seconds=(5.0, 15.0),
        modes=MODES,
        measure=measure,
        table=table,
    )


if __name__ == "__main__":
    sys.exit(main())
