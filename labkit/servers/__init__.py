"""Running servers: process groups, uvicorn serving, server limits, TLS, the network proxy."""
