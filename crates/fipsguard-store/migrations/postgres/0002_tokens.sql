CREATE TABLE tokens (
    id          TEXT COLLATE "C" PRIMARY KEY,
    hash        BYTEA NOT NULL,
    role        TEXT NOT NULL,
    grants      TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT
);
