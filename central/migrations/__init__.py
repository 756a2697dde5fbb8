"""Alembic migrations of the centre's database (script_location "central:migrations")."""
