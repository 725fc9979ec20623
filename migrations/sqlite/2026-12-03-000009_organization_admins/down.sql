DROP TABLE organization_admins;
