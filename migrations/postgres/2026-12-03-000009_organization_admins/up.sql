-- The permission admin_org, granted per organization: who may read and change an organization's
-- settings over HTTP (`/orgs/`). A NULL organization_id grants every organization, and the
-- creation of new ones. It is kept apart from users.permissions, whose five bits are the
-- original's.
CREATE TABLE organization_admins (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id BIGINT NOT NULL
        CONSTRAINT organization_admins_user_id_fkey REFERENCES users (id) ON DELETE CASCADE,
    organization_id BIGINT
        CONSTRAINT organization_admins_organization_id_fkey REFERENCES organizations (id)
        ON DELETE CASCADE,
    date_created TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc')
);
CREATE UNIQUE INDEX organization_admins_key
    ON organization_admins (user_id, COALESCE(organization_id, 0));
