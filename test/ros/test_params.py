"""Parameter declaration and validation on real rclpy nodes: YAML-natural values accepted, every problem listed
in one error, runtime changes allowed only where a node handles them."""
import pytest
import rclpy
from rclpy.context import Context
from rclpy.node import Node
from rclpy.parameter import Parameter

from tramoe_ros.ros.errors import ParameterError
from tramoe_ros.ros.params import Param, allow_runtime_changes, declare_params, non_negative, one_of, positive

PARAMS = [
    Param("rate_hz", 20.0, "rate", positive),
    Param("views", ["agentview"], "views"),
    Param("joints", [], "joints", kind="str[]"),
    Param("mode", "realtime", "mode", one_of("realtime", "lockstep")),
    Param("enabled", False, "switch"),
    Param("steps", 600, "budget", non_negative),
]


@pytest.fixture
def context():
    context = Context()
    rclpy.init(context=context)
    yield context
    rclpy.try_shutdown(context=context)


def node_with(context, overrides: dict) -> Node:
    return Node("param_test", context=context,
                parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])


def test_defaults(context):
    values = declare_params(node_with(context, {}), PARAMS)
    assert values == {"rate_hz": 20.0, "views": ["agentview"], "joints": [], "mode": "realtime", "enabled": False,
                      "steps": 600}


def test_yaml_natural_values_are_accepted(context):
    # An integer for a float, and the empty list a YAML `[]` becomes (an unset parameter).
    node = Node("param_test", context=context, cli_args=["--ros-args", "-p", "rate_hz:=10", "-p", "views:=[]",
                                                         "-p", "joints:=[a, b]"])
    values = declare_params(node, PARAMS)
    assert values["rate_hz"] == 10.0 and isinstance(values["rate_hz"], float)
    assert values["views"] == [] and values["joints"] == ["a", "b"]


def test_every_problem_is_listed_with_the_node_name(context):
    node = node_with(context, {"rate_hz": -1.0, "mode": "fast", "enabled": "yes", "steps": 1.5})
    with pytest.raises(ParameterError) as error:
        declare_params(node, PARAMS)
    message = str(error.value)
    assert message.startswith("param_test: invalid parameters:")
    assert "rate_hz: must be > 0, got -1.0" in message
    assert "mode: must be one of realtime, lockstep, got 'fast'" in message
    assert "enabled: must be true or false, got 'yes'" in message
    assert "steps: must be an integer, got 1.5" in message


def test_runtime_changes_only_where_handled(context):
    node = node_with(context, {})
    declare_params(node, PARAMS)
    seen = []
    allow_runtime_changes(node, PARAMS, {"enabled": seen.append})
    assert node.set_parameters([Parameter("enabled", value=True)])[0].successful
    assert seen == [True]
    refused = node.set_parameters([Parameter("rate_hz", value=5.0)])[0]
    assert not refused.successful and "read at start only" in refused.reason
    wrong = node.set_parameters([Parameter("enabled", value="on")])[0]
    assert not wrong.successful and "must be true or false" in wrong.reason
    assert seen == [True]
