"""Sharing a small machine's cores between the graph's nodes (2 cores here run the simulator, the track model and the
policy at 20 Hz).

- `set_torch_threads`: torch's intra-op threads. Several nodes with several threads each oversubscribe the cores,
  and idle OpenMP workers spin while other nodes need the CPU (measured: 10 vs 18 fresh actions per second in the
  real-time sim graph, `docs/ros-graph.md`). The setting is per process: nodes composed in one process (tramoe-up)
  share it.
- `BackgroundThread`: puts the thread that runs a node's callbacks at idle priority (Linux SCHED_IDLE; elsewhere
  the lowest nice value), so work off the control path (the track model, whose output the policy takes a frame
  late in real time; the bag writer, whose messages wait in its queues) only uses the CPU that the work on it
  (the simulator or cameras, the policy, the arm) leaves. Linux schedules threads, not processes, so this works
  for a node alone in its process and for one of several composed in one process.
"""
from __future__ import annotations

import os
import threading

import torch

LOWEST_NICE = 19


def set_torch_threads(threads: int) -> None:
    """Use `threads` intra-op threads in this process; 0 keeps torch's default (one per core)."""
    if threads < 0:
        raise ValueError(f"torch threads must be >= 0, got {threads}")
    if threads:
        torch.set_num_threads(threads)


class BackgroundThread:
    """`apply()`, called from a node's callbacks, moves the calling thread to idle priority once per thread when
    `enabled` (lowering a thread's priority needs no privileges)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._applied: set[int] = set()

    def apply(self) -> None:
        thread = threading.get_native_id()
        if not self.enabled or thread in self._applied:
            return
        self._applied.add(thread)
        if hasattr(os, "SCHED_IDLE"):
            os.sched_setscheduler(thread, os.SCHED_IDLE, os.sched_param(0))
        else:
            os.setpriority(os.PRIO_PROCESS, thread, LOWEST_NICE)
