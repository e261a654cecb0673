"""Plugin glue: the plugin manager and calling the extension hooks safely."""
