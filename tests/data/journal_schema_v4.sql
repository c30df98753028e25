-- The journal database gate-scanner created at journal schema_version 4, frozen for migration tests.
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
CREATE TABLE mesh_conflicts (
	first_scan_id VARCHAR NOT NULL, 
	second_scan_id VARCHAR NOT NULL, 
	ticket_id VARCHAR NOT NULL, 
	detected_at VARCHAR NOT NULL, 
	PRIMARY KEY (first_scan_id, second_scan_id)
);
CREATE TABLE mesh_scans (
	scan_id VARCHAR NOT NULL, 
	origin VARCHAR NOT NULL, 
	seq INTEGER NOT NULL, 
	hlc VARCHAR NOT NULL, 
	ticket_id VARCHAR, 
	event_id VARCHAR, 
	barcode VARCHAR NOT NULL, 
	direction VARCHAR NOT NULL, 
	result VARCHAR NOT NULL, 
	reason VARCHAR NOT NULL, 
	scanned_at VARCHAR NOT NULL, 
	journal_seq INTEGER, 
	upload_state VARCHAR NOT NULL, 
	PRIMARY KEY (scan_id)
);
CREATE TABLE supervision (
	scan_id VARCHAR NOT NULL, 
	ref_scan_id VARCHAR, 
	role VARCHAR NOT NULL, 
	session VARCHAR, 
	why VARCHAR, 
	note TEXT, 
	PRIMARY KEY (scan_id), 
	UNIQUE (ref_scan_id)
);
CREATE TABLE venue_commands (
	id VARCHAR NOT NULL, 
	issuer VARCHAR NOT NULL, 
	seq INTEGER NOT NULL, 
	scope VARCHAR NOT NULL, 
	target VARCHAR NOT NULL, 
	kind VARCHAR NOT NULL, 
	reason VARCHAR NOT NULL, 
	issued_at VARCHAR NOT NULL, 
	applied_at VARCHAR NOT NULL, 
	envelope TEXT NOT NULL, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_journal_ticket_seq ON journal (ticket_id, seq);
CREATE INDEX ix_journal_upload ON journal (upload_state, event_id, seq);
CREATE INDEX ix_mesh_scans_origin_seq ON mesh_scans (origin, seq);
CREATE INDEX ix_mesh_scans_ticket_hlc ON mesh_scans (ticket_id, hlc);
CREATE INDEX ix_venue_commands_slot ON venue_commands (issuer, scope, target, seq);
INSERT INTO journal_meta (key, value) VALUES ('schema_version', '4');
