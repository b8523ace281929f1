-- revision: 9b3f61c0e2a8
-- down_revision: 5c1e0a7d2b94
-- message: index the runnable jobs without blocking writers
-- transactional: false
-- up

-- The workers' next-job query: queued jobs of their kind whose time has come, oldest first
--   SELECT … FROM processing_jobs WHERE kind = $1 AND status = 'queued' AND run_after <= now()
--   ORDER BY run_after LIMIT 10 FOR UPDATE SKIP LOCKED
-- Built CONCURRENTLY, so a deploy on a live table does not block the jobs being written.
CREATE INDEX CONCURRENTLY processing_jobs_runnable ON processing_jobs (kind, run_after) WHERE status = 'queued';

-- down
DROP INDEX CONCURRENTLY processing_jobs_runnable;
