# webserver_config.py for site bigdata-prod, rendered by airflow-prod from site.toml.
# Read by the FAB auth manager from [fab] config_file = /etc/airflow/webserver_config.py.
# The LDAP bind password is not here: it comes from AIRFLOW_LDAP_BIND_PASSWORD in
# /etc/airflow/secrets.env, which systemd and the `airflow` wrapper load.
import os

import ldap
from flask_appbuilder.security.manager import AUTH_LDAP

AUTH_TYPE = AUTH_LDAP
AUTH_ROLE_ADMIN = "Admin"
AUTH_ROLE_PUBLIC = None  # no anonymous access

AUTH_LDAP_SERVER = "ldap://dc.bigdata.local:389"
AUTH_LDAP_USE_TLS = True  # StartTLS on ldap://; ldaps:// is TLS already
AUTH_LDAP_TLS_CACERTFILE = "/etc/pki/tls/certs/ca-bundle.crt"
AUTH_LDAP_TLS_DEMAND = True  # verify the server certificate against the CA file
AUTH_LDAP_ALLOW_SELF_SIGNED = False

AUTH_LDAP_SEARCH = "CN=Users,DC=bigdata,DC=local"
AUTH_LDAP_SEARCH_FILTER = ""
AUTH_LDAP_BIND_USER = "CN=super,CN=Users,DC=bigdata,DC=local"
try:
    AUTH_LDAP_BIND_PASSWORD = os.environ["AIRFLOW_LDAP_BIND_PASSWORD"]
except KeyError:
    raise RuntimeError(
        "AIRFLOW_LDAP_BIND_PASSWORD is not set: put it in /etc/airflow/secrets.env and start Airflow through systemd or the `airflow` wrapper"
    ) from None

AUTH_LDAP_UID_FIELD = "sAMAccountName"
AUTH_LDAP_GROUP_FIELD = "memberOf"  # FAB reads only this attribute of the user entry
AUTH_LDAP_FIRSTNAME_FIELD = "givenName"
AUTH_LDAP_LASTNAME_FIELD = "sn"
AUTH_LDAP_EMAIL_FIELD = "mail"

AUTH_USER_REGISTRATION = True
AUTH_USER_REGISTRATION_ROLE = "Viewer"
AUTH_ROLES_SYNC_AT_LOGIN = True
# Keys must match the memberOf DN strings exactly.
AUTH_ROLES_MAPPING = {
    "CN=Domain Admins,CN=Users,DC=bigdata,DC=local": ["Admin"],
    "CN=Domain Users,CN=Users,DC=bigdata,DC=local": ["User"],
}

# FAB sets no LDAP timeouts: without these a dead directory server hangs every login.
ldap.set_option(ldap.OPT_NETWORK_TIMEOUT, 10)
ldap.set_option(ldap.OPT_TIMEOUT, 30)

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
