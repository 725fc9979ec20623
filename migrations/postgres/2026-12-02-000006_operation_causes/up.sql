-- Who or what caused each operation: the user (and API token) whose request queued it, the
-- operation whose outcome did, or the command (`keeper adopt`, `keeper verify --repair`).
-- NULL for operations queued before this column existed.
ALTER TABLE operations ADD COLUMN caused_by TEXT;
