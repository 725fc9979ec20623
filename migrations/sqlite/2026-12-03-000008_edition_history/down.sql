DROP TABLE edition_history;
