"""CPU sharing: a node's callback thread can move to idle priority (only that thread), and the torch thread count is
set per process."""
import os
import threading

import pytest
import torch

from tramoe_ros.ros.cpu_share import BackgroundThread, set_torch_threads


def scheduling() -> tuple[int, int]:
    thread = threading.get_native_id()
    return os.sched_getscheduler(thread), os.getpriority(os.PRIO_PROCESS, thread)


@pytest.mark.parametrize("enabled", [True, False])
def test_background_moves_only_the_calling_thread_to_idle_priority(enabled):
    before = scheduling()
    seen = {}

    def callback_thread():
        background = BackgroundThread(enabled)
        background.apply()
        background.apply()  # once per thread
        seen["worker"] = scheduling()

    worker = threading.Thread(target=callback_thread)
    worker.start()
    worker.join()
    assert seen["worker"][0] == (os.SCHED_IDLE if enabled else before[0])
    assert scheduling() == before


def test_torch_threads():
    default = torch.get_num_threads()
    try:
        set_torch_threads(1)
        assert torch.get_num_threads() == 1
        set_torch_threads(0)  # keeps the current setting
        assert torch.get_num_threads() == 1
        with pytest.raises(ValueError, match=">= 0"):
            set_torch_threads(-1)
    finally:
        torch.set_num_threads(default)
