"""Point-track labels (no ROS): exact ground-truth tracks and visibility from the simulator (`sim_tracks`), point
trackers for videos without one (`point_trackers`) and their comparison with ground truth (`evaluate_tracker`)."""
