# webserver_config.py for site mini, rendered by airflow-prod from site.toml.
# Read by the FAB auth manager from [fab] config_file = /etc/airflow/webserver_config.py.
# The LDAP bind password is not here: it comes from AIRFLOW_LDAP_BIND_PASSWORD in
# /etc/airflow/secrets.env, which systemd and the `airflow` wrapper load.
from flask_appbuilder.security.manager import AUTH_DB

AUTH_TYPE = AUTH_DB
AUTH_ROLE_ADMIN = "Admin"
AUTH_ROLE_PUBLIC = None

# FAB's sessions and CSRF tokens get their own key instead of [api] secret_key, which the
# Celery worker holds for its log server (and so every task could read): a task must not
# sign an Admin's session. Derived from AIRFLOW__API_AUTH__JWT_SECRET, which the worker never holds,
# so no new secret: rotating jwt_secret rotates it too (everyone logs in again).
import hashlib as _hashlib  # noqa: E402
import hmac as _hmac  # noqa: E402
import os as _os  # noqa: E402

_jwt_secret = _os.environ.get("AIRFLOW__API_AUTH__JWT_SECRET")
if _jwt_secret:
    SECRET_KEY = _hmac.new(_jwt_secret.encode(), b"airflow-prod: FAB session and CSRF key", _hashlib.sha256).hexdigest()

WTF_CSRF_ENABLED = True
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
