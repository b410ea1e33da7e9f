CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE keys (
    -- Byte order, as in SQLite, so pagination is the same on both stores.
    name                   TEXT COLLATE "C" PRIMARY KEY,
    key_type               TEXT NOT NULL,
    state                  TEXT NOT NULL,
    latest_version         BIGINT NOT NULL,
    min_decryption_version BIGINT NOT NULL,
    exportable             BOOLEAN NOT NULL,
    rotate_every_secs      BIGINT,
    created_at             BIGINT NOT NULL,
    rotated_at             BIGINT NOT NULL,
    destroy_at             BIGINT,
    revision               BIGINT NOT NULL
);

CREATE TABLE key_versions (
    key_name             TEXT COLLATE "C" NOT NULL REFERENCES keys (name),
    version              BIGINT NOT NULL,
    created_at           BIGINT NOT NULL,
    wrapped_material     BYTEA,
    public_key           BYTEA,
    encryptions_reserved BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (key_name, version)
);

-- The sweep for scheduled destructions reads only the keys that have one.
CREATE INDEX keys_destroy_at ON keys (destroy_at) WHERE destroy_at IS NOT NULL;
