-- What intake took in: the checksum of the immutable copy the pipeline reads, and its key.
ALTER TABLE uploads ADD COLUMN sha256 TEXT;
ALTER TABLE uploads ADD COLUMN content_key TEXT;
