DROP INDEX operations_unfinished_move_idx;
DROP INDEX operations_edition_id_idx;
CREATE INDEX operations_edition_id_idx ON operations (edition_id);
