"""Console entry points: parse argv, build Settings, run."""
