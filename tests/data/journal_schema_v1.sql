-- The journal database gate-scanner created at journal schema_version 1, frozen for migration tests.
CREATE TABLE journal (
	seq INTEGER NOT NULL, 
	scan_id VARCHAR NOT NULL, 
	gate_id VARCHAR NOT NULL, 
	event_id VARCHAR, 
	ticket_id VARCHAR, 
	barcode VARCHAR NOT NULL, 
	direction VARCHAR NOT NULL, 
	result VARCHAR NOT NULL, 
	reason VARCHAR NOT NULL, 
	message VARCHAR NOT NULL, 
	scanned_at VARCHAR NOT NULL, 
	offline BOOLEAN NOT NULL, 
	latency_ms FLOAT, 
	upload_state VARCHAR NOT NULL, 
	upload_error TEXT, 
	uploaded_at VARCHAR, 
	actuated_at VARCHAR, 
	passed BOOLEAN, 
	PRIMARY KEY (seq), 
	UNIQUE (scan_id)
);
CREATE TABLE journal_meta (
	"key" VARCHAR NOT NULL, 
	value TEXT NOT NULL, 
	PRIMARY KEY ("key")
);
CREATE INDEX ix_journal_ticket_seq ON journal (ticket_id, seq);
CREATE INDEX ix_journal_upload ON journal (upload_state, event_id, seq);
INSERT INTO journal_meta (key, value) VALUES ('schema_version', '1');
