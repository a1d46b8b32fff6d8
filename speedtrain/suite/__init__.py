"""The benchmark suite: the pytest plugin, its session, seeds, profiles, output and scale-out."""
