"""Local state in one SQLAlchemy database (SQLite file by default, WAL mode)."""
