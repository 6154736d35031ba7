"""Email: the outbox, its worker, the SMTP (or log) transport and the message templates."""
