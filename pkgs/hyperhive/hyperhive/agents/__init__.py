"""Who exists: agent names, their host paths, the agent table and its registry."""
