"""Alembic migrations of the plugin's ``s2s_*`` tables (version table ``s2s_alembic_version``)."""
