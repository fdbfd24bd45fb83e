-- Search by the start of a name (the admin API's ?name=): byte order ("C"
-- collation), so that a prefix is a range of the index and pages follow it.
CREATE INDEX users_display_name ON users (display_name COLLATE "C", id);
