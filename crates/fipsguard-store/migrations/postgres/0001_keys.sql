CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE keys (
    name                   TEXT PRIMARY KEY,
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
    key_name             TEXT NOT NULL REFERENCES keys (name),
    version              BIGINT NOT NULL,
    created_at           BIGINT NOT NULL,
    wrapped_material     BYTEA,
    public_key           BYTEA,
    encryptions_reserved BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (key_name, version)
);
