# webserver_config.py for site mini, rendered by airflow-prod from site.toml.
# Read by the FAB auth manager from [fab] config_file = /etc/airflow/webserver_config.py.
# The LDAP bind password is not here: it comes from AIRFLOW_LDAP_BIND_PASSWORD in
# /etc/airflow/secrets.env, which systemd and the `airflow` wrapper load.
from flask_appbuilder.security.manager import AUTH_DB

AUTH_TYPE = AUTH_DB
AUTH_ROLE_ADMIN = "Admin"
AUTH_ROLE_PUBLIC = None

WTF_CSRF_ENABLED = True
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
