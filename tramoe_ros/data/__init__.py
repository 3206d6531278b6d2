"""Episode data (no ROS): the HDF5 episode format (`episode`), point sampling (`sampling`), augmentation
(`augment`), torch datasets (`datasets`) and synthetic episodes for tests and demos (`synthetic`)."""
