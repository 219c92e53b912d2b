"""Users of the web app: accounts, roles, Argon2 password hashes and login sessions."""
