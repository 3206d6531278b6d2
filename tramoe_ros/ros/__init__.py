"""ROS 2 plumbing shared by the nodes: message <-> numpy conversions, QoS profiles, parameter validation,
diagnostics, topic names, bag writing and the graph description (which nodes run in `sim` and `real`)."""
