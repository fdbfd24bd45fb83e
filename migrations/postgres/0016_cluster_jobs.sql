-- When each periodic background job (housekeeping, the audit sealer, …)
-- last started anywhere in the cluster, so that with many nodes each job
-- runs once per interval rather than once per node (db.RunDue). The
-- times are the database server's (now()), not the nodes'.
CREATE TABLE cluster_jobs (
    name        TEXT PRIMARY KEY,
    last_run_at TIMESTAMPTZ NOT NULL
);
