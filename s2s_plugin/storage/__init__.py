"""Storage: the plugin's tables, the durable outbox and the queue of deliveries (SQLAlchemy)."""
