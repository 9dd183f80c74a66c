"""hive-forge: the agents' Forgejo CLI."""
