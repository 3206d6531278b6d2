"""Console-script entry points: argument parsing only, the work is done by the core modules."""
