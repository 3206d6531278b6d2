"""The real dual-arm robot (two Koch arms on Dynamixel servos): the control table, Protocol 2.0 framing, a servo
emulator, the driver, calibration, cameras and leader -> follower teleoperation, all without ROS; `arm_backend`
(the arm node's `dynamixel` backend) and the `/joint_states` part of `bench` use ROS."""
