"""GraphProbe: the fresh-action rate counts steps that applied an action of an observation not acted on before;
repeated and held steps are counted apart, fresh ones as on time or late, and each episode is summarised on its own."""
import os

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"

import pytest  # noqa: E402
import rclpy  # noqa: E402
from rclpy.context import Context  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from tramoe_msgs.msg import EpisodeStatus, PolicyAction  # noqa: E402

from tramoe_ros.ros.conversions import ns_to_stamp  # noqa: E402
from tramoe_ros.ros.probe import GraphProbe  # noqa: E402

PERIOD_NS = 50_000_000


@pytest.fixture
def probe():
    context = Context()
    rclpy.init(context=context)
    node = GraphProbe(context=context)
    yield node
    node.destroy_node()
    rclpy.shutdown(context=context)


def status(episode: int, step: int, action_step: int | None, repeated: bool = False, done: bool = False,
           offset: int = 0):
    """Step `step` of `episode` at 20 Hz; it applied the action computed from step `action_step`'s observation
    (None: a hold), the `offset`-th of its plan."""
    stamp = lambda k: ns_to_stamp(1_000_000_000 * (episode + 1) * 100 + k * PERIOD_NS)  # noqa: E731
    return EpisodeStatus(header=Header(stamp=stamp(step)), episode=episode, step=step, done=done,
                         action_stamp=stamp(action_step) if action_step is not None else ns_to_stamp(0),
                         action_repeated=repeated, action_offset=offset)


def test_fresh_rate_counts_new_actions_only(probe):
    probe._on_status(status(0, 0, None))
    # Step 4 repeats 2's action; step 5 applies 3's own, which came after step 4 (late); 7 and 8 hold; step 11
    # applies what 9's chunk planned for it (its own action came late).
    applied = [0, 1, 2, 2, 3, 5, None, None, 8, 9, 9]
    for step, action in enumerate(applied, start=1):
        probe._on_status(status(0, step, action, repeated=step == 4, done=step == len(applied),
                                offset=1 if step == 11 else 0))
    summary = probe.summary(0)
    assert summary["steps"] == 11 and summary["done"]
    assert summary["repeated_steps"] == 1 and summary["hold_steps"] == 2
    assert summary["on_time_steps"] == 6 and summary["late_steps"] == 1 and summary["planned_steps"] == 1
    # 7 fresh steps over the 10 periods between the first step and the last: (7 - 1) / 0.5 s.
    assert summary["fresh_action_rate_hz"] == pytest.approx(6 / 0.5, abs=0.01)
    assert summary["sim_rate_hz"] == pytest.approx(20.0, abs=0.01)


def test_each_episode_is_summarised_on_its_own(probe):
    for episode, steps in ((0, 5), (1, 3)):
        probe._on_status(status(episode, 0, None))
        for step in range(1, steps + 1):
            probe._on_status(status(episode, step, step - 1, done=step == steps))
            probe._on_action(PolicyAction(header=status(episode, step - 1, None).header))
    assert probe.finished == {0, 1}
    assert probe.summary(0)["steps"] == 5 and probe.summary(0)["actions"] == 5
    assert probe.summary(1)["steps"] == 3 and probe.summary(1)["actions"] == 3
    assert probe.summary()["steps"] == 3  # the last episode by default
