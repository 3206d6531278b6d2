"""Point-track labels for videos (no ROS): point trackers for videos without simulator ground truth
(`point_trackers`), importing videos as episodes (`video_import`), relabelling episodes with a tracker
(`relabel`) and the trackers' comparison with ground truth (`evaluate_tracker`). The simulator's own exact tracks
are `tramoe_ros.sim.ground_truth_tracks`."""
