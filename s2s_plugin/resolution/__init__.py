"""Resolution: which postbacks a conversion fires and the exact requests. Pure: no I/O, no database."""
