"""Point-track labels (no ROS): exact ground-truth tracks and visibility from the simulator (`sim_tracks`)."""
