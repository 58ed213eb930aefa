"""The wire: the HTTP/1.1 client core, byte and clock metering, webhook signing."""
