"""The ROS 2 nodes, one per file: each a Node class (composable in one process, see tramoe_ros.ros.compose) and a
console script `main()`. They are thin: the work is done by the core (models, sim) and tramoe_ros.ros."""
