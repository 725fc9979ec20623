-- GET /editions/<id> reads the edition's newest operation and its newest unfinished rebuild or
-- rename (db::reads). With an index on edition_id alone, both read every operation the edition
-- ever had: 5,000 past rebuilds made that statement 9 times slower on PostgreSQL. These two
-- indexes answer both from the end of an index, whatever the history.
DROP INDEX operations_edition_id_idx;
CREATE INDEX operations_edition_id_idx ON operations (edition_id, id);
-- The condition is db::reads' UNFINISHED_MOVE_SQL, written the same, so that the planners see
-- that the statement implies it (a unit test there compares the two).
CREATE INDEX operations_unfinished_move_idx ON operations (edition_id, id)
    WHERE state IN ('READY', 'WORKING') AND kind IN ('rebuild_edition', 'rename_edition');
