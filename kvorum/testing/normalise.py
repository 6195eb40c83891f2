"""Normalise etcdctl output so that two runs of the same scenario compare equal.

Two runs of the very same ``etcdctl`` against two fresh etcd clusters already differ in a few
places that say nothing about the semantics under test. This module rewrites exactly those
places to stable placeholders and nothing else: revisions, keys, values, versions, counts,
error texts, exit codes and the shape of the output are never touched -- that is what the
differential suite compares.

Every rule is a ``Rule`` in ``RULES`` with the reason it exists. They fall into three kinds:

* identities of one cluster run, replaced by value wherever they appear (ports, member ids,
  cluster id, ids the server handed out and a scenario captured, like lease ids);
* numbers that reflect the server's internals or the clock, masked by the JSON key, the
  ``fields`` name, the table column or the simple-format position they are printed at;
* table padding, which follows from the cell widths and so from the masked cells.

The etcd version string is deliberately not a rule: kvorum answers with the etcd version it
emulates, and a difference there is a real difference.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["RULES", "ClusterFacts", "Invocation", "Rule", "normalise"]

# etcdctl command groups whose first argument is a sub-command (``endpoint status``).
_GROUPS = frozenset({"endpoint", "member", "lease", "alarm", "user", "role", "auth", "check"})


@dataclass(frozen=True, slots=True)
class ClusterFacts:
    """The identities of one cluster run, each replaced by a placeholder in its output."""

    client_ports: tuple[int, ...]
    peer_ports: tuple[int, ...]
    member_ids: tuple[int, ...]
    cluster_id: int
    captured: tuple[tuple[str, str], ...] = ()  # (variable name, value as printed)


@dataclass(frozen=True, slots=True)
class Invocation:
    """What a rule needs to know about the etcdctl run: its command words and output format."""

    command: tuple[str, ...]  # ("endpoint", "status"), ("get",), ...
    write_out: str  # simple, json, fields, table, protobuf

    @classmethod
    def of(cls, args: Sequence[str], env: Sequence[tuple[str, str]] = ()) -> Invocation:
        """Scenarios write the command first (``endpoint status -w table``), flags after."""
        words = tuple(args[:2]) if args and args[0] in _GROUPS else tuple(args[:1])
        write_out = dict(env).get("ETCDCTL_WRITE_OUT", "simple")
        for i, arg in enumerate(args):
            if arg in ("-w", "--write-out") and i + 1 < len(args):
                write_out = args[i + 1]
            elif arg.startswith(("--write-out=", "-w=")):
                write_out = arg.split("=", 1)[1]
        return cls(command=words, write_out=write_out)


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    why: str
    apply: Callable[[str, Invocation, ClusterFacts], str]


def _replace_values(text: str, pairs: Sequence[tuple[str, str]]) -> str:
    for value, placeholder in pairs:
        # Whole tokens only: a member id's decimal form must not eat into a longer number.
        text = re.sub(rf"(?<![0-9A-Za-z]){re.escape(value)}(?![0-9A-Za-z])", placeholder, text)
    return text


def _ports(text: str, _: Invocation, facts: ClusterFacts) -> str:
    pairs = [(f"127.0.0.1:{p}", f"<client-{i}>") for i, p in enumerate(facts.client_ports)]
    pairs += [(f"127.0.0.1:{p}", f"<peer-{i}>") for i, p in enumerate(facts.peer_ports)]
    return _replace_values(text, pairs)


#: etcdctl prints ids padded to 16 columns with spaces in some lines ("Member %16x removed from
#: cluster %16x"), so an id with a zero top nibble comes out with extra spaces before it.
_PADDED_ID = re.compile(r"(?<=\S)  +(?=<(?:member-\d+|cluster)>)")


def _ids(text: str, _: Invocation, facts: ClusterFacts) -> str:
    pairs: list[tuple[str, str]] = []
    for i, member_id in enumerate(facts.member_ids):
        # etcdctl prints member ids in hex (simple, table) and in decimal (json, fields).
        pairs += [(f"{member_id:x}", f"<member-{i}>"), (str(member_id), f"<member-{i}>")]
    pairs += [(f"{facts.cluster_id:x}", "<cluster>"), (str(facts.cluster_id), "<cluster>")]
    return _PADDED_ID.sub(" ", _replace_values(text, pairs))


def _captured(text: str, _: Invocation, facts: ClusterFacts) -> str:
    pairs: list[tuple[str, str]] = []
    for name, value in facts.captured:
        pairs.append((value, f"<{name}>"))
        # etcdctl prints an id in hex in simple output (lease ids zero-padded to 16 digits)
        # and in decimal in json and fields output: whichever form was captured, replace both.
        if re.fullmatch(r"[0-9a-f]+", value):
            pairs.append((str(int(value, 16)), f"<{name}>"))
        if re.fullmatch(r"[0-9]+", value):
            pairs += [(f"{int(value):016x}", f"<{name}>"), (f"{int(value):x}", f"<{name}>")]
    return _replace_values(text, pairs)


_JSON_VOLATILE = re.compile(
    r'"(raft_term|raftTerm|raftIndex|raftAppliedIndex|dbSize|dbSizeInUse|hash)":\d+'
)
_FIELDS_VOLATILE = re.compile(
    r'^"(RaftTerm|RaftIndex|RaftAppliedIndex|DBSize|DBSizeInUse|Hash)" : \d+$', re.M
)


def _volatile_keys(text: str, _: Invocation, __: ClusterFacts) -> str:
    text = _JSON_VOLATILE.sub(r'"\1":<n>', text)
    return _FIELDS_VOLATILE.sub(r'"\1" : <n>', text)


# Positions (0-based, ", "-separated) of volatile values in simple-format lines.
_SIMPLE_POSITIONS: dict[tuple[str, ...], frozenset[int]] = {
    # endpoint, id, version, db size, is leader, is learner, term, index, applied index, errors
    ("endpoint", "status"): frozenset({3, 6, 7, 8}),
    # endpoint, hash
    ("endpoint", "hashkv"): frozenset({1}),
}


def _simple_positions(text: str, how: Invocation, _: ClusterFacts) -> str:
    positions = _SIMPLE_POSITIONS.get(how.command)
    if how.write_out != "simple" or positions is None:
        return text
    lines = []
    for line in text.split("\n"):
        cells = line.split(", ")
        if len(cells) > max(positions):
            cells = ["<n>" if i in positions else c for i, c in enumerate(cells)]
        lines.append(", ".join(cells))
    return "\n".join(lines)


_TABLE_VOLATILE = frozenset({"DB SIZE", "RAFT TERM", "RAFT INDEX", "RAFT APPLIED INDEX", "HASH"})
_TABLE_CLOCK = frozenset({"TOOK"})


def _table_cells(text: str, _: Invocation, __: ClusterFacts) -> str:
    """Mask volatile columns by header name and drop the padding that follows cell widths."""
    out: list[str] = []
    masked: set[int] = set()
    header_seen = False
    for line in text.split("\n"):
        if re.fullmatch(r"\+(-+\+)+", line):
            out.append(re.sub(r"-+", "-", line))
            continue
        if not (line.startswith("|") and line.endswith("|")):
            out.append(line)
            header_seen = False  # a new table may follow
            masked = set()
            continue
        cells = [c.strip() for c in line[1:-1].split("|")]
        if not header_seen:
            header_seen = True
            volatile = _TABLE_VOLATILE | _TABLE_CLOCK
            masked = {i for i, c in enumerate(cells) if c in volatile}
        else:
            cells = ["<n>" if i in masked else c for i, c in enumerate(cells)]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def _took(text: str, _: Invocation, __: ClusterFacts) -> str:
    text = re.sub(r"took = \S+", "took = <duration>", text)
    text = re.sub(r'"took":"[^"]*"', '"took":"<duration>"', text)
    return re.sub(r'^"Took" : .*$', '"Took" : <duration>', text, flags=re.M)


def _lease_remaining(text: str, how: Invocation, _: ClusterFacts) -> str:
    if how.command != ("lease", "timetolive"):
        return text
    text = re.sub(r"remaining\(-?\d+s\)", "remaining(<s>)", text)
    text = re.sub(r'"(TTL|ttl)":-?\d+', r'"\1":<s>', text)
    return re.sub(r'^"TTL" : -?\d+$', '"TTL" : <s>', text, flags=re.M)


def _client_log(text: str, _: Invocation, __: ClusterFacts) -> str:
    text = re.sub(r'"ts":"[^"]*"', '"ts":"<ts>"', text)
    return re.sub(r"client-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
                  "client-<uuid>", text)  # fmt: skip


RULES: tuple[Rule, ...] = (
    Rule("ports", "loopback ports are picked at random for every cluster", _ports),
    Rule(
        "member and cluster ids",
        "etcd derives member ids from the peer URLs (so from the ports) and the cluster id "
        "from the member ids",
        _ids,
    ),
    Rule(
        "captured ids",
        "ids the server hands out (lease ids embed the member id and the clock) differ per "
        "run; a scenario captures them by name and this rule prints the name instead",
        _captured,
    ),
    Rule(
        "raft term, raft index, db size, hash (json, fields)",
        "the term counts elections (timing); the raft index also counts entries that are no "
        "KV writes (conf changes, member attributes, cluster version), which a server may log "
        "differently; db size is the backend's file layout; hashkv hashes the backend's "
        "internal encoding of the history. (Measured: two etcd runs of the same history do "
        "give the same hash; it is masked because kvorum need not share bolt's encoding. "
        "Drop 'hash' from the two patterns below to demand bit-equal hashes.)",
        _volatile_keys,
    ),
    Rule(
        "the same numbers in simple output",
        "endpoint status and hashkv print them by position in a ', '-separated line",
        _simple_positions,
    ),
    Rule("durations", "endpoint health reports how long its probe took", _took),
    Rule(
        "remaining lease TTL",
        "lease timetolive's remaining seconds count down with the wall clock",
        _lease_remaining,
    ),
    Rule(
        "etcdctl's own log lines",
        "the client's retry warnings on stderr carry a timestamp and a random client uuid "
        "(the gRPC status inside them is kept)",
        _client_log,
    ),
    Rule(
        "table cells",
        "tables size each column to its widest cell, so padding changes with any masked "
        "value; the same numbers as above are masked by column header",
        _table_cells,
    ),
)


def normalise(text: str, how: Invocation, facts: ClusterFacts) -> str:
    """Apply every rule in order; the result differs only where etcd itself is random."""
    for rule in RULES:
        text = rule.apply(text, how, facts)
    return text
