-- Migration 0006: a placeholder on branch h3-i13up only, so this branch's
-- 0007 is in sequence. Issue 11's helper owns 0006; on merge this file is
-- dropped for theirs (two 0006 files fail TestMigrationsEmbeddedInOrder).
SELECT 1;
