"""The real-time bridge's wait for an observation's action counts from the tick's scheduled time, so a tick whose
callback runs late (the previous step overran its period) waits only for what is left of the grace."""
from tramoe_ros.nodes.libero_bridge_node import grace_left_ns

MS = 1_000_000
PERIOD, GRACE = 50 * MS, 20 * MS


def test_a_tick_on_time_waits_the_whole_grace():
    assert grace_left_ns(GRACE, PERIOD, until_next_tick_ns=PERIOD) == GRACE


def test_a_late_tick_waits_only_what_is_left():
    # The callback ran 7 ms after its scheduled time: the next tick is 43 ms away.
    assert grace_left_ns(GRACE, PERIOD, until_next_tick_ns=43 * MS) == 13 * MS


def test_a_tick_later_than_the_grace_does_not_wait():
    assert grace_left_ns(GRACE, PERIOD, until_next_tick_ns=25 * MS) <= 0
    # The timer skipped missed periods: the next tick is due now, this one is a whole period late.
    assert grace_left_ns(GRACE, PERIOD, until_next_tick_ns=0) <= 0
    assert grace_left_ns(GRACE, PERIOD, until_next_tick_ns=-3 * MS) <= 0
