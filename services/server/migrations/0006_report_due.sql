-- On a master: slave summaries owed to the report service (see
-- reports/events.rs). Applying a replication batch only marks its slave
-- here, in the same transaction; the summarizer computes one summary for
-- everything marked since it last looked, so a drain of many batches costs
-- a few summaries instead of one per batch.
CREATE TABLE report_due (
    slave_id   text PRIMARY KEY REFERENCES slaves (id) ON DELETE CASCADE,
    -- Marks so far, and the mark the last summary covered.
    wanted     bigint NOT NULL DEFAULT 1,
    done       bigint NOT NULL DEFAULT 0,
    -- Parts owed: the site numbers, every task, some tasks.
    site       boolean NOT NULL DEFAULT false,
    all_tasks  boolean NOT NULL DEFAULT false,
    tasks      uuid[] NOT NULL DEFAULT '{}'
);
