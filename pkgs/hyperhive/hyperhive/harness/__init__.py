"""The agent harness: turn loop, claude process and stream-json, event bus and store."""
