"""The demo: a research-and-write agent (`agent`), its offline outside world (`world`) and its corpus files."""
