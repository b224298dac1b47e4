-- Blueprint versions stored immutably (issue 9): the manifest, template and extra files of each
-- version, with the digest requests record. Only `state` (and `updated_at`) ever change; each
-- change has an audit record with before and after.
CREATE TABLE blueprint_versions (
    slug TEXT NOT NULL,
    version TEXT NOT NULL,
    major BIGINT NOT NULL,
    minor BIGINT NOT NULL,
    patch BIGINT NOT NULL,
    manifest TEXT NOT NULL,
    template TEXT NOT NULL,
    -- The folder's extra JSON files as a JSON array of [name, text] pairs, in name order.
    files_json TEXT NOT NULL DEFAULT '[]',
    digest TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('draft', 'published', 'deprecated', 'retired')),
    -- `bundled` (imported from the catalog folder at start) or `upload` (an admin's draft).
    source TEXT NOT NULL,
    created_by TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (slug, version)
);
CREATE INDEX blueprint_versions_order ON blueprint_versions(slug, major, minor, patch);
CREATE INDEX blueprint_versions_state ON blueprint_versions(state, slug);
-- Whether a version still has stacks on it (retiring is refused while it has).
CREATE INDEX service_requests_blueprint_version
    ON service_requests(blueprint_slug, blueprint_version, status);
