CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

CREATE TABLE keys (
    name                   TEXT PRIMARY KEY,
    key_type               TEXT NOT NULL,
    state                  TEXT NOT NULL,
    latest_version         INTEGER NOT NULL,
    min_decryption_version INTEGER NOT NULL,
    exportable             INTEGER NOT NULL,
    rotate_every_secs      INTEGER,
    created_at             INTEGER NOT NULL,
    rotated_at             INTEGER NOT NULL,
    destroy_at             INTEGER,
    revision               INTEGER NOT NULL
);

CREATE TABLE key_versions (
    key_name             TEXT NOT NULL REFERENCES keys (name),
    version              INTEGER NOT NULL,
    created_at           INTEGER NOT NULL,
    wrapped_material     BLOB,
    public_key           BLOB,
    encryptions_reserved INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (key_name, version)
);

-- The sweep for scheduled destructions reads only the keys that have one.
CREATE INDEX keys_destroy_at ON keys (destroy_at) WHERE destroy_at IS NOT NULL;
