-- When each periodic background job (housekeeping, the audit sealer, …)
-- last started across PostgreSQL nodes (db.RunDue). SQLite serves one node
-- and does not use it; the table keeps the two schemas alike.
CREATE TABLE cluster_jobs (
    name        TEXT PRIMARY KEY,
    last_run_at TIMESTAMP NOT NULL
);
