"""LIBERO simulation (no ROS): the environment wrapper (`libero_env`), a scripted expert (`expert`) and its rollouts
(`rollout`: perturbed, DAgger), MuJoCo geometry helpers (`geometry`), the simulator's ground-truth point tracks
(`ground_truth_tracks`), demonstration collection (`collect`), the track benchmark's held-out ground truth
(`heldout_tracks`), the policy acting in the simulator (`policy_actor`) and closed-loop evaluation (`evaluate`)."""
