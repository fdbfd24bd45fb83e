-- When each periodic background job (housekeeping, the audit sealer, …)
-- last started, so that each runs once per interval (db.RunDue). SQLite
-- serves one node; the table keeps the schemas alike.
CREATE TABLE cluster_jobs (
    name        TEXT PRIMARY KEY,
    last_run_at TIMESTAMP NOT NULL
);
