"""Event: the durable event logs (board, NORA) and the gap-free streams that follow them."""
