"""sqlite plumbing: one writer thread per database with group commit, plus numbered migrations."""
