"""Accounts: tokens (PyJWT, RFC 8725), passwords (argon2id off the loop), and the /auth HTTP routes."""
