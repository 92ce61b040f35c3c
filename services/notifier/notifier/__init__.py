"""The notifier: pushes job events from the queues' events streams to WebSocket rooms."""
