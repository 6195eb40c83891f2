"""Helpers of the observability e2e tests: clusters whose members serve ``--listen-metrics-urls``,
plain HTTP GETs, and a small parser of the Prometheus text format."""

from __future__ import annotations

import http.client
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kvorum.testing import Cluster, MemberSpec
from kvorum.testing.ports import LOOPBACK, free_ports

HTTP_TIMEOUT_S = 10.0
POLL_S = 0.1


class MetricsCluster(Cluster):
    """A ``Cluster`` whose every member also listens on a metrics URL of its own.

    The metrics port is picked with the member's other ports, keyed by its client port, so a
    re-bootstrap on fresh ports (a lost port race) gets a fresh metrics port too.
    """

    def _command_line(self, spec: MemberSpec, specs: Sequence[MemberSpec]) -> list[str]:
        ports: dict[int, int] = self.__dict__.setdefault("_metrics_ports", {})
        if spec.client_port not in ports:
            ports[spec.client_port] = free_ports(1)[0]
        url = f"http://{LOOPBACK}:{ports[spec.client_port]}"
        return [*super()._command_line(spec, specs), "-listen-metrics-urls", url]

    def metrics_url(self, index: int) -> str:
        ports: dict[int, int] = self.__dict__["_metrics_ports"]
        return f"http://{LOOPBACK}:{ports[self.member(index).spec.client_port]}"


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)


def http_get(url: str, method: str = "GET", timeout_s: float = HTTP_TIMEOUT_S) -> Reply:
    """One request; any HTTP status is a reply (only a dead socket raises)."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            return Reply(resp.status, resp.read().decode(), dict(resp.headers.items()))
    except urllib.error.HTTPError as err:
        return Reply(err.code, err.read().decode(), dict(err.headers.items()))


def wait_for(
    what: str, probe: Callable[[], Reply | None], accept: Callable[[Reply], bool], within_s: float
) -> Reply:
    """Poll ``probe`` until ``accept`` holds; fail with the last reply seen."""
    deadline = time.monotonic() + within_s
    last: Reply | None = None
    while True:
        try:
            last = probe()
        except OSError:
            last = None
        if last is not None and accept(last):
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {within_s} s; last reply {last!r}")
        time.sleep(POLL_S)


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


@dataclass(slots=True)
class Exposition:
    """A parsed ``/metrics`` page: family types and help texts, and every sample."""

    types: dict[str, str] = field(default_factory=dict)
    helps: dict[str, str] = field(default_factory=dict)
    samples: dict[str, float] = field(default_factory=dict)  # "name{labels}" -> value

    def value(self, name: str, labels: str = "") -> float:
        return self.samples.get(name + labels, 0.0)

    def total(self, name: str, **labels: str) -> float:
        """Sum of `name`'s samples whose labels include every one given."""
        wanted = [f'{k}="{v}"' for k, v in labels.items()]
        total = 0.0
        for key, value in self.samples.items():
            sample_name, _, rest = key.partition("{")
            if sample_name == name and all(w in rest for w in wanted):
                total += value
        return total

    def buckets(self, name: str) -> list[str]:
        """The ``le`` boundaries of histogram `name` (unlabelled), as written."""
        return re.findall(rf'^{name}_bucket\{{le="([^"]+)"\}}', "\n".join(self.samples), re.M)


def parse_exposition(text: str) -> Exposition:
    out = Exposition()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            out.types[name] = kind
        elif line.startswith("# HELP "):
            _, _, name, *help_words = line.split(" ", 3)
            out.helps[name] = help_words[0] if help_words else ""
        elif line and not line.startswith("#"):
            m = _SAMPLE.match(line)
            if m:
                out.samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def normalise_bound(le: str) -> float:
    """A bucket bound as a number (Go prints 0.001, Python 0.001; +Inf both)."""
    return float("inf") if le == "+Inf" else float(le)


@dataclass(frozen=True, slots=True)
class StreamReply:
    status: int
    headers: dict[str, str]
    lines: list[str]  # each JSON message as sent (one per chunk), without its newline


def stream_post(
    url: str,
    body: bytes,
    *,
    max_lines: int,
    token: str | None = None,
    timeout_s: float = HTTP_TIMEOUT_S,
) -> StreamReply:
    """POST to a streaming gateway path and read up to ``max_lines`` JSON lines (or until the
    stream ends), then close the connection -- which ends a watch on the server's side."""
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s)
    try:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = token
        conn.request("POST", parts.path, body=body, headers=headers)
        resp = conn.getresponse()
        lines: list[str] = []
        while len(lines) < max_lines:
            raw = resp.readline()
            if not raw:
                break
            if raw.strip():
                lines.append(raw.decode().rstrip("\n"))
        return StreamReply(resp.status, dict(resp.getheaders()), lines)
    finally:
        conn.close()
