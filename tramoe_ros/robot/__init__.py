"""The real dual-arm robot (two Koch arms on Dynamixel servos): the control table, Protocol 2.0 framing, a servo
emulator, the driver, calibration, cameras and leader -> follower teleoperation. No ROS: the arm node's `dynamixel`
backend is `tramoe_ros.ros.dynamixel_backend`, the robot benchmark `tramoe_ros.bench.robot`."""
