-- Every number below build_slug_floor is a build slug of the product already: the next automatic
-- build slug is searched from there, not from every slug the product ever used (which grew with
-- its history). NULL: not known yet; the first automatic slug after this migration finds it once.
ALTER TABLE products ADD COLUMN build_slug_floor BIGINT;
