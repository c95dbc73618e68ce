"""Throwaway real servers on free loopback ports, for the tests and for `make run`.

Each service runs as a child process (or, for SMTP and moto, a thread) in its own temporary
directory and is stopped by PID. Nothing here is imported by the product.
"""
