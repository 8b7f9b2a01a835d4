"""transfercore driver for HPSS (client API through cffi), with an HPSS emulator."""
