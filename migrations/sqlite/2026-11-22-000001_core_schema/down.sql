DROP TABLE editions;
DROP TABLE builds;
DROP TABLE products;
DROP TABLE organizations;
