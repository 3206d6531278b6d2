"""LIBERO simulation (no ROS): the environment wrapper (`libero_env`), a scripted expert (`expert`), MuJoCo geometry
helpers (`geometry`) and demonstration collection with ground-truth tracks (`collect`)."""
