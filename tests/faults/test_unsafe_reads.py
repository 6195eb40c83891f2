"""The checker and the nemesis catch a real violation: a serializable read from a cut-off member.

Scripted so that the stale read is certain, not a matter of luck: a value is written and seen
by the follower that will be cut off; the follower's peer links are cut (its clients still reach
it); a new value is written and acknowledged through the majority; then the cut-off follower is
read. A serializable read answers from its local store -- the old value, after the new one was
acknowledged -- and the checker must call the history not linearizable, naming that read. The
same steps with a linearizable read must get no answer from the cut-off member (its read cannot
reach a quorum), and the history stays linearizable. Both against real etcd and kvorum.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from kvorum.check.linearizability import Verdict
from kvorum.testing.cluster import Cluster
from tests.e2e.failover.helpers import member_command
from tests.faults.netns import MemberNetwork, netns_unavailable_reason
from tests.faults.runner import check_history
from tests.faults.workload import History, Worker

pytestmark = pytest.mark.timeout(120)

KEY = "k0"
SEEN_WITHIN_S = 10.0


@pytest.mark.parametrize("serializable", [True, False], ids=["serializable", "linearizable"])
@pytest.mark.parametrize("target", ["etcd", "kvorum"])
def test_read_from_a_cut_off_member(target: str, serializable: bool, tmp_path: Path) -> None:
    command = member_command(target)
    reason = netns_unavailable_reason()
    if reason is not None:
        pytest.skip(f"network partitions need network namespaces: {reason}")
    history = History()
    with (
        MemberNetwork(3) as net,
        Cluster(command, 3, base_dir=tmp_path, member_hosts=net.hosts) as c,
    ):
        leader = c.wait_for_leader()
        cut_off = (leader + 1) % 3
        addresses = [m.spec.client_address for m in c.members]
        idle = threading.Event()  # never set: these workers are driven by hand, not run()
        writer = Worker("writer", addresses, history, idle, keys=[KEY], seed=0,
                        start_member=leader, pinned=True)  # fmt: skip
        reader = Worker("reader", addresses, history, idle, keys=[KEY], seed=0,
                        start_member=cut_off, pinned=True, serializable=serializable)  # fmt: skip
        # Polls the follower until it shows "old", off the record: a serializable read there
        # may well be stale already (that is the point), but the one this test is about
        # comes after the cut.
        poller = Worker("poller", addresses, History(), idle, keys=[KEY], seed=0,
                        start_member=cut_off, pinned=True, serializable=serializable)  # fmt: skip
        try:
            assert writer.write(KEY, "old") == "ok"
            # The cut-off member must hold "old" before the cut (a linearizable read there
            # proves it applied it; a serializable one shows it directly).
            deadline = time.monotonic() + SEEN_WITHIN_S
            while not (poller.read(KEY) == "ok" and poller.seen.get(KEY) == "old"):
                assert time.monotonic() < deadline, "the follower never showed 'old'"
                time.sleep(0.05)
            net.isolate([cut_off])
            assert writer.write(KEY, "new") == "ok", "the majority must still take writes"
            outcome = reader.read(KEY)
        finally:
            for worker in (writer, reader, poller):
                worker.endpoints.close()
            net.heal()

    path = tmp_path / "history.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in history.records))
    result, report = check_history(path)
    last = history.records[-1]
    if serializable:
        assert outcome == "ok" and last["output"] == "old", "the stale read did not happen"
        assert result.verdict is Verdict.ILLEGAL, report
        (violation,) = result.violations
        assert violation.key == KEY
        assert violation.stuck.process == "reader" and violation.stuck.output == "old", report
        print(report)
    else:
        assert outcome == "fail", f"a cut-off member answered a linearizable read: {last}"
        assert result.verdict is Verdict.OK, report
