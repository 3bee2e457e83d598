"""Attacks on the scale-out work (issue 13): named destinations, plan, queue, work. Each test
stands for a finding; real Azurite queue, table and blob, real emulators, real processes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from azure.storage.queue import QueueClient

from shared.windows import WINDOW
from shared.work_queue import MAX_DEQUEUE_COUNT, WorkQueue
from shared.work_runner import worker_loop
from tests.support.work import Fleet

W0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
NOW = W0 + 3 * WINDOW + timedelta(seconds=61)


@pytest.fixture
def fleet(azurite, tmp_path):
    f = Fleet(azurite, tmp_path, ["default"], W0, windows=1, lease=2)
    yield f
    f.close()


def test_a_message_that_is_not_base64_goes_to_poison_and_work_exits(fleet, azurite):
    """A message put on the queue without base64 (Storage Explorer, `az storage message put`)
    must end in the poison queue after maxDequeueCount deliveries, as the host does, and not keep
    `work` busy forever."""
    queue = WorkQueue.of(fleet.app)
    queue.ensure()
    raw = QueueClient.from_connection_string(azurite.connection_string, fleet.queue)
    raw.send_message("{not base64 at all}")  # no encode policy: the text as is
    raw.close()
    import threading

    done: list[int] = []
    t = threading.Thread(target=lambda: done.append(worker_loop(fleet.app, idle_exit=2)), daemon=True)
    t.start()
    t.join(timeout=(MAX_DEQUEUE_COUNT + 3) * (1 + 2) + 20)
    try:
        assert done == [0], "work never exited: the undecodable message keeps coming back"
        assert queue.depth().poison == 1
    finally:
        queue.close()


def test_the_queue_depth_reads_a_queue_holding_a_message_that_is_not_base64(fleet, azurite):
    """plan (its gauges) and status read the queue's depth: one hand-put message must not break them."""
    queue = WorkQueue.of(fleet.app)
    queue.ensure()
    for name in (fleet.queue, queue.poison_name):
        raw = QueueClient.from_connection_string(azurite.connection_string, name)
        raw.send_message("hand-put, not base64 ~~")
        raw.close()
    try:
        depth = queue.depth()
        assert (depth.messages, depth.poison) == (1, 1)
        assert [m.content for m in queue.poison_messages()] == ["hand-put, not base64 ~~"]
    finally:
        queue.close()
