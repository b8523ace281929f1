-- revision: 5c1e0a7d2b94
-- down_revision: none
-- message: initial schema: users, audio files, transcriptions, diarizations, exports, jobs
-- up

-- Keeps updated_at current on every UPDATE of the tables that have it.
CREATE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

-- A Telegram user (or a web user who linked their Telegram account).
CREATE TABLE users (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    telegram_id   bigint NOT NULL UNIQUE CHECK (telegram_id > 0),
    username      text CHECK (char_length(username) <= 64),
    first_name    text NOT NULL DEFAULT '' CHECK (char_length(first_name) <= 256),
    last_name     text NOT NULL DEFAULT '' CHECK (char_length(last_name) <= 256),
    language_code text NOT NULL DEFAULT 'en' CHECK (language_code ~ '^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$'),
    role          text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin', 'blocked')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER users_updated_at BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- An uploaded recording, kept in the object store until expires_at.
CREATE TABLE audio_files (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id          bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    bucket            text NOT NULL CHECK (bucket ~ '^[A-Za-z0-9_-]+$'),
    object_name       text NOT NULL CHECK (char_length(object_name) BETWEEN 1 AND 1024),
    original_filename text NOT NULL DEFAULT '' CHECK (char_length(original_filename) <= 255),
    mime_type         text NOT NULL CHECK (mime_type ~ '^[a-z]+/[A-Za-z0-9.+-]+$'),
    size_bytes        bigint NOT NULL CHECK (size_bytes > 0 AND size_bytes <= 209715200),
    duration_ms       integer CHECK (duration_ms >= 0),
    sha256            bytea NOT NULL CHECK (octet_length(sha256) = 32),
    status            text NOT NULL DEFAULT 'uploaded'
                      CHECK (status IN ('uploading', 'uploaded', 'processing', 'processed', 'failed', 'deleted')),
    expires_at        timestamptz NOT NULL DEFAULT now() + interval '24 hours',
    deleted_at        timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (bucket, object_name),
    CHECK ((status = 'deleted') = (deleted_at IS NOT NULL))
);
CREATE TRIGGER audio_files_updated_at BEFORE UPDATE ON audio_files FOR EACH ROW EXECUTE FUNCTION set_updated_at();
-- A user's recent files (the bot's /history, the web app's list).
CREATE INDEX audio_files_owner_recent ON audio_files (owner_id, created_at DESC) WHERE deleted_at IS NULL;
-- Files due for deletion (the cleanup job: expires_at <= now() and not yet deleted).
CREATE INDEX audio_files_due_for_deletion ON audio_files (expires_at) WHERE deleted_at IS NULL;

-- A transcription of an audio file by one model (several models may transcribe the same file).
CREATE TABLE transcriptions (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    audio_file_id uuid NOT NULL REFERENCES audio_files (id) ON DELETE CASCADE,
    model         text NOT NULL CHECK (char_length(model) BETWEEN 1 AND 100),
    language      text CHECK (language ~ '^[a-z]{2,3}$'),
    status        text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    full_text     text,
    error         text,
    started_at    timestamptz,
    finished_at   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (finished_at IS NULL OR started_at IS NULL OR finished_at >= started_at),
    CHECK (status <> 'succeeded' OR full_text IS NOT NULL),
    CHECK (status <> 'failed' OR error IS NOT NULL)
);
CREATE TRIGGER transcriptions_updated_at BEFORE UPDATE ON transcriptions FOR EACH ROW EXECUTE FUNCTION set_updated_at();
-- A file's transcriptions (and the foreign key's cascade from audio_files).
CREATE INDEX transcriptions_audio_file ON transcriptions (audio_file_id, created_at DESC);

-- The transcript in time order; speaker_label is filled from the diarization when one is merged.
CREATE TABLE transcription_segments (
    transcription_id uuid NOT NULL REFERENCES transcriptions (id) ON DELETE CASCADE,
    position         integer NOT NULL CHECK (position >= 0),
    start_ms         integer NOT NULL CHECK (start_ms >= 0),
    end_ms           integer NOT NULL,
    text             text NOT NULL,
    speaker_label    text CHECK (char_length(speaker_label) <= 64),
    confidence       real CHECK (confidence >= 0 AND confidence <= 1),
    -- The segments of a transcription in order: the primary key is the index that serves it.
    PRIMARY KEY (transcription_id, position),
    CHECK (end_ms >= start_ms)
);

-- Who spoke when (pyannote), for one audio file.
CREATE TABLE diarizations (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    audio_file_id uuid NOT NULL REFERENCES audio_files (id) ON DELETE CASCADE,
    model         text NOT NULL CHECK (char_length(model) BETWEEN 1 AND 100),
    status        text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    speaker_count integer CHECK (speaker_count >= 0),
    error         text,
    started_at    timestamptz,
    finished_at   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (finished_at IS NULL OR started_at IS NULL OR finished_at >= started_at),
    CHECK (status <> 'failed' OR error IS NOT NULL)
);
CREATE TRIGGER diarizations_updated_at BEFORE UPDATE ON diarizations FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE INDEX diarizations_audio_file ON diarizations (audio_file_id, created_at DESC);

CREATE TABLE diarization_segments (
    diarization_id uuid NOT NULL REFERENCES diarizations (id) ON DELETE CASCADE,
    position       integer NOT NULL CHECK (position >= 0),
    start_ms       integer NOT NULL CHECK (start_ms >= 0),
    end_ms         integer NOT NULL,
    speaker_label  text NOT NULL CHECK (char_length(speaker_label) BETWEEN 1 AND 64),
    confidence     real CHECK (confidence >= 0 AND confidence <= 1),
    PRIMARY KEY (diarization_id, position),
    CHECK (end_ms >= start_ms)
);

-- A transcript exported to a file in the object store.
CREATE TABLE exports (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    transcription_id uuid NOT NULL REFERENCES transcriptions (id) ON DELETE CASCADE,
    -- The diarization whose speakers label the export, if any; the export stays if it is deleted.
    diarization_id   uuid REFERENCES diarizations (id) ON DELETE SET NULL,
    format           text NOT NULL CHECK (format IN ('txt', 'srt', 'vtt', 'docx', 'json')),
    bucket           text CHECK (bucket ~ '^[A-Za-z0-9_-]+$'),
    object_name      text CHECK (char_length(object_name) BETWEEN 1 AND 1024),
    status           text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    error            text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (status <> 'succeeded' OR (bucket IS NOT NULL AND object_name IS NOT NULL))
);
CREATE TRIGGER exports_updated_at BEFORE UPDATE ON exports FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE INDEX exports_transcription ON exports (transcription_id, format);

-- Work for the GPU workers and the service's own jobs; the queue itself is JetStream, this is
-- the durable record (attempts, errors) the bot and API read.
CREATE TABLE processing_jobs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('transcribe', 'diarize', 'export', 'cleanup')),
    status        text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    audio_file_id uuid REFERENCES audio_files (id) ON DELETE CASCADE,
    attempts      integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts  integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    last_error    text,
    payload       jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(payload) = 'object'),
    run_after     timestamptz NOT NULL DEFAULT now(),
    locked_by     text,
    locked_at     timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    CHECK (attempts <= max_attempts),
    CHECK ((status = 'running') = (locked_at IS NOT NULL))
);
CREATE TRIGGER processing_jobs_updated_at BEFORE UPDATE ON processing_jobs FOR EACH ROW EXECUTE FUNCTION set_updated_at();
-- Jobs by status for the dashboards and the admin commands.
CREATE INDEX processing_jobs_status ON processing_jobs (status, created_at);
-- A file's jobs (and the foreign key's cascade).
CREATE INDEX processing_jobs_audio_file ON processing_jobs (audio_file_id) WHERE audio_file_id IS NOT NULL;

-- down
DROP TABLE processing_jobs;
DROP TABLE exports;
DROP TABLE diarization_segments;
DROP TABLE diarizations;
DROP TABLE transcription_segments;
DROP TABLE transcriptions;
DROP TABLE audio_files;
DROP TABLE users;
DROP FUNCTION set_updated_at();
