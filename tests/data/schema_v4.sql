-- The schema gate-scanner created at schema_version 4, frozen for migration tests.
CREATE TABLE device_settings (
	"key" VARCHAR NOT NULL, 
	value TEXT NOT NULL, 
	fetched_at VARCHAR NOT NULL, 
	PRIMARY KEY ("key")
);
CREATE TABLE events (
	id VARCHAR NOT NULL, 
	name VARCHAR NOT NULL, 
	seen_at VARCHAR NOT NULL, 
	PRIMARY KEY (id)
);
CREATE TABLE full_seen (
	event_id VARCHAR NOT NULL, 
	id VARCHAR NOT NULL, 
	PRIMARY KEY (event_id, id)
)
 WITHOUT ROWID;
CREATE TABLE meta (
	"key" VARCHAR NOT NULL, 
	value TEXT NOT NULL, 
	PRIMARY KEY ("key")
);
CREATE TABLE sync_state (
	event_id VARCHAR NOT NULL, 
	generation INTEGER NOT NULL, 
	full_until VARCHAR, 
	full_skip INTEGER, 
	full_anchor TEXT, 
	full_total INTEGER, 
	last_full_at VARCHAR, 
	delta_until VARCHAR, 
	last_sync_at VARCHAR, 
	server_total INTEGER, 
	PRIMARY KEY (event_id)
);
CREATE TABLE tickets (
	id VARCHAR NOT NULL, 
	barcode VARCHAR NOT NULL, 
	event_id VARCHAR NOT NULL, 
	status VARCHAR NOT NULL, 
	ticket_type_id VARCHAR NOT NULL, 
	ticket_name VARCHAR NOT NULL, 
	seller_id VARCHAR NOT NULL, 
	created_at VARCHAR NOT NULL, 
	updated_at VARCHAR NOT NULL, 
	name VARCHAR, 
	price_category_id VARCHAR, 
	category_ref VARCHAR, 
	parent_event_id VARCHAR, 
	price_category TEXT, 
	area VARCHAR, 
	"row" VARCHAR, 
	seat VARCHAR, 
	discount_id VARCHAR, 
	discount VARCHAR, 
	entry TEXT, 
	slot_start VARCHAR, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_tickets_barcode ON tickets (barcode);
CREATE INDEX ix_tickets_event ON tickets (event_id, id);
INSERT INTO meta (key, value) VALUES ('schema_version', '4');
