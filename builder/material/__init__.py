"""Site material that never enters an RPM or git: the secrets file (secrets.py, its
variables and paths in layout.py) and the api-server's TLS key, CSR and certificate (tls.py)."""
