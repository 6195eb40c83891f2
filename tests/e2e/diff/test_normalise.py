"""The normaliser and the scenario format, on recorded etcdctl 3.4 output (no processes).

Each rule must turn what differs between two etcd runs into the same text, and must leave
revisions, values, versions, counts and error texts alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kvorum.testing.normalise import ClusterFacts, Invocation, normalise
from kvorum.testing.scenario import ScenarioError, load_scenario, substitute

# Two runs of etcd 3.4.23: ids, ports, sizes, terms and indexes differ; nothing else.
RUN_A = ClusterFacts(
    client_ports=(46011,),
    peer_ports=(53673,),
    member_ids=(0x76598C21D75BE10B,),
    cluster_id=560152100402662137,
)
RUN_B = ClusterFacts(
    client_ports=(2379,),
    peer_ports=(2380,),
    member_ids=(0x8E9E05C52164694D,),
    cluster_id=14841639068965178418,
)


def _norm(text: str, facts: ClusterFacts, command: str) -> str:
    return normalise(text, Invocation.of(command.split()), facts)


STATUS_TABLE_A = """\
+------------------------+------------------+---------+---------+-----------+------------+-----------+------------+--------------------+--------+
|        ENDPOINT        |        ID        | VERSION | DB SIZE | IS LEADER | IS LEARNER | RAFT TERM | RAFT INDEX | RAFT APPLIED INDEX | ERRORS |
+------------------------+------------------+---------+---------+-----------+------------+-----------+------------+--------------------+--------+
| http://127.0.0.1:46011 | 76598c21d75be10b |  3.4.23 |   20 kB |      true |      false |         2 |          6 |                  6 |        |
+------------------------+------------------+---------+---------+-----------+------------+-----------+------------+--------------------+--------+
"""  # noqa: E501
STATUS_TABLE_B = """\
+-----------------------+------------------+---------+---------+-----------+------------+-----------+------------+--------------------+--------+
|       ENDPOINT        |        ID        | VERSION | DB SIZE | IS LEADER | IS LEARNER | RAFT TERM | RAFT INDEX | RAFT APPLIED INDEX | ERRORS |
+-----------------------+------------------+---------+---------+-----------+------------+-----------+------------+--------------------+--------+
| http://127.0.0.1:2379 | 8e9e05c52164694d |  3.4.23 |  123 kB |      true |      false |        11 |        104 |                104 |        |
+-----------------------+------------------+---------+---------+-----------+------------+-----------+------------+--------------------+--------+
"""  # noqa: E501


def test_endpoint_status_table_normalises_equal() -> None:
    a = _norm(STATUS_TABLE_A, RUN_A, "endpoint status -w table")
    b = _norm(STATUS_TABLE_B, RUN_B, "endpoint status -w table")
    assert a == b
    assert "| http://<client-0> | <member-0> | 3.4.23 | <n> | true | false | <n> | <n> | <n> |" in a


def test_a_changed_version_string_or_leader_flag_stays_visible() -> None:
    changed = STATUS_TABLE_B.replace(" 3.4.23 ", " 3.5.00 ").replace(
        "|      true |", "|     false |"
    )
    a = _norm(STATUS_TABLE_A, RUN_A, "endpoint status -w table")
    b = _norm(changed, RUN_B, "endpoint status -w table")
    assert "3.5.00" in b and "| false | false |" in b and a != b


def test_endpoint_status_simple_masks_only_volatile_positions() -> None:
    a = "http://127.0.0.1:46011, 76598c21d75be10b, 3.4.23, 20 kB, true, false, 2, 6, 6, \n"
    b = "http://127.0.0.1:2379, 8e9e05c52164694d, 3.4.23, 25 kB, true, false, 3, 9, 9, \n"
    assert _norm(a, RUN_A, "endpoint status") == _norm(b, RUN_B, "endpoint status")
    # The same masking does not apply to other commands' simple output.
    assert _norm("a, b, c, 4, e, f, 7, 8, 9\n", RUN_A, "get a") == "a, b, c, 4, e, f, 7, 8, 9\n"


def test_json_header_keeps_revision_and_masks_term() -> None:
    a = '{"header":{"cluster_id":560152100402662137,"member_id":8528001446377677067,"revision":3,"raft_term":2},"kvs":[{"key":"Zm9v","create_revision":2,"mod_revision":3,"version":2,"value":"YmFy"}],"count":1}'  # noqa: E501
    b = a.replace("560152100402662137", str(RUN_B.cluster_id))
    b = b.replace("8528001446377677067", str(RUN_B.member_ids[0])).replace(
        '"raft_term":2', '"raft_term":7'
    )
    na, nb = _norm(a, RUN_A, "get foo -w json"), _norm(b, RUN_B, "get foo -w json")
    assert na == nb
    assert '"cluster_id":<cluster>,"member_id":<member-0>,"revision":3,"raft_term":<n>' in na
    for field in ['"revision":3', '"mod_revision":3', '"version":2', '"value":"YmFy"', '"count":1']:
        assert field in na
        other = field.replace("3", "4").replace("2", "5").replace("YmFy", "YmF6").replace("1", "6")
        assert _norm(a.replace(field, other), RUN_A, "get foo -w json") != na, field


def test_fields_output_masks_term_index_size_hash_but_not_revision() -> None:
    a = '"ClusterID" : 560152100402662137\n"MemberID" : 8528001446377677067\n"Revision" : 3\n"RaftTerm" : 2\n"Hash" : 4071776589\n"DBSize" : 20480\n"RaftIndex" : 6\n'  # noqa: E501
    na = _norm(a, RUN_A, "endpoint hashkv -w fields")
    assert na == (
        '"ClusterID" : <cluster>\n"MemberID" : <member-0>\n"Revision" : 3\n"RaftTerm" : <n>\n'
        '"Hash" : <n>\n"DBSize" : <n>\n"RaftIndex" : <n>\n'
    )
    assert _norm(a.replace('"Revision" : 3', '"Revision" : 4'), RUN_A, "x -w fields") != na


def test_member_ids_are_replaced_as_whole_tokens_only() -> None:
    member = RUN_A.member_ids[0]
    text = f"{member:x}, started\nvalue-{member}9\n{member}\n"
    assert (
        _norm(text, RUN_A, "member list") == f"<member-0>, started\nvalue-{member}9\n<member-0>\n"
    )


def test_padded_member_ids_normalise_like_full_width_ones() -> None:
    # etcdctl prints "Member %16x removed from cluster %16x": an id with a zero top nibble
    # comes out with two spaces after "Member", one a full-width id with one.
    short = ClusterFacts((1,), (2,), (0x0CD38E1A74885EA2,), 0x0C35432BF03B3F54)
    text_a = f"Member {RUN_A.member_ids[0]:16x} removed from cluster {RUN_A.cluster_id:16x}\n"
    text_b = f"Member {short.member_ids[0]:16x} removed from cluster {short.cluster_id:16x}\n"
    assert text_b.startswith("Member  cd38e1a74885ea2 ")
    expected = "Member <member-0> removed from cluster <cluster>\n"
    assert _norm(text_a, RUN_A, "member remove x") == expected
    assert _norm(text_b, short, "member remove x") == expected
    # Only padding goes: the ", " between simple-format cells stays, whatever the id's width.
    status = "http://127.0.0.1:1, cd38e1a74885ea2, 3.4.23, 20 kB, true, false, 2, 6, 6, \n"
    assert _norm(status, short, "endpoint status") == (
        "http://<client-0>, <member-0>, 3.4.23, <n>, true, false, <n>, <n>, <n>, \n"
    )


def test_captured_ids_in_hex_and_decimal() -> None:
    facts = ClusterFacts((1,), (2,), (3,), 4, captured=(("LEASE", "694d7c4b1d7e2d0a"),))
    decimal = str(0x694D7C4B1D7E2D0A)
    text = f'lease 694d7c4b1d7e2d0a granted\n{{"ID":{decimal},"TTL":60}}\n'
    assert (
        _norm(text, facts, "lease grant 60") == 'lease <LEASE> granted\n{"ID":<LEASE>,"TTL":60}\n'
    )
    facts = ClusterFacts((1,), (2,), (3,), 4, captured=(("L", str(0x00AB)),))
    assert _norm("00000000000000ab\n171\n", facts, "lease list") == "<L>\n<L>\n"


def test_durations_timestamps_and_remaining_ttl() -> None:
    health = "http://127.0.0.1:46011 is healthy: successfully committed proposal: took = 1.6ms"
    assert _norm(health, RUN_A, "endpoint health").endswith("took = <duration>")
    warn = '{"level":"warn","ts":"2026-11-21T21:04:24.642Z","target":"endpoint://client-9f8870e9-0c80-4729-be9d-5462ccbe422b/127.0.0.1:46011","error":"rpc error: code = OutOfRange desc = etcdserver: mvcc: required revision has been compacted"}'  # noqa: E501
    out = _norm(warn, RUN_A, "get a --rev=2")
    assert '"ts":"<ts>"' in out and "client-<uuid>/<client-0>" in out
    assert "code = OutOfRange desc = etcdserver: mvcc: required revision has been compacted" in out
    ttl = "lease 694d7c4b1d7e2d0a granted with TTL(600s), remaining(598s)"
    assert _norm(ttl, RUN_A, "lease timetolive x").endswith("TTL(600s), remaining(<s>)")
    # TTL is only a countdown in timetolive; elsewhere (lease grant) it is the granted TTL.
    assert _norm('{"TTL":60}', RUN_A, "lease grant 60 -w json") == '{"TTL":60}'


def test_normalising_twice_changes_nothing() -> None:
    for text, command in [
        (STATUS_TABLE_A, "endpoint status -w table"),
        ("http://127.0.0.1:46011, 4071776589\n", "endpoint hashkv"),
    ]:
        once = _norm(text, RUN_A, command)
        assert _norm(once, RUN_A, command) == once


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        ("get a -w json", (), (("get",), "json")),
        ("endpoint status --write-out=table", (), (("endpoint", "status"), "table")),
        ("member list", (("ETCDCTL_WRITE_OUT", "fields"),), (("member", "list"), "fields")),
        ("put a b", (), (("put",), "simple")),
    ],
)
def test_invocation_reads_command_and_format(
    args: str, env: tuple[tuple[str, str], ...], expected: tuple[tuple[str, ...], str]
) -> None:
    how = Invocation.of(args.split(), env)
    assert (how.command, how.write_out) == expected


def test_scenario_file_format(tmp_path: Path) -> None:
    path = tmp_path / "probe.yaml"
    path.write_text(
        "description: probe\n"
        "steps:\n"
        "  - run: put 'a b' c\n"
        "    env: {ETCDCTL_WRITE_OUT: json}\n"
        "    rc: 0\n"
        "  - run: txn\n"
        '    stdin: {prefix: "\\n", line: "put k{i} v\\n", count: 3, suffix: "\\n\\n"}\n'
        "  - run: lease grant 60\n"
        '    capture: {LEASE: "lease ([0-9a-f]+) granted"}\n'
    )
    scenario = load_scenario(path)
    first, txn, grant = scenario.steps
    assert first.args == ("put", "a b", "c") and first.env == (("ETCDCTL_WRITE_OUT", "json"),)
    assert txn.stdin == "\nput k0 v\nput k1 v\nput k2 v\n\n\n"
    assert grant.capture == (("LEASE", "lease ([0-9a-f]+) granted"),)
    assert substitute("--lease=${LEASE}", {"LEASE": "ab"}) == "--lease=ab"
    with pytest.raises(ScenarioError, match="before any step captured"):
        substitute("${OTHER}", {"LEASE": "ab"})


@pytest.mark.parametrize(
    "body",
    [
        "steps: []\n",
        "steps:\n  - run: get a --endpoints=http://x\n",
        "steps:\n  - run: get a\n    bogus: 1\n",
        "steps:\n  - run: get a\n    capture: {lower: 'x(y)'}\n",
        "steps:\n  - run: get a\n    capture: {X: 'no group'}\n",
        "steps:\n  - run: put a\n    stdin: {line: x, count: 99999999}\n",
    ],
)
def test_malformed_scenarios_are_refused(tmp_path: Path, body: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    with pytest.raises(ScenarioError):
        load_scenario(path)
