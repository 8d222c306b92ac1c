"""Online detection: readings scored as they arrive (`twinids detect`), their sources and alert sinks."""
