"""The checkpoint engine, written once above the stores' byte-level primitives.

codec (canonical JSON, checksums), tree (content-addressed state objects), delta (structural changes),
history (a session's chain: commit, load, packs), artifacts, migrations, maintenance (fsck, gc, retention),
bundle (export/import), open_sessions (the index workers read), paths (state paths and assignments) and
summary (what front ends show of a session).
"""
