"""Audit: the entries every write leaves (read, filtered and exported: entries), the live log
(stream: a gap-free per-organization seq on the event-log machinery) and retention per plan."""
